#!/usr/bin/env bash
# The long-running parts `make run` leaves up, each on a project-owned loopback port, with its
# pid and log under $QUIRE_HOME/run/. Idempotent: a running service is left alone.
#   scripts/services.sh redis      start Redis (recommendations, event bus; append-only file on,
#                                  fsync per write, so an event the intake accepted survives)
#   scripts/services.sh ranking    (re)start the ranking service on ltr@production
#   scripts/services.sh sample     send one sample ranking request and show the answer
#   scripts/services.sh live       (re)start `quire serve live`: intake, archiver, live KPIs and
#                                  the dashboard (seeded from the lake), and print its URL
#   scripts/services.sh stop       stop all three
set -euo pipefail
cd "$(dirname "$0")/.."

QUIRE_HOME=${QUIRE_HOME:-$PWD/.quire}
REDIS_PORT=${REDIS_PORT:-6391}
RANKING_ADDR=${RANKING_ADDR:-127.0.0.1:8391}
LIVE_ADDR=${LIVE_ADDR:-127.0.0.1:8392}
QUIRE_LAKE=${QUIRE_LAKE:-$QUIRE_HOME/lake}
QUIRE_REDIS=${QUIRE_REDIS:-redis://127.0.0.1:$REDIS_PORT/0}
QUIRE=${QUIRE:-${CARGO_TARGET_DIR:-target}/release/quire}
RUN="$QUIRE_HOME/run"
mkdir -p "$RUN"

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

case "${1:-}" in
  redis)
    if running "$RUN/redis.pid"; then
      echo "services: redis already up on 127.0.0.1:$REDIS_PORT"
    else
      mkdir -p "$RUN/redis-data"
      redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis-data" \
        --save '' --appendonly yes --appendfsync always --lazyfree-lazy-expire yes \
        --daemonize yes --pidfile "$RUN/redis.pid" \
        --logfile "$RUN/redis.log"
      for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
      redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "services: redis did not start; see $RUN/redis.log" >&2; exit 1; }
      echo "services: redis up on 127.0.0.1:$REDIS_PORT (log $RUN/redis.log)"
    fi
    ;;
  ranking)
    if running "$RUN/ranking.pid"; then kill "$(cat "$RUN/ranking.pid")"; sleep 0.5; fi
    nohup "$QUIRE" serve ranking --model ltr@production --listen "$RANKING_ADDR" \
      >"$RUN/ranking.log" 2>&1 &
    echo $! >"$RUN/ranking.pid"
    for _ in $(seq 100); do
      curl -fs "http://$RANKING_ADDR/health/ready" >/dev/null 2>&1 && break
      kill -0 "$(cat "$RUN/ranking.pid")" 2>/dev/null || break
      sleep 0.2
    done
    if ! curl -fs "http://$RANKING_ADDR/health/ready" >/dev/null 2>&1; then
      echo "services: the ranking service is not ready; see $RUN/ranking.log" >&2
      tail -5 "$RUN/ranking.log" >&2
      exit 1
    fi
    echo "services: ranking service up on http://$RANKING_ADDR (ltr@production; log $RUN/ranking.log)"
    ;;
  sample)
    # One request as the Search Service sends it: five books of the catalog as BM25 candidates.
    books=$(sed -n '2,6p' "$QUIRE_HOME/sim/books.csv" | cut -d, -f1)
    user=$(sed -n '2p' "$QUIRE_HOME/sim/users.csv" | cut -d, -f1)
    cands=""; score=12
    for b in $books; do cands="$cands${cands:+,}{\"book_id\":\"$b\",\"bm25\":$score.5}"; score=$((score - 2)); done
    body="{\"request_id\":\"make-run-sample\",\"query\":\"fantasy dragon\",\"user_id\":\"$user\",\"device\":\"mobile\",\"candidates\":[$cands],\"top_k\":5}"
    echo "POST http://$RANKING_ADDR/v1/rank"
    echo "  $body"
    echo "→ $(curl -fsS -H 'content-type: application/json' -d "$body" "http://$RANKING_ADDR/v1/rank")"
    ;;
  live)
    if running "$RUN/live.pid"; then kill "$(cat "$RUN/live.pid")"; sleep 0.5; fi
    nohup "$QUIRE" serve live --listen "$LIVE_ADDR" --lake "$QUIRE_LAKE" --redis "$QUIRE_REDIS" \
      >"$RUN/live.log" 2>&1 &
    echo $! >"$RUN/live.pid"
    for _ in $(seq 150); do
      curl -fs "http://$LIVE_ADDR/health/ready" >/dev/null 2>&1 && break
      kill -0 "$(cat "$RUN/live.pid")" 2>/dev/null || break
      sleep 0.2
    done
    if ! curl -fs "http://$LIVE_ADDR/health/ready" >/dev/null 2>&1; then
      echo "services: the live service is not ready; see $RUN/live.log" >&2
      tail -5 "$RUN/live.log" >&2
      exit 1
    fi
    echo "services: live service up (log $RUN/live.log)"
    echo "  dashboard:  http://$LIVE_ADDR/"
    echo "  intake:     POST http://$LIVE_ADDR/v1/events (one event or a JSON array)"
    echo "  hourly GMV: http://$LIVE_ADDR/api/v1/hourly-gmv"
    ;;
  stop)
    for s in live ranking redis; do
      if running "$RUN/$s.pid"; then kill "$(cat "$RUN/$s.pid")" && echo "services: stopped $s"; fi
    done
    ;;
  *)
    echo "usage: $0 redis|ranking|sample|live|stop" >&2
    exit 2
    ;;
esac
