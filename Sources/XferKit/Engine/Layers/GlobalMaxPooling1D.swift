// GlobalMaxPooling1D: the maximum over the steps of each channel (`channels_last`),
// (N, T, C) → (N, C), or (N, 1, C) with keepdims. It runs as GlobalMaxPooling2D on the
// image (1, T, C) (SequenceAsImage.swift), forward and backward. Keras's `mask` argument
// (a Masking layer before it) is not read: xfer has no masking layers.
//
// The Keras kind, `GlobalMaxPooling1DConfig`: its config as Keras reads and writes it,
// its output shape, and the engine layer it builds (Ops/LayerOp.swift).

/// Keras `GlobalMaxPooling1D`.
package struct GlobalMaxPooling1DConfig: SingleInputOp, Equatable {
    package var keepdims: Bool
    package init(keepdims: Bool = false) { self.keepdims = keepdims }

    package static var kerasClassNames: [String] { ["GlobalMaxPooling1D"] }
    package static var kerasAliases: [String] { ["GlobalMaxPool1D"] }

    package init(keras k: KerasLayerConfig) throws {
        if let f = k["data_format"] as? String, f != "channels_last" { throw k.unsupported("data_format '\(f)' (channels_last only)") }
        self.init(keepdims: k.bool("keepdims", default: false))
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["data_format"] = "channels_last"
        c["keepdims"] = keepdims
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (_, c) = try sequenceInput(input, layer: layer, kind: "GlobalMaxPooling1D")
        return keepdims ? [1, c] : [c]
    }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        _ = try sequenceInput(inputShape, layer: spec.name, kind: "GlobalMaxPooling1D")
        let inner = try GlobalMaxPooling2DLayer(name: spec.name, keepdims: keepdims, inputShape: [1] + inputShape)
        return SequenceAsImageLayer(inner, inputShape: inputShape)
    }
}
