#!/usr/bin/env bash
# The recommendation batch benchmark: Quire's recs-bench against implicit + redis-py, on the
# same input and the same Redis server (benches/recs/README.md).
#
# Creates or reuses the venv .venv-bench with pinned peer packages, builds the release
# recs-bench, then runs benches/recs/run.py, which writes benches/results/recs.md and .json.
# Environment (all optional):
#   BENCH_VENV     venv for the peer            (default .venv-bench)
#   BENCH_DIR      input, logs                  (default /var/tmp/quire-bench-recs)
#   BENCH_SMALL=1  quick check: 10,000 users, 2,000 books (writes recs-small.md)
#   BENCH_USERS, BENCH_BOOKS, BENCH_FACTORS, BENCH_N, BENCH_THREADS, BENCH_REPS, BENCH_SEED
#   RECS_BENCH_BIN the binary (default: built here into ${CARGO_TARGET_DIR:-target}/release)
set -euo pipefail
cd "$(dirname "$0")/.."

IMPLICIT_VERSION=0.7.2
NUMPY_VERSION=2.4.6
SCIPY_VERSION=1.17.1
REDIS_PY_VERSION=8.1.0
HIREDIS_VERSION=3.5.0
BENCH_VENV=${BENCH_VENV:-.venv-bench}
if [[ "${BENCH_SMALL:-0}" == 1 ]]; then
  export BENCH_USERS=${BENCH_USERS:-10000} BENCH_BOOKS=${BENCH_BOOKS:-2000}
fi

for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "bench-recs: $tool not found (apt-get install redis-server)" >&2; exit 2; }
done

if [[ -z "${RECS_BENCH_BIN:-}" ]]; then
  cargo build --release -p quire-benches --bin recs-bench
  RECS_BENCH_BIN=${CARGO_TARGET_DIR:-target}/release/recs-bench
fi

PY=${PYTHON:-python3}
if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
  echo "bench-recs: creating the venv $BENCH_VENV"
  "$PY" -m venv "$BENCH_VENV"
fi
if ! "$BENCH_VENV/bin/python" - <<PYEOF 2>/dev/null
import sys, implicit, numpy, scipy, redis, hiredis
sys.exit(not (implicit.__version__ == "$IMPLICIT_VERSION" and numpy.__version__ == "$NUMPY_VERSION"
              and scipy.__version__ == "$SCIPY_VERSION" and redis.__version__ == "$REDIS_PY_VERSION"
              and hiredis.__version__ == "$HIREDIS_VERSION"))
PYEOF
then
  echo "bench-recs: installing the peer's packages into $BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "implicit==$IMPLICIT_VERSION" "numpy==$NUMPY_VERSION" "scipy==$SCIPY_VERSION" \
    "redis==$REDIS_PY_VERSION" "hiredis==$HIREDIS_VERSION"
fi

exec "$PY" benches/recs/run.py --quire "$RECS_BENCH_BIN" --python "$BENCH_VENV/bin/python" "$@"
