// LayerNormalization over the last axis (ConvNeXt's), as Keras computes it in float32:
//
//   μ, σ² = mean and variance of x over the C channels of each position
//   y = (x − μ) · rsqrt(σ² + ε) · γ + β          (γ when scale=True, β when center=True)
//
// Training and inference compute the same (no moving statistics). Backward per position, with
// x̂ = (x − μ)·r, r = rsqrt(σ² + ε):
//   dγ += Σ dy·x̂,  dβ += Σ dy,  dx = r · (g − mean(g) − x̂ · mean(g·x̂)),  g = dy·γ
// `layerNormForwardNaive` is the definition in Double, the oracle in tests.
//
// The Keras kind, `LayerNormalizationConfig` (end of file).

import Foundation

/// A Keras `LayerNormalization` layer.
final class LayerNormalizationLayer: TrainableLayer {
    var training = false
    var trainable = false
    let name: String
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }
    let config: LayerNormalizationConfig
    var gamma: [Float]?
    var beta: [Float]?
    var savedInput: Tensor?
    private(set) var dGamma: [Float] = []
    private(set) var dBeta: [Float] = []

    init(name: String, config: LayerNormalizationConfig, inputShape: [Int], gamma: [Float]?, beta: [Float]?) {
        self.name = name; self.config = config; self.inputShape = inputShape; self.gamma = gamma; self.beta = beta
    }

    private var channels: Int { inputShape.last ?? 1 }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let c = channels, eps = config.epsilon
        var y = context.output(x.shape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                let rows = px.count / c
                let parts = min(rows, ThreadPool.shared.threadCount * 4)
                let px = px.baseAddress!, py = py.baseAddress!
                parallelFor(parts) { part, _ in
                    for r in chunk(part, of: parts, total: rows) {
                        let row = px + r * c, out = py + r * c
                        let (mean, rstd) = moments(row, c, eps)
                        for k in 0..<c {
                            var v = (row[k] - mean) * rstd
                            if let gamma { v *= gamma[k] }
                            if let beta { v += beta[k] }
                            out[k] = v
                        }
                    }
                }
            }
        }
        savedInput = context.release(x)
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard trainable || needInputGradient else { return nil }
        guard let x = savedInput else { preconditionFailure("layer '\(name)': backward without a forward that kept its input") }
        let c = channels, eps = config.epsilon
        if trainable { allocateGradients() }
        var dx = needInputGradient ? context.output(x.shape) : Tensor(shape: [0], values: [])
        x.values.withUnsafeBufferPointer { px in
            dy.values.withUnsafeBufferPointer { pdy in
                dx.values.withUnsafeMutableBufferPointer { pdx in
                    let rows = px.count / c
                    var g = [Float](repeating: 0, count: c), xhat = [Float](repeating: 0, count: c)
                    for r in 0..<rows {
                        let row = px.baseAddress! + r * c, d = pdy.baseAddress! + r * c
                        let (mean, rstd) = moments(row, c, eps)
                        var sumG: Float = 0, sumGX: Float = 0
                        for k in 0..<c {
                            xhat[k] = (row[k] - mean) * rstd
                            if trainable {
                                if gamma != nil { dGamma[k] += d[k] * xhat[k] }
                                if beta != nil { dBeta[k] += d[k] }
                            }
                            g[k] = d[k] * (gamma?[k] ?? 1)
                            sumG += g[k]; sumGX += g[k] * xhat[k]
                        }
                        guard needInputGradient else { continue }
                        let mg = sumG / Float(c), mgx = sumGX / Float(c)
                        let out = pdx.baseAddress! + r * c
                        for k in 0..<c { out[k] = rstd * (g[k] - mg - xhat[k] * mgx) }
                    }
                }
            }
        }
        return needInputGradient ? dx : nil
    }

    private func allocateGradients() {
        if let gamma, dGamma.isEmpty { dGamma = [Float](repeating: 0, count: gamma.count) }
        if let beta, dBeta.isEmpty { dBeta = [Float](repeating: 0, count: beta.count) }
    }

    func zeroGradients() {
        allocateGradients()
        dGamma.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        dBeta.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        guard trainable else { return }
        allocateGradients()
        if gamma != nil { dGamma.withUnsafeBufferPointer { g in gamma!.withUnsafeMutableBufferPointer { body(.gamma, $0, g) } } }
        if beta != nil { dBeta.withUnsafeBufferPointer { g in beta!.withUnsafeMutableBufferPointer { body(.beta, $0, g) } } }
    }

    func currentWeights() -> [WeightRole: [Float]] {
        var w: [WeightRole: [Float]] = [:]
        if let gamma { w[.gamma] = gamma }
        if let beta { w[.beta] = beta }
        return w
    }
}

/// Mean and rsqrt(variance + ε) of `c` values, summed in Double.
@inline(__always)
private func moments(_ row: UnsafePointer<Float>, _ c: Int, _ eps: Float) -> (Float, Float) {
    var s = 0.0
    for k in 0..<c { s += Double(row[k]) }
    let mean = s / Double(c)
    var v = 0.0
    for k in 0..<c { let d = Double(row[k]) - mean; v += d * d }
    return (Float(mean), Float(1 / (v / Double(c) + Double(eps)).squareRoot()))
}

/// The definition in Double: the test oracle. x (…, C) → y (…, C).
func layerNormForwardNaive(_ x: Tensor, gamma: [Float]?, beta: [Float]?, epsilon: Float) -> [Float] {
    let c = x.shape.last!
    var y = [Float](repeating: 0, count: x.count)
    for r in 0..<(x.count / c) {
        let row = (0..<c).map { Double(x.values[r * c + $0]) }
        let mean = row.reduce(0, +) / Double(c)
        let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
        for k in 0..<c {
            y[r * c + k] = Float((row[k] - mean) / (variance + Double(epsilon)).squareRoot() * Double(gamma?[k] ?? 1) + Double(beta?[k] ?? 0))
        }
    }
    return y
}

// MARK: The Keras kind

/// Keras `LayerNormalization` over the last axis.
struct LayerNormalizationConfig: SingleInputOp, Equatable {
    var epsilon: Float = 1e-3
    var center = true
    var scale = true

    static var kerasClassNames: [String] { ["LayerNormalization"] }

    init(epsilon: Float = 1e-3, center: Bool = true, scale: Bool = true) {
        self.epsilon = epsilon; self.center = center; self.scale = scale
    }

    init(keras k: KerasLayerConfig) throws {
        let axis = k["axis"] ?? -1
        let axes = (axis as? [Any]) ?? [axis]
        guard axes.count == 1, let a = exactInt(axes[0]), a == -1 || a > 0 else {
            throw k.unsupported("axis \(describe(axis)); xfer normalises over the last axis only")
        }
        if k.bool("rms_scaling", default: false) { throw k.unsupported("rms_scaling=True") }
        self.init(epsilon: Float(try k.double("epsilon", in: 0...1, default: 1e-3)),
                  center: k.bool("center", default: true), scale: k.bool("scale", default: true))
        lastAxis = a
    }

    /// The axis as written, counting the batch axis (−1: the last); checked against the input.
    var lastAxis = -1

    static func == (a: Self, b: Self) -> Bool { a.epsilon == b.epsilon && a.center == b.center && a.scale == b.scale }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["axis"] = [-1]
        c["epsilon"] = Double(epsilon)
        c["center"] = center
        c["scale"] = scale
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        guard lastAxis == -1 || lastAxis == input.count else {
            throw XferError.badInput(layer, "LayerNormalization over axis \(lastAxis) of an input \(shapeText(input)); xfer normalises over the last axis only")
        }
        return input
    }

    func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        let c = input.last ?? 0
        var w: [ExpectedWeight] = []
        if scale { w.append((.gamma, [c], true)) }
        if center { w.append((.beta, [c], true)) }
        return w
    }

    var hasWeights: Bool { scale || center }
    var finishesBlock: Bool { true }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        let c = inputShape.last ?? 0
        let gamma = scale ? try spec.values(.gamma, shape: [c]) : nil
        let beta = center ? try spec.values(.beta, shape: [c]) : nil
        try spec.onlyWeights((scale ? [.gamma] : []) + (center ? [.beta] : []))
        return LayerNormalizationLayer(name: spec.name, config: self, inputShape: inputShape, gamma: gamma, beta: beta)
    }
}
