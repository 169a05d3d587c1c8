#!/usr/bin/env bash
# Import speed on a full-size VGG16 with top (~553 MB, random weights, made here by
# tf_keras.applications.VGG16(weights=None); never committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-debian.sh
swift build -c release --product xfer
mkdir -p Benchmarks/out
file=Benchmarks/out/vgg16.h5
if [ ! -f "$file" ]; then
  venv="$(scripts/keras-venv.sh)"
  "$venv/bin/python" Benchmarks/import/make_vgg16.py "$file"
fi
python3 Benchmarks/import/bench_import.py .build/release/xfer "$file" "${RUNS:-15}"
