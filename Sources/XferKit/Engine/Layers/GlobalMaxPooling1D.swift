// GlobalMaxPooling1D: the maximum over the steps of each channel (`channels_last`),
// (N, T, C) → (N, C), or (N, 1, C) with keepdims. It runs as GlobalMaxPooling2D on the
// image (1, T, C) (SequenceAsImage.swift), forward and backward. Keras's `mask` argument
// (a Masking layer before it) is not read: xfer has no masking layers.
//
// The Keras kind, `GlobalMaxPooling1DConfig`: its config as Keras reads and writes it, its output shape
// and the engine layer it builds are those of every 1-D global pooling (GlobalPooling1DKind,
// SequenceAsImage.swift).

/// Keras `GlobalMaxPooling1D`.
package struct GlobalMaxPooling1DConfig: GlobalPooling1DKind, Equatable {
    package var keepdims: Bool
    package init(keepdims: Bool = false) { self.keepdims = keepdims }

    static let kind = "GlobalMaxPooling1D"
    package static var kerasAliases: [String] { ["GlobalMaxPool1D"] }

    static func imageLayer(name: String, keepdims: Bool, inputShape: [Int]) throws -> any TrainableLayer {
        try GlobalMaxPooling2DLayer(name: name, keepdims: keepdims, inputShape: inputShape)
    }
}
