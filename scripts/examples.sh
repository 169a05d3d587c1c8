#!/usr/bin/env bash
# Builds Examples/ — a separate package that depends on XferKit by path, as a user's package
# would — and runs its two programs from the repository's root: FineTune (the README's Swift
# example, line for line) and PredictPhoto (one photo's class, with the model FineTune saved).
# Fails when either does not build or run. Its own build folder (.build-examples) rebuilds
# XferKit once, a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$PWD/.build-examples"
swift build --package-path Examples --scratch-path "$scratch"
"$scratch/debug/FineTune" | tee "$scratch/FineTune.out"
grep -q "^test: loss: " "$scratch/FineTune.out"
"$scratch/debug/PredictPhoto" /tmp/fashion-tuned.keras checkpoints/fashion/test/7_sneaker/test_00112.png | tee "$scratch/PredictPhoto.out"
grep -q "^checkpoints/fashion/test/7_sneaker/test_00112.png: " "$scratch/PredictPhoto.out"
echo "examples: both built and ran"
