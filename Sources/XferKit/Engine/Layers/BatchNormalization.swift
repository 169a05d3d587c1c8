// BatchNormalization on the last axis (KERAS-FORMATS B.5), per channel c, over the
// n = N·H·W (or N, after Dense) values of the batch:
//
//   inference (training == false), the moving statistics:
//     y = x·inv + (β − mean·inv),  inv = γ · rsqrt(moving_variance + ε)
//   training, the batch statistics μ and biased σ², in the same form with
//     inv = γ · rsqrt(σ² + ε); then
//     moving_mean     = moving_mean·momentum + μ·(1 − momentum)
//     moving_variance = moving_variance·momentum + σ²_upd·(1 − momentum)
//   where σ²_upd = σ² (Keras 3, tf-keras non-fused) or σ²·n/(n−1) (tf-keras fused:
//   `besselCorrection`, which the network sets).
//
// γ is 1 when `scale=False`, β is 0 when `center=False` (Keras creates no such weight
// then). Without keeping for backward it runs in place on its input.
//
// Backward, x̂ = (x − μ)/√(σ² + ε), sums over the n values of a channel:
//   training:  dβ += Σ dy,  dγ += Σ dy·x̂,
//              dx = γ/√(σ² + ε) · (dy − mean(dy) − x̂·mean(dy·x̂))   (TF `FusedBatchNormGrad`)
//   inference: x̂ from the moving statistics; dβ, dγ the same; dx = dy·γ/√(mv + ε)
// Only γ and β train; the moving statistics never take gradients.
//
// The Keras kind, `BatchNormConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Keras `BatchNormalization` layer (axis −1).
package final class BatchNormalizationLayer: TrainableLayer {
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }
    let config: BatchNormConfig
    /// (C) each; gamma/beta nil when the layer has no such weight.
    var gamma: [Float]?, beta: [Float]?, movingMean: [Float], movingVariance: [Float]
    /// (C): the per-channel affine map of inference mode (the moving statistics).
    private(set) var scale: [Float] = [], shift: [Float] = []
    /// `scale`/`shift` predate a change of the moving statistics.
    private var affineIsStale = false

    /// Batch statistics and moving updates (Keras's `training`). The network leaves a
    /// frozen layer in inference mode, as Keras does.
    package var training = false
    /// γ and β take gradients and are handed to the optimizer.
    package var trainable = false
    /// The moving variance takes the unbiased batch variance σ²·n/(n−1) (tf-keras's fused
    /// kernel, the Keras 2 path for 4-D input); false: the biased σ² (Keras 3).
    package var besselCorrection = false

    /// (C) each: gradients of γ and β, allocated when the layer first trains.
    private(set) var dGamma: [Float] = [], dBeta: [Float] = []
    /// What the last forward kept for backward (only when the context asked): its input
    /// (N, …, C), whether it ran in training mode, and then the batch mean and
    /// 1/√(σ² + ε) (C each).
    private var savedInput: Tensor?
    private var savedTraining = false
    private var savedMean: [Float] = [], savedInverseStd: [Float] = []

    init(name: String, config: BatchNormConfig, inputShape: [Int], gamma: [Float]?, beta: [Float]?,
         movingMean: [Float], movingVariance: [Float]) throws {
        guard let c = inputShape.last else {
            throw XferError.badInput("layer '\(name)'", "BatchNormalization on a scalar input")
        }
        precondition(movingMean.count == c && movingVariance.count == c
                     && (gamma?.count ?? c) == c && (beta?.count ?? c) == c)
        self.name = name; self.inputShape = inputShape; self.config = config
        self.gamma = gamma; self.beta = beta
        self.movingMean = movingMean; self.movingVariance = movingVariance
        updateAffine()
    }

    convenience init(spec: LayerSpec, config: BatchNormConfig, inputShape: [Int]) throws {
        guard let c = inputShape.last else {
            throw XferError.badInput("layer '\(spec.name)'", "BatchNormalization on a scalar input")
        }
        let gamma = config.scale ? try spec.values(.gamma, shape: [c]) : nil
        let beta = config.center ? try spec.values(.beta, shape: [c]) : nil
        let mean = try spec.values(.movingMean, shape: [c])
        let variance = try spec.values(.movingVariance, shape: [c])
        try spec.onlyWeights((config.scale ? [.gamma] : []) + (config.center ? [.beta] : [])
                             + [.movingMean, .movingVariance])
        try self.init(name: spec.name, config: config, inputShape: inputShape, gamma: gamma, beta: beta,
                      movingMean: mean, movingVariance: variance)
    }

    var channels: Int { movingMean.count }

    /// Recomputes `scale`/`shift` from γ, β and the moving statistics (after they change).
    func updateAffine() {
        (scale, shift) = affine(mean: movingMean, inverseStd: movingVariance.map { 1 / sqrtf($0 + config.epsilon) })
        affineIsStale = false
    }

    /// scale = γ·inverseStd, shift = β − mean·scale.
    private func affine(mean: [Float], inverseStd: [Float]) -> (scale: [Float], shift: [Float]) {
        let scale = (0..<channels).map { i in (gamma?[i] ?? 1) * inverseStd[i] }
        return (scale, (0..<channels).map { i in (beta?[i] ?? 0) - mean[i] * scale[i] })
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let map: (scale: [Float], shift: [Float])
        if training {
            let (mean, variance) = batchMoments(x)
            let inverseStd = variance.map { 1 / sqrtf($0 + config.epsilon) }
            map = affine(mean: mean, inverseStd: inverseStd)
            updateMovingStatistics(mean: mean, variance: variance, count: x.count / channels)
            affineIsStale = true
            if context.keepForBackward { savedMean = mean; savedInverseStd = inverseStd }
        } else {
            // A trainable layer's γ and β may have changed since the last forward (the
            // optimizer writes them in place).
            if trainable || affineIsStale { updateAffine() }
            map = (scale, shift)
        }
        savedTraining = training
        guard context.keepForBackward else {
            savedInput = nil
            var y = x
            normalize(&y, from: nil, map)
            return y
        }
        var y = context.output(x.shape)
        normalize(&y, from: x, map)
        savedInput = context.release(x)
        return y
    }

    /// y = x·scale + shift per channel; x is y itself when nil.
    private func normalize(_ y: inout Tensor, from x: Tensor?, _ map: (scale: [Float], shift: [Float])) {
        let c = channels, rows = y.count / c
        let parts = min(rows, ThreadPool.shared.threadCount * 4)
        let run = { (px: UnsafePointer<Float>, py: UnsafeMutablePointer<Float>) in
            map.scale.withUnsafeBufferPointer { ps in
                map.shift.withUnsafeBufferPointer { pt in
                    let ps = ps.baseAddress!, pt = pt.baseAddress!
                    parallelFor(parts) { part, _ in
                        for r in chunk(part, of: parts, total: rows) {
                            let src = px + r * c, dst = py + r * c
                            for ch in 0..<c { dst[ch] = src[ch] * ps[ch] + pt[ch] }
                        }
                    }
                }
            }
        }
        y.values.withUnsafeMutableBufferPointer { py in
            if let x {
                x.values.withUnsafeBufferPointer { px in run(px.baseAddress!, py.baseAddress!) }
            } else {
                run(UnsafePointer(py.baseAddress!), py.baseAddress!)
            }
        }
    }

    /// Per channel: the mean and the biased variance of x (N, …, C), two passes, summed in Double.
    private func batchMoments(_ x: Tensor) -> (mean: [Float], variance: [Float]) {
        let c = channels, rows = x.count / c
        precondition(rows > 0, "layer '\(name)': BatchNormalization training on an empty batch")
        let zero = [Float](repeating: 0, count: c)
        let mean = channelSums(x, dy: nil, center: zero, inverseStd: nil).first.map { Float($0 / Double(rows)) }
        let variance = channelSums(x, dy: nil, center: mean, inverseStd: nil).second.map { Float($0 / Double(rows)) }
        return (mean, variance)
    }

    /// Per channel, over the rows of x (N, …, C), with t = x − center:
    ///   without dy: first = Σ t, second = Σ t²
    ///   with dy:    first = Σ dy, second = Σ dy·t·inverseStd  (Σ dy·x̂)
    /// Split over the pool, each part summing in Double.
    private func channelSums(_ x: Tensor, dy: Tensor?, center: [Float], inverseStd: [Float]?)
        -> (first: [Double], second: [Double]) {
        let c = channels, rows = x.count / c
        let parts = max(1, min(ThreadPool.shared.threadCount * 4, rows / 64))
        var partial = [Double](repeating: 0, count: parts * 2 * c)  // (parts, 2, C)
        let body = { (px: UnsafePointer<Float>, pg: UnsafePointer<Float>?, pc: UnsafePointer<Float>,
                      pi: UnsafePointer<Float>?, pp: UnsafeMutablePointer<Double>) in
            parallelFor(parts) { part, _ in
                let s1 = pp + part * 2 * c, s2 = s1 + c
                for r in chunk(part, of: parts, total: rows) {
                    let xr = px + r * c
                    if let pg, let pi {
                        let gr = pg + r * c
                        for ch in 0..<c {
                            let g = gr[ch]
                            s1[ch] += Double(g)
                            s2[ch] += Double(g * ((xr[ch] - pc[ch]) * pi[ch]))
                        }
                    } else {
                        for ch in 0..<c {
                            let t = Double(xr[ch] - pc[ch])
                            s1[ch] += t
                            s2[ch] += t * t
                        }
                    }
                }
            }
        }
        let scales = inverseStd ?? []
        x.values.withUnsafeBufferPointer { px in
            center.withUnsafeBufferPointer { pc in
                scales.withUnsafeBufferPointer { pi in
                    partial.withUnsafeMutableBufferPointer { pp in
                        if let dy {
                            dy.values.withUnsafeBufferPointer { pg in
                                body(px.baseAddress!, pg.baseAddress!, pc.baseAddress!, pi.baseAddress!, pp.baseAddress!)
                            }
                        } else {
                            body(px.baseAddress!, nil, pc.baseAddress!, nil, pp.baseAddress!)
                        }
                    }
                }
            }
        }
        var first = [Double](repeating: 0, count: c), second = first
        for part in 0..<parts {
            for ch in 0..<c {
                first[ch] += partial[part * 2 * c + ch]
                second[ch] += partial[(part * 2 + 1) * c + ch]
            }
        }
        return (first, second)
    }

    private func updateMovingStatistics(mean: [Float], variance: [Float], count n: Int) {
        let momentum = config.momentum, rest = 1 - config.momentum
        let correction: Float = besselCorrection && n > 1 ? Float(n) / Float(n - 1) : 1
        for ch in 0..<channels {
            movingMean[ch] = movingMean[ch] * momentum + mean[ch] * rest
            movingVariance[ch] = movingVariance[ch] * momentum + variance[ch] * correction * rest
        }
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        let learns = trainable && (gamma != nil || beta != nil)
        guard learns || needInputGradient else { return nil }
        guard let x = savedInput else {
            preconditionFailure("layer '\(name)': backward without a forward that kept its input (keepForBackward)")
        }
        precondition(dy.shape == x.shape, "layer '\(name)': dy has shape \(dy.shape), expected \(x.shape)")
        let c = channels, rows = x.count / c
        // x̂ = (x − mean)·inverseStd with the statistics the forward used.
        let mean = savedTraining ? savedMean : movingMean
        let inverseStd = savedTraining ? savedInverseStd : movingVariance.map { 1 / sqrtf($0 + config.epsilon) }
        // Σ dy and Σ dy·x̂ per channel: needed by dβ, dγ and the training-mode dx.
        var sumDy = [Double](repeating: 0, count: c), sumDyXhat = sumDy
        if learns || savedTraining {
            (sumDy, sumDyXhat) = channelSums(x, dy: dy, center: mean, inverseStd: inverseStd)
        }
        if learns {
            if dGamma.isEmpty && gamma != nil { dGamma = [Float](repeating: 0, count: c) }
            if dBeta.isEmpty && beta != nil { dBeta = [Float](repeating: 0, count: c) }
            for ch in 0..<c {
                if gamma != nil { dGamma[ch] += Float(sumDyXhat[ch]) }
                if beta != nil { dBeta[ch] += Float(sumDy[ch]) }
            }
        }
        guard needInputGradient else { return nil }
        // dx = a·dy + b·(x − μ) + d per channel, with (training)
        //   a = γ·inv,  b = −a·inv·mean(dy·x̂),  d = −a·mean(dy)
        // and (inference) a = γ·inv, b = d = 0.
        var a = [Float](repeating: 0, count: c), b = a, d = a
        for ch in 0..<c {
            a[ch] = (gamma?[ch] ?? 1) * inverseStd[ch]
            if savedTraining {
                let meanDy = Float(sumDy[ch] / Double(rows)), meanDyXhat = Float(sumDyXhat[ch] / Double(rows))
                b[ch] = -a[ch] * inverseStd[ch] * meanDyXhat
                d[ch] = -a[ch] * meanDy
            }
        }
        var dx = context.output(x.shape)
        let parts = min(rows, ThreadPool.shared.threadCount * 4)
        let coefficients = a + b + d + mean  // (4, C)
        x.values.withUnsafeBufferPointer { px in
            dy.values.withUnsafeBufferPointer { pg in
                coefficients.withUnsafeBufferPointer { pk in
                    dx.values.withUnsafeMutableBufferPointer { pdx in
                        let px = px.baseAddress!, pg = pg.baseAddress!, pdx = pdx.baseAddress!
                        let pa = pk.baseAddress!, pb = pa + c, pd = pb + c, pm = pd + c
                        parallelFor(parts) { part, _ in
                            for r in chunk(part, of: parts, total: rows) {
                                let xr = px + r * c, gr = pg + r * c, out = pdx + r * c
                                for ch in 0..<c { out[ch] = pa[ch] * gr[ch] + pb[ch] * (xr[ch] - pm[ch]) + pd[ch] }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }

    package func zeroGradients() {
        if !dGamma.isEmpty { dGamma.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
        if !dBeta.isEmpty { dBeta.withUnsafeMutableBufferPointer { $0.update(repeating: 0) } }
    }

    /// `.gamma` then `.beta` (those the layer has), when the layer is trainable.
    package func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        guard trainable else { return }
        let c = channels
        if gamma != nil {
            if dGamma.isEmpty { dGamma = [Float](repeating: 0, count: c) }
            dGamma.withUnsafeBufferPointer { g in gamma!.withUnsafeMutableBufferPointer { body(.gamma, $0, g) } }
        }
        if beta != nil {
            if dBeta.isEmpty { dBeta = [Float](repeating: 0, count: c) }
            dBeta.withUnsafeBufferPointer { g in beta!.withUnsafeMutableBufferPointer { body(.beta, $0, g) } }
        }
    }

    package func currentWeights() -> [WeightRole: [Float]] {
        var weights: [WeightRole: [Float]] = [.movingMean: movingMean, .movingVariance: movingVariance]
        if let gamma { weights[.gamma] = gamma }
        if let beta { weights[.beta] = beta }
        return weights
    }

    /// Every weight `currentWeights` gives, moving statistics included (as Keras's `set_weights`
    /// restores them): early stopping's best epoch and the roll-back after a diverged batch put
    /// back the statistics that went with those weights.
    package func restoreWeights(_ weights: [WeightRole: [Float]]) {
        func put(_ role: WeightRole, _ target: inout [Float]) {
            if let v = weights[role], v.count == target.count { target = v }
        }
        put(.movingMean, &movingMean)
        put(.movingVariance, &movingVariance)
        if gamma != nil { put(.gamma, &gamma!) }
        if beta != nil { put(.beta, &beta!) }
        affineIsStale = true
    }
}

// MARK: The Keras kind

/// Keras `BatchNormalization` over the last axis (renormalisation refused).
package struct BatchNormConfig: SingleInputOp, Equatable {
    package var momentum: Float
    package var epsilon: Float
    package var center: Bool
    package var scale: Bool
    /// The normalised axis as Keras records it: −1, or an index counting the batch axis
    /// (tf-keras writes `[3]` after images, `[1]` after a Dense layer). Only the last axis runs.
    package var axis: Int
    package init(momentum: Float = 0.99, epsilon: Float = 1e-3, center: Bool = true, scale: Bool = true, axis: Int = -1) {
        self.momentum = momentum; self.epsilon = epsilon; self.center = center; self.scale = scale; self.axis = axis
    }

    package static var kerasClassNames: [String] { ["BatchNormalization"] }

    package init(keras k: KerasLayerConfig) throws {
        if k["renorm"] as? Bool == true { throw k.unsupported("batch renormalization is not supported") }
        // `synchronized`: the same math on one device.
        // Whether the axis is the last one is checked against the input's rank (outputShape).
        let axis: Int
        switch k["axis"] {
        case nil: axis = -1
        case let a as Int: axis = a
        case let a as [Int] where a.count == 1: axis = a[0]
        default: throw k.unsupported("normalising over several axes (\(k["axis"]!)) is not supported")
        }
        self.init(momentum: Float(try k.double("momentum", in: 0...1, default: 0.99)),
                  epsilon: Float(try k.double("epsilon", in: 1e-30...1e30, default: 1e-3)),
                  center: k.bool("center", default: true), scale: k.bool("scale", default: true), axis: axis)
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["axis"] = -1
        c["momentum"] = Double(momentum)
        c["epsilon"] = Double(epsilon)
        c["center"] = center
        c["scale"] = scale
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        // Keras counts the batch axis: the last axis of (N, H, W, C) is 3, of (N, F) is 1.
        guard axis == -1 || axis == input.count else {
            throw XferError.badInput(layer, "BatchNormalization over axis \(axis) of an input \(shapeText(input)) is not supported (the last axis only)",
                                     hint: "xfer does not run this layer; see `xfer import --help` for the supported kinds")
        }
        return input
    }

    package func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        let c = input.last ?? 0
        var w: [ExpectedWeight] = []
        if scale { w.append((.gamma, [c], true)) }
        if center { w.append((.beta, [c], true)) }
        w.append((.movingMean, [c], false))
        w.append((.movingVariance, [c], false))
        return w
    }

    package var hasWeights: Bool { true }
    package var finishesBlock: Bool { true }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try BatchNormalizationLayer(spec: spec, config: self, inputShape: inputShape)
    }
}
