#!/usr/bin/env bash
# Idempotent set-up for `make run` / `make test`: quick when everything is already there.
# Installs only what is missing; every step says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build, the tests or the main job need. PostgreSQL: the registry's tests
# run against a real server that they start themselves (the default registry is SQLite).
# clang/libclang: bindgen for LightGBM's C API. redis-server: the event bus and the published
# recommendations (the tests start their own servers). python3-venv: the tool venv below.
# chromium: the browser tests of the live dashboard and the registry's web UI. wrk: the live
# intake benchmark's load. time: GNU time, the benchmarks' peak-memory figures.
APT_PACKAGES=(gcc g++ make clang libclang-dev postgresql redis-server python3 python3-venv chromium wrk time)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

# The tool venv: cmake >= 3.28 (Debian's 3.25 cannot build LightGBM 4.7), and the ONNX Runtime
# wheel, whose shared library `ort` loads at run time (no Debian package exists; `ort`'s own
# download needs a CDN that is not reachable) and whose Python package cross-checks exported
# models in the tests. The Makefile points CMAKE and ORT_DYLIB_PATH into it.
VENV="${VENV:-$PWD/.venv}"
PIP_PACKAGES=("cmake>=3.28,<4" "onnxruntime==1.31.1" "onnx==1.23.2" "numpy<3")
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating the tool venv $VENV"
  python3 -m venv "$VENV"
fi
stamp="$VENV/.quire-setup"
want="${PIP_PACKAGES[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing into the tool venv: $want"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
  echo "$want" >"$stamp"
fi
ort_lib="$("$VENV/bin/python" - <<'PY'
import glob, os, onnxruntime
libs = glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*"))
print(sorted(libs, key=len)[-1] if libs else "")
PY
)"
[ -n "$ort_lib" ] || { echo "setup: the onnxruntime wheel in $VENV has no libonnxruntime.so" >&2; exit 1; }
ln -sfn "$ort_lib" "$VENV/libonnxruntime.so"
