#!/usr/bin/env bash
# Families benchmark (BENCHMARKS.md, "Families"): the forward pass of ResNet50, MobileNetV2 and
# EfficientNetB0 (tf_keras.applications, include_top=False, weights=None, 224x224, batch 16) in
# xfer and in Keras `predict` on TensorFlow-CPU, side by side in one run, 2 threads each.
#   ROUNDS=3 THREADS=2 Benchmarks/families/run.sh
# FAMILIES=RegNetX002,RegNetY002 measures other tf_keras.applications families the same way.
# Makes Benchmarks/out/<family>_notop.h5 once (never committed).
# Swift build in ${XFER_BUILD:-<repo>/.build}; Python venv from scripts/keras-venv.sh (XFER_VENV).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${XFER_BUILD:-.build}
swift build -c release --scratch-path "$build" --product xfer-bench >&2
bin="$(swift build -c release --scratch-path "$build" --show-bin-path)"
venv="$(scripts/keras-venv.sh)"
"$venv/bin/python" Benchmarks/families/make_models.py Benchmarks/out
# The machine's float32 multiply-add peak, measured in each round beside the models.
cc -O2 -march=native -pthread -o "$bin/fma_peak" Benchmarks/peak/fma_peak.c
"$venv/bin/python" Benchmarks/families/compare.py "$bin/xfer-bench" "$venv/bin/python" Benchmarks/out \
  "${ROUNDS:-3}" "${THREADS:-2}" "$bin/fma_peak"
