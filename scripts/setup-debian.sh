#!/usr/bin/env bash
# Installs the Debian packages xfer builds against, if any is missing.
# Needs root (or sudo). Swift itself (6.x) must already be on PATH.
set -euo pipefail

packages=(pkg-config libhdf5-dev libdnnl-dev libturbojpeg0-dev libpng-dev python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "error: swift is not on PATH; install Swift 6 from swift.org first" >&2; exit 1; }
