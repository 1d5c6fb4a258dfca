#!/usr/bin/env bash
# Idempotent set-up for `make run` / `make test`: quick when everything is already there.
# Installs only what is missing; every step says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build, the tests or the main job need. PostgreSQL: the registry's tests
# run against a real server that they start themselves (the default registry is SQLite).
APT_PACKAGES=(gcc make postgresql)

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
