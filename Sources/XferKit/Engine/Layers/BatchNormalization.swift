// BatchNormalization in inference mode (the moving statistics), on the last axis:
//
//   y = x·inv + (β − mean·inv),  inv = γ · rsqrt(moving_variance + ε)
//
// the form `tf.nn.batch_normalization` evaluates (KERAS-FORMATS B.5). γ is 1 when
// `scale=False`, β is 0 when `center=False` (Keras creates no such weight then).
// Runs in place on its input.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Keras `BatchNormalization` layer (axis −1), inference mode.
public final class BatchNormalizationLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    let config: BatchNormConfig
    /// (C) each; gamma/beta nil when the layer has no such weight.
    var gamma: [Float]?, beta: [Float]?, movingMean: [Float], movingVariance: [Float]
    /// (C): the per-channel affine map the statistics reduce to.
    private(set) var scale: [Float] = [], shift: [Float] = []

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
        let gamma = config.scale ? try spec.values("gamma", shape: [c]) : nil
        let beta = config.center ? try spec.values("beta", shape: [c]) : nil
        let mean = try spec.values("moving_mean", shape: [c])
        let variance = try spec.values("moving_variance", shape: [c])
        try spec.onlyWeights((config.scale ? ["gamma"] : []) + (config.center ? ["beta"] : [])
                             + ["moving_mean", "moving_variance"])
        try self.init(name: spec.name, config: config, inputShape: inputShape, gamma: gamma, beta: beta,
                      movingMean: mean, movingVariance: variance)
    }

    /// Recomputes `scale`/`shift` from γ, β and the moving statistics (after they change).
    func updateAffine() {
        let c = movingMean.count
        scale = (0..<c).map { i in (gamma?[i] ?? 1) * (1 / sqrtf(movingVariance[i] + config.epsilon)) }
        shift = (0..<c).map { i in (beta?[i] ?? 0) - movingMean[i] * scale[i] }
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        let c = scale.count, rows = y.count / c
        let parts = min(rows, ThreadPool.shared.threadCount * 4)
        scale.withUnsafeBufferPointer { ps in
            shift.withUnsafeBufferPointer { pt in
                y.values.withUnsafeMutableBufferPointer { py in
                    let py = py.baseAddress!, ps = ps.baseAddress!, pt = pt.baseAddress!
                    parallelFor(parts) { part, _ in
                        for r in chunk(part, of: parts, total: rows) {
                            let row = py + r * c
                            for ch in 0..<c { row[ch] = row[ch] * ps[ch] + pt[ch] }
                        }
                    }
                }
            }
        }
        return y
    }
}
