// Dropout: the identity at inference (Keras drops only when called with training=True).
// Training: inverted dropout, each value kept with probability 1 − rate and scaled by
// 1/(1 − rate), dropped to 0 otherwise; the mask comes from a seeded generator (TensorFlow's
// random stream cannot be reproduced, so masks differ from Keras's but are repeatable).
//
// The Keras kind, `DropoutConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

import Foundation

/// A Keras `Dropout` layer.
package final class DropoutLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    /// The generator of the masks; the training network seeds it.
    package var random = SeededRandom(seed: 0)
    /// (N, …): the last mask as scale factors (0 or 1/(1 − rate)).
    var mask: [Float]?
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }
    let rate: Float

    init(name: String, config: DropoutConfig, inputShape: [Int]) throws {
        guard config.rate >= 0 && config.rate <= 1 else {
            throw XferError.badInput("layer '\(name)'", "Dropout rate \(config.rate) is outside [0, 1]")
        }
        self.name = name; self.inputShape = inputShape; rate = config.rate
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        guard training && rate > 0 else { mask = nil; return x }
        var y = x
        let scale: Float = rate >= 1 ? 0 : 1 / (1 - rate)
        // One 64-bit draw gives the uniform for one value; a value is kept when u ≥ rate.
        var m = [Float](repeating: 0, count: y.count)
        for i in 0..<m.count {
            let u = Float(random.next() >> 40) / Float(1 << 24)
            m[i] = u >= rate ? scale : 0
        }
        y.values.withUnsafeMutableBufferPointer { py in
            for i in 0..<py.count { py[i] *= m[i] }
        }
        mask = m
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        guard let m = mask else { return dy }
        var dx = dy
        dx.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] *= m[i] }
        }
        return dx
    }
}

// MARK: The Keras kind

/// Keras `Dropout`: a rate in [0, 1), an optional seed.
package struct DropoutConfig: SingleInputOp, Equatable {
    package var rate: Float
    package var seed: Int?
    package init(rate: Float, seed: Int? = nil) { self.rate = rate; self.seed = seed }

    package static var kerasClassNames: [String] { ["Dropout"] }

    package init(keras k: KerasLayerConfig) throws {
        // Keras: "rate must be a float in the range [0, 1)".
        let rate = try k.double("rate", in: 0...1)
        guard rate < 1 else { throw k.fail("layer '\(k.name)': Dropout rate 1 drops everything; it must be below 1") }
        self.init(rate: Float(rate), seed: exactInt(k["seed"]))
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["rate"] = Double(rate)
        c["noise_shape"] = NSNull()
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] { input }
    package var isRandomInTraining: Bool { rate > 0 }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try DropoutLayer(name: spec.name, config: self, inputShape: inputShape)
    }
}
