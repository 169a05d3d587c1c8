// Dropout: the identity at inference (Keras drops only when called with training=True).
// Training: inverted dropout, each value kept with probability 1 − rate and scaled by
// 1/(1 − rate), dropped to 0 otherwise; the mask comes from a seeded generator (TensorFlow's
// random stream cannot be reproduced, so masks differ from Keras's but are repeatable).
// Keras's `noise_shape` shares one draw along the axes it gives as 1 (`(None, 1, 1, C)`: one
// per sample and channel, as SpatialDropout2D; `(None, 1, 1, 1)`: one per sample, as
// StochasticDepth); the mask is drawn at that shape and broadcast.
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
    /// Per axis, batch axis first: whether one draw is shared along it (noise_shape 1).
    let shared: [Bool]

    init(name: String, config: DropoutConfig, inputShape: [Int]) throws {
        guard config.rate >= 0 && config.rate <= 1 else {
            throw XferError.badInput("layer '\(name)'", "Dropout rate \(config.rate) is outside [0, 1]")
        }
        self.name = name; self.inputShape = inputShape; rate = config.rate
        shared = try config.sharedAxes(input: inputShape, layer: name)
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        guard training && rate > 0 else { mask = nil; return x }
        var y = x
        let scale: Float = rate >= 1 ? 0 : 1 / (1 - rate)
        // One 64-bit draw gives the uniform for one value of the noise shape; a value is kept
        // when u ≥ rate.
        let shape = y.shape
        let noise = zip(shape, shared).map { $1 ? 1 : $0 }
        let draws = (0..<noise.reduce(1, *)).map { _ -> Float in
            let u = Float(random.next() >> 40) / Float(1 << 24)
            return u >= rate ? scale : 0
        }
        var m = [Float](repeating: 0, count: y.count)
        if !shared.contains(true) {
            m = draws
        } else {
            // Each value's draw: its index with the shared axes set to 0.
            var noiseStrides = [Int](repeating: 1, count: noise.count)
            for a in stride(from: noise.count - 2, through: 0, by: -1) { noiseStrides[a] = noiseStrides[a + 1] * noise[a + 1] }
            var index = [Int](repeating: 0, count: shape.count)
            for i in 0..<m.count {
                var k = 0
                for a in 0..<shape.count where !shared[a] { k += index[a] * noiseStrides[a] }
                m[i] = draws[k]
                var a = shape.count - 1
                while a >= 0 { index[a] += 1; if index[a] < shape[a] { break }; index[a] = 0; a -= 1 }
            }
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

/// Keras `Dropout`: a rate in [0, 1), an optional seed, an optional `noise_shape`.
package struct DropoutConfig: SingleInputOp, Equatable {
    package var rate: Float
    package var seed: Int?
    /// Keras's `noise_shape`, batch axis first: nil for an axis of full size (None, or the
    /// axis's own size), 1 where one draw is shared. Nil: no noise shape.
    package var noiseShape: [Int?]?
    package init(rate: Float, seed: Int? = nil, noiseShape: [Int?]? = nil) {
        self.rate = rate; self.seed = seed; self.noiseShape = noiseShape
    }

    package static var kerasClassNames: [String] { ["Dropout"] }

    package init(keras k: KerasLayerConfig) throws {
        // Keras: "rate must be a float in the range [0, 1)".
        let rate = try k.double("rate", in: 0...1)
        guard rate < 1 else { throw k.fail("layer '\(k.name)': Dropout rate 1 drops everything; it must be below 1") }
        var noise: [Int?]?
        switch k["noise_shape"] {
        case nil, is NSNull: noise = nil
        case let l as [Any]:
            noise = try l.map { v -> Int? in v is NSNull ? nil : try k.size(v, "noise_shape") }
        case let v?: throw k.fail("layer '\(k.name)': 'noise_shape' is \(describe(v)), not a list")
        }
        self.init(rate: Float(rate), seed: exactInt(k["seed"]), noiseShape: noise)
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["rate"] = Double(rate)
        c["noise_shape"] = noiseShape.map { $0.map { $0.map { $0 as Any } ?? NSNull() } } ?? NSNull()
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    /// Per axis (batch first) of an input `input`, whether one draw is shared along it; each
    /// noise size must be 1 or the axis's own size, as TensorFlow's dropout broadcasts it.
    func sharedAxes(input: [Int], layer: String) throws -> [Bool] {
        guard let noiseShape else { return [Bool](repeating: false, count: input.count + 1) }
        guard noiseShape.count == input.count + 1 else {
            throw XferError.badInput(layer, "Dropout noise_shape \(noiseShape.map { $0.map(String.init) ?? "None" }) has \(noiseShape.count) axes but the input (N, \(input.map(String.init).joined(separator: ", "))) has \(input.count + 1)")
        }
        return try zip(noiseShape, [-1] + input).map { noise, size in
            guard let noise else { return false }
            if noise == 1 && size != 1 { return true }
            guard noise == size || size == -1 else {
                throw XferError.badInput(layer, "Dropout noise_shape size \(noise) on an axis of \(size) (it must be 1 or \(size))")
            }
            return false
        }
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        _ = try sharedAxes(input: input, layer: layer)
        return input
    }
    package var isRandomInTraining: Bool { rate > 0 }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try DropoutLayer(name: spec.name, config: self, inputShape: inputShape)
    }
}
