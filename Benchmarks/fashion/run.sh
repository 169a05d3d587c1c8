#!/usr/bin/env bash
# xfer vs Keras on the README's transfer-learning recipe, seeds 0, 1, 2 (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup-debian.sh
swift build -c release --product xfer
venv="$(scripts/keras-venv.sh)"
"$venv/bin/python" Benchmarks/fashion/compare.py .build/release/xfer "$venv/bin/python" "$@"
