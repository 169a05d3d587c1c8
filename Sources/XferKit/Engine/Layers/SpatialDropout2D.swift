// SpatialDropout2D: Dropout of whole feature maps (`channels_last`): in training each
// sample's channel is kept or dropped as one, which is Dropout with noise_shape
// (N, 1, 1, C) — Keras implements it so — and it runs as that DropoutLayer (Dropout.swift),
// forward and backward. The identity at inference.
//
// The Keras kind, `SpatialDropout2DConfig`: its config as Keras reads and writes it, its output
// shape, and the engine layer it builds (Ops/LayerOp.swift).

import Foundation

/// Keras `SpatialDropout2D`.
package struct SpatialDropout2DConfig: SingleInputOp, Equatable {
    package var rate: Float
    package var seed: Int?
    package init(rate: Float, seed: Int? = nil) { self.rate = rate; self.seed = seed }

    package static var kerasClassNames: [String] { ["SpatialDropout2D"] }

    package init(keras k: KerasLayerConfig) throws {
        if let f = k["data_format"] as? String, f != "channels_last" { throw k.unsupported("data_format '\(f)' (channels_last only)") }
        let d = try DropoutConfig(keras: k)
        self.init(rate: d.rate, seed: d.seed)
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["rate"] = Double(rate)
        c["data_format"] = "channels_last"
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    /// The Dropout it runs as: one draw per sample and channel.
    var asDropout: DropoutConfig { DropoutConfig(rate: rate, seed: seed, noiseShape: [nil, 1, 1, nil]) }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        _ = try spatialInput(input, layer: layer)
        return input
    }

    package var isRandomInTraining: Bool { rate > 0 }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        _ = try spatialInput(inputShape, layer: spec.name)
        return try DropoutLayer(name: spec.name, config: asDropout, inputShape: inputShape)
    }
}
