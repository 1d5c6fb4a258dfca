#!/usr/bin/env bash
# `make bench`: the causal analyses (`quire analyze gateway | uplift | abtest | promotion`) over
# about 10 million simulated events: wall time and peak RSS of each, written to
# benches/results/causal.{json,md}.
#
# Reuses the KPI benchmark's lake ($BENCH_DIR/lake, made by scripts/bench.sh) when it exists,
# else simulates and ingests one. Overridable from the environment:
#   BENCH_DIR     data: simulation, lake, outputs   (default /var/tmp/quire-bench)
#   BENCH_EVENTS  events to simulate, about         (default 10000000; 30 days)
#   QUIRE_BIN     the binary (default ${CARGO_TARGET_DIR:-target}/release/quire)
#   BENCH_NOTE    a line about the machine (e.g. "shared with other builds")
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_DIR=${BENCH_DIR:-/var/tmp/quire-bench}
BENCH_EVENTS=${BENCH_EVENTS:-10000000}
QUIRE_BIN=${QUIRE_BIN:-${CARGO_TARGET_DIR:-target}/release/quire}
LAKE=$BENCH_DIR/lake
OUT=$BENCH_DIR/causal
RESULTS=benches/results

if [[ ! -x "$QUIRE_BIN" ]]; then
  echo "bench-causal: no quire binary at $QUIRE_BIN; build it: cargo build --release -p quire" >&2
  exit 1
fi
if [[ ! -x /usr/bin/time ]]; then
  echo "bench-causal: needs GNU time (/usr/bin/time, Debian package 'time') for peak memory" >&2
  exit 1
fi

if [[ ! -d "$LAKE/_manifest" ]]; then
  # The simulator writes about 44 events per user over 30 days.
  users=$(( BENCH_EVENTS * 133 / 20000 ))  # ≈ 5 events per user-day over 30 days
  echo "bench-causal: simulating ~$BENCH_EVENTS events ($users users, 30 days) into $BENCH_DIR/sim"
  "$QUIRE_BIN" simulate --days 30 --users "$users" --out "$BENCH_DIR/sim"
  "$QUIRE_BIN" ingest --lake "$LAKE" "$BENCH_DIR/sim/events.jsonl"
  "$QUIRE_BIN" dims load --lake "$LAKE" --books "$BENCH_DIR/sim/books.csv" --users "$BENCH_DIR/sim/users.csv"
fi
mkdir -p "$OUT" "$RESULTS"

declare -a NAMES=(gateway uplift-rec-click uplift-review-read abtest promotion)
declare -A ARGS=(
  [gateway]="gateway --days 14"
  [uplift-rec-click]="uplift --treatment rec-click"
  [uplift-review-read]="uplift --treatment review-read"
  [abtest]="abtest --experiment search_ranker --control bm25"
  [promotion]="promotion --code FALLREADS20"
)
rows=()
for name in "${NAMES[@]}"; do
  echo "bench-causal: $name"
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$OUT/$name.time" "$QUIRE_BIN" analyze ${ARGS[$name]} --lake "$LAKE" --json \
    > "$OUT/$name.json" 2> "$OUT/$name.log"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$name.time")
  rows+=("$name|${ARGS[$name]}|$wall|$rss")
done

events=$(python3 -c "import json,sys; print(json.load(open('$BENCH_DIR/sim/truth.json'))['volumes']['events'])" 2>/dev/null || echo unknown)
python3 - "$RESULTS" "$events" "${BENCH_NOTE:-}" "${rows[@]}" <<'PY'
import json, os, sys, datetime
results, events, note, rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def seconds(w):
    parts = [float(p) for p in w.split(":")]
    s = 0.0
    for p in parts:
        s = s * 60 + p
    return s
out = []
for r in rows:
    name, args, wall, rss = r.split("|")
    out.append({"analysis": name, "command": "quire analyze " + args,
                "wall_seconds": round(seconds(wall), 2), "peak_rss_mib": round(int(rss) / 1024, 1)})
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
doc = {"when": now, "events": events, "cores": os.cpu_count(), "note": note, "runs": out}
json.dump(doc, open(os.path.join(results, "causal.json"), "w"), indent=2)
with open(os.path.join(results, "causal.md"), "w") as f:
    f.write("# Causal analyses over ~10 million simulated events\n\n")
    f.write(f"{now}, {os.cpu_count()} cores, {events} events in the lake. {note}\n\n")
    f.write("Measured by `scripts/bench-causal.sh` (`/usr/bin/time -v`, release `quire`, default flags: "
            "200 bootstrap replicates for uplift, 100 per book for gateway).\n\n")
    f.write("| analysis | command | wall | peak RSS |\n|---|---|---:|---:|\n")
    for r in out:
        f.write(f"| {r['analysis']} | `{r['command']}` | {r['wall_seconds']:.1f} s | {r['peak_rss_mib']:.0f} MiB |\n")
print(open(os.path.join(results, "causal.md")).read())
PY
