#!/usr/bin/env bash
# The ranking service benchmark: Quire's service (`quire_ranking::serve`, run by `ranking-bench
# serve`) against a FastAPI + onnxruntime peer, same ONNX model and features, on loopback
# (benches/README.md, benches/ranking/run.py).
#
# Creates (once) the bench venv with the pinned Python packages, builds the release
# `ranking-bench` binary, then runs the harness, which writes benches/results/ranking.md + .json.
# Overridable from the environment:
#   BENCH_VENV              venv for the Python peer                (default .venv-bench)
#   BENCH_DIR               bookstore, model, registry, requests   (default /var/tmp/quire-bench-ranking)
#   BENCH_REPS              repetitions per peer                    (default 2)
#   BENCH_DURATION          seconds measured per load               (default 15)
#   BENCH_WARMUP            seconds of load before measuring        (default 3)
#   BENCH_CONNECTIONS       connections of the saturated run        (default 16)
#   BENCH_OPEN_CONNECTIONS  connections of the fixed-rate run       (default 32)
#   BENCH_PORT              port the servers listen on              (default 18480)
#   RANKING_BENCH_BIN       the binary (default: built here)
# Needs ORT_DYLIB_PATH (`make setup` links .venv/libonnxruntime.so; used when unset).
set -euo pipefail
cd "$(dirname "$0")/.."

FASTAPI_VERSION=0.163.2
UVICORN_VERSION=0.54.0
ONNXRUNTIME_VERSION=1.31.1
ORJSON_VERSION=3.13.0
PYDANTIC_VERSION=2.14.3
NUMPY_VERSION=2.4.6
# Absolute: the harness starts the peer from its own directory.
BENCH_VENV=$(realpath -m "${BENCH_VENV:-.venv-bench}")
export BENCH_DIR=${BENCH_DIR:-/var/tmp/quire-bench-ranking}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/.venv/libonnxruntime.so}

if [[ -z "${RANKING_BENCH_BIN:-}" ]]; then
  # LightGBM's build needs cmake >= 3.28 (the tool venv's, see scripts/setup.sh).
  export CMAKE=${CMAKE:-$PWD/.venv/bin/cmake}
  cargo build --release -p quire-benches --bin ranking-bench
  RANKING_BENCH_BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/ranking-bench")
fi

PY=${PYTHON:-python3}
if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
  echo "bench-ranking: creating the venv $BENCH_VENV"
  "$PY" -m venv "$BENCH_VENV"
fi
if ! "$BENCH_VENV/bin/python" - <<PYCHECK 2>/dev/null
import sys, fastapi, uvicorn, onnxruntime, orjson, pydantic, numpy, uvloop, httptools
want = {"fastapi": "$FASTAPI_VERSION", "uvicorn": "$UVICORN_VERSION", "onnxruntime": "$ONNXRUNTIME_VERSION",
        "pydantic": "$PYDANTIC_VERSION", "numpy": "$NUMPY_VERSION"}
have = {"fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__, "onnxruntime": onnxruntime.__version__,
        "pydantic": pydantic.__version__, "numpy": numpy.__version__}
sys.exit(have != want)
PYCHECK
then
  echo "bench-ranking: installing the peer's packages into $BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "fastapi==$FASTAPI_VERSION" "uvicorn[standard]==$UVICORN_VERSION" \
    "onnxruntime==$ONNXRUNTIME_VERSION" "orjson==$ORJSON_VERSION" \
    "pydantic==$PYDANTIC_VERSION" "numpy==$NUMPY_VERSION"
fi

exec "$PY" benches/ranking/run.py --bin "$RANKING_BENCH_BIN" --python "$BENCH_VENV/bin/python" "$@"
