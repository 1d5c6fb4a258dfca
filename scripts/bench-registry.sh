#!/usr/bin/env bash
# The registry server benchmark: `quire serve registry` against a real `mlflow server` (pip
# `mlflow`, SQLite backend) on this machine, same load generator for both
# (benches/registry/run.py, load.py). Writes benches/results/registry.md + .json.
#   runs/log-batch throughput and runs/search latency with 10,000 runs × 20 metrics.
# Overridable from the environment:
#   QUIRE               the quire binary            (default: the release build, built here)
#   BENCH_DIR           databases and logs           (default /var/tmp/quire-bench-registry)
#   BENCH_RUNS          runs                         (default 10000)
#   BENCH_SEARCHES      searches of each kind        (default 100)
#   MLFLOW_SERVER_VENV  venv of the peer             (default <target dir>/venvs/mlflow-server)
set -euo pipefail
cd "$(dirname "$0")/.."

MLFLOW_VERSION="3.17.*"
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
profile=release
if [[ -z "${QUIRE:-}" ]]; then
  cargo build --release -p quire
  QUIRE=$TARGET_DIR/release/quire
elif [[ "$QUIRE" == */debug/* ]]; then
  profile="dev (dependencies at opt-level 1)"
fi
venv=${MLFLOW_SERVER_VENV:-$TARGET_DIR/venvs/mlflow-server}
scripts/mlflow-venv.sh "$venv" "mlflow==$MLFLOW_VERSION" >/dev/null
exec python3 benches/registry/run.py --quire "$QUIRE" --quire-profile "$profile" \
  --mlflow-venv "$venv" --dir "${BENCH_DIR:-/var/tmp/quire-bench-registry}" \
  --runs "${BENCH_RUNS:-10000}" --searches "${BENCH_SEARCHES:-100}" "$@"
