#!/usr/bin/env bash
# `make bench`: the KPI replay benchmark, Quire against DuckDB (benches/README.md).
#
# Creates (once) a Python venv with the pinned duckdb package, then runs the harness with the
# release `quire` binary. Everything is overridable from the environment:
#   BENCH_VENV            venv for DuckDB                  (default .venv-bench)
#   BENCH_DIR             data: simulation, lake, reports  (default /var/tmp/quire-bench)
#   BENCH_EVENTS          events to simulate, about        (default 10000000)
#   BENCH_SMALL=1         quick harness check: BENCH_EVENTS defaults to 200000
#   BENCH_DAYS            simulated days                   (default 30)
#   BENCH_USERS           simulated users                  (default: calibrated for BENCH_EVENTS)
#   BENCH_SEED, BENCH_REPS (default 5), BENCH_DUCKDB_THREADS (default: all cores)
#   QUIRE_BIN             the binary (default ${CARGO_TARGET_DIR:-target}/release/quire)
# Extra arguments are passed to benches/kpi_replay/run.py (e.g. --skip-generate).
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_VERSION=2.0.1
BENCH_VENV=${BENCH_VENV:-.venv-bench}
export BENCH_DIR=${BENCH_DIR:-/var/tmp/quire-bench}
if [[ "${BENCH_SMALL:-0}" == 1 ]]; then
  export BENCH_EVENTS=${BENCH_EVENTS:-200000}
fi
QUIRE_BIN=${QUIRE_BIN:-${CARGO_TARGET_DIR:-target}/release/quire}

if [[ ! -x "$QUIRE_BIN" ]]; then
  echo "bench: no quire binary at $QUIRE_BIN; build it: cargo build --release -p quire" >&2
  exit 1
fi

PY=${PYTHON:-python3}
if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
  echo "bench: creating the venv $BENCH_VENV"
  "$PY" -m venv "$BENCH_VENV"
fi
if ! "$BENCH_VENV/bin/python" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  echo "bench: installing duckdb==$DUCKDB_VERSION into $BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
fi

exec "$PY" benches/kpi_replay/run.py --quire "$QUIRE_BIN" \
  --duckdb-python "$BENCH_VENV/bin/python" "$@"
