#!/usr/bin/env bash
# Runs scripts/fuzz.py with the project's Keras venv (h5py, numpy); builds xfer first if
# there is no debug build. Arguments go to fuzz.py (see its --help), e.g.
#   scripts/fuzz.sh                         # CI mode: 300 mutants
#   scripts/fuzz.sh --count 20000 --jobs 2 --keep-dir /tmp/fuzz-findings
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
[ -x .build/debug/xfer ] || swift build --product xfer >&2
venv="$(scripts/keras-venv.sh)"
exec "$venv/bin/python" scripts/fuzz.py "$@"
