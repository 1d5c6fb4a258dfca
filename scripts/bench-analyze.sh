#!/usr/bin/env bash
# The analytics benchmark: every `quire analyze` question over ~10 million simulated events
# (wall time and peak memory each), FP-growth against mlxtend and PrefixSpan against the
# `prefixspan` Python package on the same exported input (benches/analyze/run.py).
# Results: benches/results/analyze.md and analyze.json.
#
# Overridable from the environment:
#   BENCH_VENV            venv for the peers                         (default .venv-bench-analyze)
#   BENCH_ANALYZE_DIR     simulation, lake, outputs                  (default /var/tmp/quire-bench-analyze)
#   BENCH_DAYS/USERS/SEED the simulated store (default 30 days × 46,000 users ≈ 10M events, seed 42)
#   QUIRE                 the binary (default: `cargo build --release -p quire`, as `make bench` does)
# BENCH_SMALL=1 runs a quick check (7 days × 3,000 users) that writes analyze-small.md instead.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned peers: mlxtend 0.25.0 (fpgrowth, association_rules) and prefixspan 0.5.2.
PEER_PACKAGES=(mlxtend==0.25.0 prefixspan==0.5.2)
BENCH_VENV=${BENCH_VENV:-.venv-bench-analyze}
BENCH_ANALYZE_DIR=${BENCH_ANALYZE_DIR:-/var/tmp/quire-bench-analyze}

if [[ -z "${QUIRE:-}" ]]; then
  cargo build --release -p quire
  QUIRE=${CARGO_TARGET_DIR:-target}/release/quire
fi

PY=${PYTHON:-python3}
if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
  echo "bench-analyze: creating the venv $BENCH_VENV"
  "$PY" -m venv "$BENCH_VENV"
fi
if ! "$BENCH_VENV/bin/python" -c "import mlxtend, prefixspan, sys; sys.exit(mlxtend.__version__ != '0.25.0')" 2>/dev/null; then
  echo "bench-analyze: installing ${PEER_PACKAGES[*]} into $BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PEER_PACKAGES[@]}"
fi

ARGS=(--quire "$QUIRE" --peer-python "$BENCH_VENV/bin/python" --work "$BENCH_ANALYZE_DIR")
if [[ -n "${BENCH_SMALL:-}" ]]; then
  ARGS+=(--days 7 --users 3000 --small)
else
  ARGS+=(--days "${BENCH_DAYS:-30}" --users "${BENCH_USERS:-46000}")
fi
exec "$PY" benches/analyze/run.py "${ARGS[@]}" --seed "${BENCH_SEED:-42}" "$@"
