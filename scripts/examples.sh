#!/usr/bin/env bash
# Builds Examples/ — a separate package that depends on XferKit by path, as a user's package
# would — and runs its programs from the repository's root: FineTune (the README's Swift
# example, line for line), PredictPhoto (one photo's class, with the model FineTune saved) and
# DocExamples (every example of the public API's DocC comments, from scripts/doc_examples.py).
# Fails when one does not build or run. Its own build folder (.build-examples) rebuilds
# XferKit once, a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$PWD/.build-examples"
python3 scripts/doc_examples.py
swift build --package-path Examples --scratch-path "$scratch"
"$scratch/debug/FineTune" | tee "$scratch/FineTune.out"
grep -q "^test: loss: " "$scratch/FineTune.out"
"$scratch/debug/PredictPhoto" /tmp/fashion-tuned.keras checkpoints/fashion/test/7_sneaker/test_00112.png | tee "$scratch/PredictPhoto.out"
grep -q "^checkpoints/fashion/test/7_sneaker/test_00112.png: " "$scratch/PredictPhoto.out"
"$scratch/debug/DocExamples" >"$scratch/DocExamples.out" 2>&1 || { cat "$scratch/DocExamples.out"; exit 1; }
grep -E "^(FAILED|documentation examples)" "$scratch/DocExamples.out"
echo "examples: FineTune, PredictPhoto and DocExamples built and ran"
