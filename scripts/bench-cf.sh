#!/usr/bin/env bash
# The CF benchmark: Quire's ALS against the Python `implicit` package's ALS on the UCI Online
# Retail purchases (benches/README.md, "CF"). Results: benches/results/cf.md and cf.json.
#
# Creates (once) the Python venv with the pinned peer packages, builds the release `cf-bench`
# binary, then runs benches/cf/run.py. Overridable from the environment:
#   BENCH_VENV        venv for the peer                       (default .venv-bench)
#   BENCH_CF_DIR      split, models and per-run figures       (default /var/tmp/quire-bench-cf)
#   BENCH_CF_SEEDS    seeds per side                          (default 5)
#   BENCH_CF_THREADS  threads of both sides                   (default 2)
#   CF_BENCH          the binary (default: built here into ${CARGO_TARGET_DIR:-target}/release)
# Extra arguments go to run.py (e.g. --factors 128 --alpha 5 --iterations 20).
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned peer: implicit 0.7.3 is the newest release and ships a CPython 3.11 manylinux wheel.
PEER_PACKAGES=(implicit==0.7.3 numpy==2.4.6 scipy==1.17.1 threadpoolctl==3.8.0 tqdm==4.70.1)
BENCH_VENV=${BENCH_VENV:-.venv-bench}
BENCH_CF_DIR=${BENCH_CF_DIR:-/var/tmp/quire-bench-cf}

if [[ -z "${CF_BENCH:-}" ]]; then
  cargo build --release -p quire-benches --bin cf-bench
  CF_BENCH=${CARGO_TARGET_DIR:-target}/release/cf-bench
fi

PY=${PYTHON:-python3}
if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
  echo "bench-cf: creating the venv $BENCH_VENV"
  "$PY" -m venv "$BENCH_VENV"
fi
if ! "$BENCH_VENV/bin/python" -c "import implicit, numpy, scipy, sys; sys.exit(implicit.__version__ != '0.7.3' or numpy.__version__ != '2.4.6' or scipy.__version__ != '1.17.1')" 2>/dev/null; then
  echo "bench-cf: installing ${PEER_PACKAGES[*]} into $BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PEER_PACKAGES[@]}"
fi

exec "$BENCH_VENV/bin/python" benches/cf/run.py --cf-bench "$CF_BENCH" \
  --peer-python "$BENCH_VENV/bin/python" --work "$BENCH_CF_DIR" \
  --seeds "${BENCH_CF_SEEDS:-5}" --threads "${BENCH_CF_THREADS:-2}" "$@"
