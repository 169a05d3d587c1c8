#!/usr/bin/env bash
# Training benchmark (BENCHMARKS.md, "Training"): xfer vs Keras/TensorFlow-CPU fine-tuning
# VGG16's base (random weights) at 224x224 with xfer's default head, batch 16, SGD.
#   ROUNDS=3 JOBS=1 Benchmarks/train/run.sh     # JOBS=0: per-step rounds and limits only
# Makes Benchmarks/out/vgg16_notop.h5 and train_512.h5 once (never committed).
# Swift build in ${XFER_BUILD:-<repo>/.build}; Python venv from scripts/keras-venv.sh (XFER_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${XFER_BUILD:-.build}
swift build -c release --scratch-path "$build" --product xfer >&2
swift build -c release --scratch-path "$build" --product xfer-train-bench >&2
swift build -c release --scratch-path "$build" --product xfer-bench >&2
bin="$(swift build -c release --scratch-path "$build" --show-bin-path)"
cc -O2 -march=native -pthread -o "$bin/fma_peak" Benchmarks/peak/fma_peak.c
venv="$(scripts/keras-venv.sh)"
"$venv/bin/python" Benchmarks/train/make_data.py Benchmarks/out 512
"$venv/bin/python" Benchmarks/train/compare.py "$bin/xfer" "$bin/xfer-train-bench" "$venv/bin/python" Benchmarks/out \
  "${ROUNDS:-3}" "${JOBS:-1}" "$bin/xfer-bench" "$bin/fma_peak"
