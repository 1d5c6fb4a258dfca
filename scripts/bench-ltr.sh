#!/usr/bin/env bash
# The LTR benchmark: LightGBM lambdarank through Quire (`ltr-bench`) against the Python
# `lightgbm` package, on data/lightgbm-lambdarank with its train.conf (benches/README.md).
#
# Creates (once) the bench venv with the pinned lightgbm package, builds the release
# `ltr-bench` binary, then runs benches/ltr/run.py, which writes benches/results/ltr.md + .json.
# Overridable from the environment:
#   BENCH_VENV         venv for the Python peer          (default .venv-bench)
#   BENCH_DIR          where the data is unpacked        (default /var/tmp/quire-bench-ltr)
#   BENCH_REPS         runs per tool and thread count    (default 7)
#   BENCH_LTR_THREADS  thread counts, comma-separated    (default 2,1)
#   LTR_BENCH_BIN      the binary (default: built here, ${CARGO_TARGET_DIR:-target}/release/ltr-bench)
#   OMP_WAIT_POLICY    passed to both tools; `passive` makes multi-threaded runs far less
#                      sensitive to other load on the machine (recorded in the results)
# Extra arguments are passed to benches/ltr/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."

# LightGBM 4.7.0 is what lightgbm3-sys 1.0.11 vendors: the same C++ on both sides.
LIGHTGBM_VERSION=4.7.0
BENCH_VENV=${BENCH_VENV:-.venv-bench}
export BENCH_DIR=${BENCH_DIR:-/var/tmp/quire-bench-ltr}

if [[ -z "${LTR_BENCH_BIN:-}" ]]; then
  # LightGBM's build needs cmake >= 3.28 (the tool venv's, see scripts/setup.sh).
  export CMAKE=${CMAKE:-$PWD/.venv/bin/cmake}
  cargo build --release -p quire-benches --bin ltr-bench
  LTR_BENCH_BIN=${CARGO_TARGET_DIR:-target}/release/ltr-bench
fi

PY=${PYTHON:-python3}
if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
  echo "bench-ltr: creating the venv $BENCH_VENV"
  "$PY" -m venv "$BENCH_VENV"
fi
if ! "$BENCH_VENV/bin/python" -c "import lightgbm, sys; sys.exit(lightgbm.__version__ != '$LIGHTGBM_VERSION')" 2>/dev/null; then
  echo "bench-ltr: installing lightgbm==$LIGHTGBM_VERSION into $BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "lightgbm==$LIGHTGBM_VERSION"
fi

exec "$PY" benches/ltr/run.py --bin "$LTR_BENCH_BIN" --python "$BENCH_VENV/bin/python" "$@"
