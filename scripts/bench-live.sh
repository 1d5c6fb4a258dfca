#!/usr/bin/env bash
# The live path benchmark (issue 3): intake throughput (events/s accepted, one `quire serve
# live`, this machine's cores) under `wrk` on loopback, and the latency from an accepted
# `order_placed` to the live GMV showing it (p50/p99), with the load running and idle.
# Writes benches/results/live.md and live.json.
#
# Everything runs on this machine: a Redis of its own (append-only file, fsync per write, as
# `make run`'s), the service (release build), wrk (benches/live/load.lua) and the probe
# (benches/live/probe.py, standard-library Python). Overridable from the environment:
#   BENCH_DIR          lake, Redis data, logs          (default /var/tmp/quire-bench-live)
#   BENCH_DURATION     seconds of load per run         (default 20)
#   BENCH_CONNECTIONS  wrk connections                 (default 16)
#   BENCH_BATCH        events per request              (default 100)
#   BENCH_REPS         consecutive load runs           (default 6: two minutes, to show it holds)
#   BENCH_PORT         the service's port (Redis: +1)  (default 18492)
#   QUIRE              the quire binary                (default: built here, release)
#   BENCH_NOTE         a note on the machine's state for the results (e.g. "shared with builds")
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-/var/tmp/quire-bench-live}
DURATION=${BENCH_DURATION:-20}
CONNS=${BENCH_CONNECTIONS:-16}
BATCH=${BENCH_BATCH:-100}
REPS=${BENCH_REPS:-6}
PORT=${BENCH_PORT:-18492}
RPORT=$((PORT + 1))
PY=${PYTHON:-python3}

if [[ -z "${QUIRE:-}" ]]; then
  export CMAKE=${CMAKE:-$PWD/.venv/bin/cmake}
  cargo build --release -p quire
  QUIRE=${CARGO_TARGET_DIR:-target}/release/quire
fi
command -v wrk >/dev/null || { echo "bench-live: wrk not found (make setup installs it)" >&2; exit 1; }

rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR/redis"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$BENCH_DIR/redis" --save '' \
  --appendonly yes --appendfsync always --lazyfree-lazy-expire yes >"$BENCH_DIR/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

"$QUIRE" serve live --listen "127.0.0.1:$PORT" --lake "$BENCH_DIR/lake" \
  --redis "redis://127.0.0.1:$RPORT/0" >"$BENCH_DIR/live.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null || { echo "bench-live: service not ready; see $BENCH_DIR/live.log" >&2; exit 1; }

accepted() {
  curl -fs "http://127.0.0.1:$PORT/metrics" |
    awk '$1 == "quire_live_intake_events_total{status=\"accepted\"}" {print $2; f=1} END {if (!f) print 0}'
}
lag() { # entries the archiver has not acknowledged: pending + not yet delivered
  redis-cli -p "$RPORT" --json XINFO GROUPS quire:bus:events | "$PY" -c '
import json, sys
g = [x for x in json.load(sys.stdin) if x["name"] == "archiver"][0]
print(int(g["pending"]) + int(g.get("lag") or 0))'
}
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
runs_json=()
load_before=$(load_avg)
echo "bench-live: load average before: $load_before"

# Idle latency first (no load), then each load run with the probe beside it.
idle=$("$PY" benches/live/probe.py --port "$PORT" --duration 10 --run idle)
echo "bench-live: idle probe: $idle"

for rep in $(seq "$REPS"); do
  before=$(accepted)
  "$PY" benches/live/probe.py --port "$PORT" --duration "$((DURATION - 2))" --run "load$rep" \
    --samples "$BENCH_DIR/probe-$rep.samples" \
    >"$BENCH_DIR/probe-$rep.json" &
  probe=$!
  BATCH=$BATCH RUN_ID="r$rep$$" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    -s benches/live/load.lua "http://127.0.0.1:$PORT/v1/events" >"$BENCH_DIR/wrk-$rep.txt"
  after=$(accepted)
  wait "$probe"
  backlog=$(lag)
  t0=$(date +%s.%N)
  while [ "$(lag)" -gt 0 ]; do sleep 0.5; done
  drain=$(printf '%.2f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  rps=$(awk '/Requests\/sec/ {print $2}' "$BENCH_DIR/wrk-$rep.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$BENCH_DIR/wrk-$rep.txt")
  p99req=$(awk '$1 == "99%" {print $2}' "$BENCH_DIR/wrk-$rep.txt")
  eps=$(echo "($after - $before) / $DURATION" | bc)
  probe_json=$(cat "$BENCH_DIR/probe-$rep.json")
  echo "bench-live: run $rep: $eps events/s accepted ($rps req/s × $BATCH, request p99 $p99req, non-2xx ${non2xx:-0}); archiver backlog $backlog, drained in ${drain}s; probe $probe_json"
  runs_json+=("{\"events_per_s\": $eps, \"requests_per_s\": $rps, \"request_p99\": \"$p99req\", \"non_2xx\": ${non2xx:-0}, \"archiver_backlog\": $backlog, \"drain_s\": $drain, \"probe\": $probe_json}")
done
echo "bench-live: load average after: $(load_avg)"

"$PY" - "$BENCH_DIR" "$CONNS" "$BATCH" "$DURATION" "$idle" "$(nproc)" "$load_before" "$(load_avg)" "${BENCH_NOTE:-}" "${runs_json[@]}" <<'PYEOF'
import json, sys, datetime, pathlib
bench_dir, conns, batch, duration, idle, cores, load_before, load, note = sys.argv[1:10]
out = {"date": datetime.date.today().isoformat(), "cores": int(cores), "connections": int(conns),
       "batch": int(batch), "duration_s": float(duration), "idle_probe": json.loads(idle),
       "runs": [json.loads(r) for r in sys.argv[10:]], "load_average_before": load_before,
       "load_average_after": load, "note": note, "raw_outputs": bench_dir}
pathlib.Path("benches/results/live.json").write_text(json.dumps(out, indent=2) + "\n")
PYEOF
"$PY" benches/live/report.py benches/results/live.json benches/results/live.md
cat benches/results/live.md
