#!/usr/bin/env bash
# Regenerates checkpoints/fixtures/: sample checkpoints written by real Keras
# (tf_keras = Keras 2, keras = Keras 3) and the numbers Keras reports for them.
#
#   bash checkpoints/make_checkpoints.sh
#
# The Python environment lives at $XFER_VENV (default: <repo root>/.venv-keras)
# and is created from checkpoints/requirements.txt when missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${XFER_VENV:-$root/.venv-keras}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating Python environment in $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --upgrade pip >&2
    "$venv/bin/python" -m pip install -r "$here/requirements.txt" >&2
fi

# Deterministic, CPU only, quiet.
export CUDA_VISIBLE_DEVICES=""
export TF_DETERMINISTIC_OPS=1
export TF_CPP_MIN_LOG_LEVEL=3
export TF_ENABLE_ONEDNN_OPTS=0
export PYTHONHASHSEED=0
export KERAS_BACKEND=tensorflow
# model.summary() sizes its table from the terminal width: fix it.
export COLUMNS=80
export LINES=24

"$venv/bin/python" "$here/make_image_fixtures.py" --out "$here/images"
"$venv/bin/python" "$here/make_checkpoints.py" --out "$here/fixtures" "$@"
# Hostile variants of two of those files (checkpoints/hostile/, the safety tests).
exec "$venv/bin/python" "$here/make_hostile.py"
