// ReLU layer with Keras's `max_value`, `negative_slope`, `threshold`, computed as
// Keras 3's `ReLU.static_call` (`activations/activations.py`) does:
//
//   slope ≠ 0, no max, threshold 0:  leaky relu, x > 0 ? x : slope·x
//   otherwise:  p = threshold ≠ 0 ? (x > threshold ? x : 0) : max(x, 0)
//               p = clip(p, 0, max_value)            if max_value is set
//               p − slope·max(threshold − x, 0)      if slope ≠ 0
//
// Runs in place on its input.
//
// The Keras kind, `ReLUConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

import Foundation

/// A Keras `ReLU` layer.
package final class ReLULayer: TrainableLayer {
    package var training = false
    package var trainable = false
    /// (N, …): the last input, kept only for backward.
    var savedInput: Tensor?
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }
    let config: ReLUConfig

    init(name: String, config: ReLUConfig, inputShape: [Int]) {
        self.name = name; self.config = config; self.inputShape = inputShape
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        if context.keepForBackward { savedInput = copy x }
        var y = x
        let n = y.count, parts = min(n, ThreadPool.shared.threadCount * 4)
        let cfg = config
        y.values.withUnsafeMutableBufferPointer { py in
            let p = py.baseAddress!
            parallelFor(parts) { part, _ in
                for i in chunk(part, of: parts, total: n) { p[i] = relu(p[i], cfg) }
            }
        }
        return y
    }
}

extension ReLULayer {
    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient, let x = savedInput else { return nil }
        var dx = dy
        let cfg = config
        dx.values.withUnsafeMutableBufferPointer { pd in
            x.values.withUnsafeBufferPointer { px in
                for i in 0..<pd.count { pd[i] *= reluDerivative(px[i], cfg) }
            }
        }
        savedInput = nil
        return dx
    }
}

/// d relu / dx of Keras's `relu`, piece by piece as its forward is built (0 at the kinks,
/// as TensorFlow's ReluGrad).
@inline(__always)
func reluDerivative(_ x: Float, _ c: ReLUConfig) -> Float {
    if c.negativeSlope != 0 && c.maxValue == nil && c.threshold == 0 {
        return x > 0 ? 1 : c.negativeSlope
    }
    let p = c.threshold != 0 ? (x > c.threshold ? x : 0) : max(x, 0)
    var d: Float = (c.threshold != 0 ? x > c.threshold : x > 0) ? 1 : 0
    if let top = c.maxValue, p < 0 || p > top { d = 0 }  // clip(p, 0, max_value)
    if c.negativeSlope != 0 && x < c.threshold { d += c.negativeSlope }
    return d
}

/// Keras's `relu(x, negative_slope, max_value, threshold)` of one value.
@inline(__always)
func relu(_ x: Float, _ c: ReLUConfig) -> Float {
    if c.negativeSlope != 0 && c.maxValue == nil && c.threshold == 0 {
        return x > 0 ? x : c.negativeSlope * x
    }
    var p = c.threshold != 0 ? (x > c.threshold ? x : 0) : max(x, 0)
    if let top = c.maxValue { p = min(max(p, 0), top) }
    if c.negativeSlope != 0 { p -= c.negativeSlope * max(c.threshold - x, 0) }
    return p
}

// MARK: The Keras kind

/// Keras `ReLU` (`max_value`, `negative_slope`, `threshold`), and `LeakyReLU` read as a ReLU
/// with a negative slope.
package struct ReLUConfig: SingleInputOp, Equatable {
    package var maxValue: Float?
    package var negativeSlope: Float
    package var threshold: Float
    package init(maxValue: Float? = nil, negativeSlope: Float = 0, threshold: Float = 0) {
        self.maxValue = maxValue; self.negativeSlope = negativeSlope; self.threshold = threshold
    }

    package static var kerasClassNames: [String] { ["ReLU", "LeakyReLU"] }

    package init(keras k: KerasLayerConfig) throws {
        if k.className == "LeakyReLU" {
            // x, or slope·x below 0: ReLU with a negative slope (tf-keras `alpha`, Keras 3 `negative_slope`).
            let slope = try k.double(k["negative_slope"] != nil ? "negative_slope" : "alpha", default: 0.3)
            self.init(maxValue: nil, negativeSlope: Float(slope), threshold: 0)
            return
        }
        let maxValue = k["max_value"] == nil || k["max_value"] is NSNull ? nil : Float(try k.double("max_value", in: 0...1e30))
        self.init(maxValue: maxValue, negativeSlope: Float(try k.double("negative_slope", default: 0)),
                  threshold: Float(try k.double("threshold", default: 0)))
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        if className == "LeakyReLU" {
            c["alpha"] = Double(negativeSlope)
            return
        }
        c["max_value"] = maxValue.map { Double($0) as Any } ?? NSNull()
        c["negative_slope"] = Double(negativeSlope)
        c["threshold"] = Double(threshold)
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] { input }
    package var finishesBlock: Bool { true }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        ReLULayer(name: spec.name, config: self, inputShape: inputShape)
    }
}
