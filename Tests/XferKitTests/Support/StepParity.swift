// What the two-step parity tests (TrainingParityTests, FamilyTrainingParityTests) share: the
// optimizer a fixture's steps group names, and the bound a weight is held to after each step.
//
// Adam and RMSprop divide each gradient element by its own running magnitude, so where that
// magnitude is small, the gradient's own float32 noise (the 1e-4 to which gradients agree with
// Keras) is amplified. Each element is held to 1e-5 plus that propagated bound, step by step:
// α·(1−β1)·δg/(√v + ε) for Adam, lr·δg/√(v + ε) for RMSprop, with δg = 1e-4 · max |g| of its
// tensor (the step's gradient, taken on a copy). A conv bias feeding a training-mode
// BatchNormalization has a gradient of pure noise: any step up to lr; and that noisy bias shifts
// the batch mean of the BN it feeds by up to lr per step, so the BN's moving mean by
// (1 − momentum)·lr per earlier step.

import XCTest
@testable import XferKit

/// The optimizer of a fixture's steps group, from the `optimizer` and `config` attributes the
/// fixture scripts write (Keras's class name and `get_config()`).
func fixtureOptimizerConfig(_ file: HDF5File, _ group: String) throws -> OptimizerConfig {
    let cls = try file.string(group, "optimizer")!
    let cfg = try JSONSerialization.jsonObject(with: Data(try file.string(group, "config")!.utf8)) as! [String: Any]
    let kind: OptimizerKind = cls == "Adam" ? .adam : cls == "RMSprop" ? .rmsprop : .sgd
    var o = OptimizerConfig(kind: kind, learningRate: Float(cfg["learning_rate"] as! Double),
                            momentum: Float(cfg["momentum"] as? Double ?? 0), nesterov: cfg["nesterov"] as? Bool ?? false)
    if let e = cfg["epsilon"] as? Double { o.epsilon = Float(e) }
    if let b = cfg["beta_1"] as? Double { o.beta1 = Float(b) }
    if let b = cfg["beta_2"] as? Double { o.beta2 = Float(b) }
    if let r = cfg["rho"] as? Double { o.rho = Float(r) }
    return o
}

/// The noise bound of the header, carried from step to step of one optimizer's run.
struct StepNoiseBound {
    let config: OptimizerConfig
    /// Per weight path, per element: the bound propagated so far.
    private(set) var propagated: [String: [Float]] = [:]
    private var delta: [String: Float] = [:]

    init(_ config: OptimizerConfig) { self.config = config }

    /// Before a step of `net`: δg of each tensor, from the step's gradient on a copy.
    mutating func beforeStep(_ net: TrainingNetwork, model: ModelSpec, kerasVersion: String?, x: Tensor, labels: [Int]) throws {
        delta = [:]
        guard config.kind != .sgd else { return }
        let copy = try TrainingNetwork(model: model, kerasVersion: kerasVersion, seed: 0)
        copy.restore(net.currentWeights())
        for (path, g) in copy.gradients(x, labels: labels).gradients { delta[path] = 1e-4 * (g.map { abs($0) }.max() ?? 0) }
    }

    /// After step `step`: each element's bound grows by what this step amplifies its δg to.
    mutating func afterStep(_ net: TrainingNetwork, _ optimizer: Optimizer, step: Int) {
        guard config.kind != .sgd else { return }
        let t = Float(step)
        let alpha = config.learningRate * (1 - powf(config.beta2, t)).squareRoot() / (1 - powf(config.beta1, t))
        for (i, path) in net.parameterPaths.enumerated() {
            let v = optimizer.slots[i][config.kind == .adam ? 1 : 0]
            let dg = delta[path] ?? 0
            var bound = propagated[path] ?? [Float](repeating: 0, count: v.count)
            for j in v.indices {
                bound[j] += config.kind == .adam
                    ? alpha * (1 - config.beta1) * dg / (v[j].squareRoot() + config.epsilon)
                    : config.learningRate * dg / (v[j] + config.epsilon).squareRoot()
            }
            propagated[path] = bound
        }
    }

    /// The error of `values` against Keras's `keras` after step `step`, beyond the bound, relative
    /// for values above 1 (a moving variance of 55 has an ulp of 4e-6); to be held to 1e-5. A
    /// weight whose gradient is pure noise (`wholeNoise`) is asserted here to move at most lr per
    /// step, and adds nothing. `zeroGradients`: whether the model has such weights.
    func error(_ values: [Float], keras k: [Float], path: String, step: Int, net: TrainingNetwork, wholeNoise: Bool,
               zeroGradients: Bool, _ label: String, file: StaticString = #filePath, line: UInt = #line) -> Float {
        var bound = propagated[path]
        if config.kind != .sgd, zeroGradients, path.hasSuffix("/moving_mean"),
           let bn = net.graph.nodes.first(where: { $0.path + "/moving_mean" == path }),
           let b = bn.layer.op as? BatchNormConfig {
            let shift = (1 - b.momentum) * config.learningRate * Float(step - 1) * 1.01
            bound = (bound ?? [Float](repeating: 0, count: values.count)).map { $0 + shift }
        }
        var worst: Float = 0
        for i in k.indices {
            let d = abs(values[i] - k[i])
            if wholeNoise {
                XCTAssertLessThanOrEqual(d, config.learningRate * Float(step) * 1.01, "\(label)[\(i)]", file: file, line: line)
            } else {
                worst = max(worst, (d - (bound?[i] ?? 0)) / max(1, abs(k[i])))
            }
        }
        return worst
    }
}
