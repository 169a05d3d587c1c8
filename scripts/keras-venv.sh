#!/usr/bin/env bash
# Prints the path of a Python venv with Keras/TensorFlow-CPU (checkpoints/requirements.txt),
# creating it on first use at ${XFER_VENV:-<repo>/.venv-keras}.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${XFER_VENV:-$repo/.venv-keras}"
# An existing venv that lacks a package added since (onnx, onnxruntime) gets it installed too.
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import tf_keras, keras, h5py, onnx, onnxruntime" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$repo/checkpoints/requirements.txt" >&2
fi
echo "$venv"
