#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs the Swift tests, then
# checks with real Keras that the .h5 files xfer writes load and predict identically.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
swift build --build-tests
swift test --skip-build
venv="$(scripts/keras-venv.sh)"
"$venv/bin/python" checkpoints/check_keras_loads.py .build/debug/xfer
