#!/usr/bin/env bash
# Regenerates Sources/XferKit/ONNX/onnx.pb.swift from scripts/onnx/onnx.proto (which is
# onnx/onnx.proto of the `onnx` package on PyPI). Needs protoc (Debian: protobuf-compiler) and
# protoc-gen-swift built from swift-protobuf at the version Package.swift names:
#   git clone --branch 1.39.0 https://github.com/apple/swift-protobuf /tmp/swift-protobuf
#   (cd /tmp/swift-protobuf && swift build -c release --product protoc-gen-swift)
# Not part of the build or of CI: the generated file is committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
plugin="${PROTOC_GEN_SWIFT:-/tmp/swift-protobuf/.build/release/protoc-gen-swift}"
out="$(mktemp -d)"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Internal \
  --proto_path=scripts/onnx --swift_out="$out" scripts/onnx/onnx.proto
{ sed -n '1,/^\/\/$/p' Sources/XferKit/ONNX/onnx.pb.swift; cat "$out/onnx.pb.swift"; } > "$out/with-header.swift"
mv "$out/with-header.swift" Sources/XferKit/ONNX/onnx.pb.swift
rm -rf "$out"
