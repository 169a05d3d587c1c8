#!/usr/bin/env bash
# The main job on the bundled checkpoint: installs what is missing, builds in
# release mode, and imports the default Keras checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh
swift build -c release
.build/release/xfer import checkpoints/fixtures/k2_vgg_full.h5
