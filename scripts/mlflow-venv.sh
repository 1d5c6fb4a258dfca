#!/usr/bin/env bash
# Creates (or reuses) a Python venv with the given pip requirements, for the tests and
# benchmarks that drive the real `mlflow` client or server:
#   scripts/mlflow-venv.sh DIR REQUIREMENT...
# Idempotent: a stamp in DIR records what was installed, so a rerun with the same
# requirements does nothing. Prints DIR's python on stdout; pip's output goes to stderr.
set -euo pipefail
dir="$1"; shift
[ "$#" -gt 0 ] || { echo "usage: $0 DIR REQUIREMENT..." >&2; exit 2; }
want="$*"
stamp="$dir/.quire-requirements"
if [ ! -x "$dir/bin/python" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "mlflow-venv: installing into $dir: $want" >&2
  mkdir -p "$(dirname "$dir")"
  # One installer at a time per venv (test binaries may start in parallel).
  exec 9>"$dir.lock"
  flock 9
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    [ -x "$dir/bin/python" ] || python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >&2
    echo "$want" >"$stamp"
  fi
fi
echo "$dir/bin/python"
