#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs the Swift tests, checks with real
# Keras that the .h5 files xfer writes load and predict identically, then fuzzes the readers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
swift build --build-tests
swift test --skip-build
# The man page is what the argument parser generates now (docs/xfer.1; about a minute).
scripts/man.sh --check
venv="$(scripts/keras-venv.sh)"
"$venv/bin/python" checkpoints/check_keras_loads.py .build/debug/xfer
# The files people deploy: Keras 3 loads every .keras/.weights.h5 xfer writes, onnxruntime runs
# every .onnx, and both predict what xfer predicts.
"$venv/bin/python" checkpoints/check_deploy_outputs.py .build/debug/xfer
# Damaged and hostile variants of the Keras-written fixtures against the error contract: a
# short run (300 mutants, about a minute); the long run is `scripts/fuzz.sh --count 20000`.
"$venv/bin/python" scripts/fuzz.py --xfer .build/debug/xfer --count "${XFER_FUZZ_COUNT:-300}" --seed "${XFER_FUZZ_SEED:-1}"
# keras.applications families built by Keras at full width (weights=None, seeded), in tf-keras
# .h5 and Keras 3 .keras: import counts, predictions and --freeze-until against Keras. One of
# each kind of block here (a few minutes); every family: XFER_FAMILIES=all. XFER_FAMILIES_TRAIN=1
# also fine-tunes each for two steps and has Keras load and predict the output (--train).
families="VGG16,ResNet50,ResNet50V2,MobileNet,MobileNetV2,MobileNetV3Small,EfficientNetB0,EfficientNetV2B0,InceptionV3,InceptionResNetV2,DenseNet121,Xception,NASNetMobile,ConvNeXtTiny"
if [ "${XFER_FAMILIES:-}" = all ]; then
  "$venv/bin/python" checkpoints/check_families.py .build/debug/xfer ${XFER_FAMILIES_TRAIN:+--train}
else
  "$venv/bin/python" checkpoints/check_families.py .build/debug/xfer --families "${XFER_FAMILIES:-$families}" ${XFER_FAMILIES_TRAIN:+--train}
fi
# Weights-only files of the families (tf-keras save_weights .h5, Keras 3 .weights.h5; without and
# with the top, and transfer models around the base): the architecture xfer infers gives Keras's
# counts and predictions. A few families and width variants here (a few minutes); any list with
# XFER_WEIGHTS_ONLY_FAMILIES (check_families.py's names, NAME@alpha=0.5 for a variant).
weights_only="MobileNet@alpha=0.25,MobileNetV2@alpha=0.35,MobileNetV3Small@alpha=0.75;minimalistic=True,EfficientNetB0,ConvNeXtTiny"
"$venv/bin/python" checkpoints/check_weights_only.py .build/debug/xfer --families "${XFER_WEIGHTS_ONLY_FAMILIES:-$weights_only}"
# The same files read at another input size, as the famous *_notop.h5 written at 224 are: odd
# sizes at a strided block change the correct_pad paddings (NASNet's adjust blocks need them).
"$venv/bin/python" checkpoints/check_weights_only.py .build/debug/xfer --modes notop,nested --size 75x97 \
  --families "${XFER_WEIGHTS_ONLY_SIZE_FAMILIES:-NASNetMobile,MobileNetV2@alpha=0.35,EfficientNetB0}"
# The README's Swift example, from a separate package that depends on XferKit by path (its own
# build folder, .build-examples), and the one-photo example.
scripts/examples.sh
# The DocC documentation (every public symbol, the tutorial) builds without a warning (.build-docs).
scripts/docs.sh
