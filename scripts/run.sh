#!/usr/bin/env bash
# The main job: real transfer learning on real images, on the CPU.
# A VGG-style network pretrained by Keras on Fashion-MNIST classes 0-4 (t-shirt,
# trouser, pullover, dress, coat) is fine-tuned by xfer on 1000 images of the other
# five classes (sandal, shirt, sneaker, bag, ankle boot) and evaluated on 500 held-out
# images. Installs what is missing and builds in release mode first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
swift build -c release --product xfer
xfer=.build/release/xfer
mkdir -p out
$xfer import checkpoints/fashion/fashion_vgg.h5
$xfer finetune checkpoints/fashion/fashion_vgg.h5 --data checkpoints/fashion/train \
  --freeze-until block3 --head flatten,dense:64:relu,dropout:0.5 \
  --optimizer sgd --lr 0.01 --momentum 0.9 --batch-size 32 --epochs 10 --seed 0 \
  --validation-split 0.1 \
  --output out/fashion-finetuned.h5 --plot out/fashion-curves.svg --csv-log out/fashion-log.csv
$xfer evaluate out/fashion-finetuned.h5 --data checkpoints/fashion/test
