// keras.applications' StochasticDepth(drop_path_rate) (ConvNeXt's residual branches): the
// identity at inference; in training each sample's branch is kept with probability
// 1 − rate and scaled by 1/(1 − rate), or dropped as a whole — Keras's
// `x / keep · floor(keep + u)` with one u per sample, which is Dropout with noise_shape
// (N, 1, …, 1). It runs as that DropoutLayer (Dropout.swift), forward and backward.
//
// The Keras kind, `StochasticDepthConfig`: its config as Keras reads and writes it (Keras 3
// registers it under keras.src.applications.convnext), its output shape, and the engine layer
// it builds (Ops/LayerOp.swift).

import Foundation

/// keras.applications' `StochasticDepth`.
package struct StochasticDepthConfig: SingleInputOp, Equatable {
    package var rate: Float
    package init(rate: Float) { self.rate = rate }

    package static var kerasClassNames: [String] { ["StochasticDepth"] }

    package init(keras k: KerasLayerConfig) throws {
        let rate = try k.double("drop_path_rate", in: 0...1)
        // Keras divides by 1 − rate: a rate of 1 gives NaN there.
        guard rate < 1 else { throw k.fail("layer '\(k.name)': StochasticDepth drop_path_rate 1 drops every branch; it must be below 1") }
        self.init(rate: Float(rate))
    }

    package func writeKeras(_ c: inout [String: Any], className: String) { c["drop_path_rate"] = Double(rate) }

    package var keras3Registration: (module: String, name: String)? { ("keras.src.applications.convnext", "StochasticDepth") }

    package func outputShape(input: [Int], layer: String) throws -> [Int] { input }
    package var isRandomInTraining: Bool { rate > 0 }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        let perSample = DropoutConfig(rate: rate, noiseShape: [nil] + inputShape.map { _ in 1 })
        return try DropoutLayer(name: spec.name, config: perSample, inputShape: inputShape)
    }
}
