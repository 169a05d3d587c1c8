// Keras's optimizers, update for update (docs/KERAS-FORMATS.md B.7; Keras 3
// `optimizers/{sgd,adam,rmsprop}.py::update_step`, tf-keras `optimizers/*.py`,
// identical algebra). Step t = iterations + 1; `iterations` grows after the update.
//
//   SGD      μ = 0:  θ ← θ − lr·g
//            else:   m ← μ·m − lr·g;  θ ← θ + m          (Nesterov: θ ← θ + μ·m − lr·g)
//   Adam     m ← m + (g − m)(1 − β1);  v ← v + (g² − v)(1 − β2)
//            α = lr·√(1 − β2^t)/(1 − β1^t);  θ ← θ − (m·α)/(√v + ε)
//   RMSprop  v ← ρ·v + (1 − ρ)·g²;  Δ = lr·g/√(v + ε)
//            momentum > 0: mom ← momentum·mom + Δ; θ ← θ − mom,  else θ ← θ − Δ
//
// Arithmetic is float32 in the same order as Keras, so one step agrees to a few ulps.

import Foundation

/// The optimizers of docs/CONTRACT.md `--optimizer`, with Keras's defaults.
///
/// ```swift
/// let optimizer = OptimizerConfig(kind: .rmsprop, learningRate: 1e-3)
/// ```
public enum OptimizerKind: String, Sendable, CaseIterable {
    /// Keras's `SGD`, with momentum and Nesterov.
    case sgd
    /// Keras's `Adam`.
    case adam
    /// Keras's `RMSprop`.
    case rmsprop

    /// Keras's default learning rate.
    package var defaultLearningRate: Float {
        switch self {
        case .sgd: return 0.01
        case .adam, .rmsprop: return 0.001
        }
    }
}

/// An optimizer and its hyperparameters, with Keras's update rules and defaults.
///
/// ```swift
/// let optimizer: OptimizerConfig = .sgd(learningRate: 0.01, momentum: 0.9)
/// let adam = OptimizerConfig(kind: .adam, learningRate: 1e-4)
/// ```
public struct OptimizerConfig: Sendable, Equatable {
    /// SGD, Adam or RMSprop.
    public var kind: OptimizerKind
    /// The step size (Keras's `learning_rate`).
    public var learningRate: Float
    /// SGD and RMSprop momentum.
    public var momentum: Float = 0
    /// Nesterov momentum (SGD).
    public var nesterov = false
    /// Adam's β1.
    public var beta1: Float = 0.9
    /// Adam's β2.
    public var beta2: Float = 0.999
    /// Adam and RMSprop ε (Keras: 1e-7).
    public var epsilon: Float = 1e-7
    /// RMSprop ρ.
    public var rho: Float = 0.9

    /// An optimizer of `kind`; `learningRate` nil: Keras's default (0.01 for SGD, 0.001 for Adam and RMSprop).
    ///
    /// ```swift
    /// let sgd = OptimizerConfig(kind: .sgd, learningRate: 0.05, momentum: 0.9, nesterov: true)
    /// ```
    public init(kind: OptimizerKind, learningRate: Float? = nil, momentum: Float = 0, nesterov: Bool = false) {
        self.kind = kind
        self.learningRate = learningRate ?? kind.defaultLearningRate
        self.momentum = momentum
        self.nesterov = nesterov
    }
}

/// An optimizer and its state: one set of slots per parameter, created on first use (Keras
/// builds its optimizer from the trainable variables only, so frozen weights never get slots).
package final class Optimizer {
    package var config: OptimizerConfig
    /// Completed steps (Keras `optimizer.iterations`).
    package private(set) var iterations: Int = 0
    /// Per parameter: the first slot (Adam m, RMSprop velocity, SGD momentum), the second
    /// (Adam v, RMSprop momentum). Owned here, freed in deinit.
    private var state: [[UnsafeMutableBufferPointer<Float>]] = []

    package init(_ config: OptimizerConfig) { self.config = config }

    deinit { state.joined().forEach { $0.deallocate() } }

    /// A copy of the slots, per parameter (for saving the optimizer).
    package var slots: [[[Float]]] { state.map { $0.map { Array($0) } } }

    /// Slot arrays each parameter needs.
    var slotCount: Int {
        switch config.kind {
        case .sgd: return config.momentum > 0 ? 1 : 0
        case .adam: return 2
        case .rmsprop: return config.momentum > 0 ? 2 : 1
        }
    }

    /// Updates parameter number `i` (the same number for the same parameter every step) from its
    /// gradient `g`. After every parameter of the step, call `finishStep()`.
    package func update(_ i: Int, _ theta: UnsafeMutableBufferPointer<Float>, _ g: UnsafeBufferPointer<Float>) {
        precondition(theta.count == g.count)
        while state.count <= i { state.append([]) }
        if state[i].isEmpty && slotCount > 0 {
            state[i] = (0..<slotCount).map { _ in
                let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: theta.count)
                b.initialize(repeating: 0)
                return b
            }
        }
        let t = Float(iterations + 1)
        let c = config
        switch c.kind {
        case .sgd:
            if c.momentum == 0 {
                for j in 0..<theta.count { theta[j] += -g[j] * c.learningRate }
            } else {
                let m = state[i][0]
                for j in 0..<theta.count {
                    m[j] = -g[j] * c.learningRate + m[j] * c.momentum
                    if c.nesterov {
                        theta[j] += -g[j] * c.learningRate + m[j] * c.momentum
                    } else {
                        theta[j] += m[j]
                    }
                }
            }
        case .adam:
            let alpha = c.learningRate * (1 - powf(c.beta2, t)).squareRoot() / (1 - powf(c.beta1, t))
            let m = state[i][0], v = state[i][1]
            for j in 0..<theta.count {
                m[j] += (g[j] - m[j]) * (1 - c.beta1)
                v[j] += (g[j] * g[j] - v[j]) * (1 - c.beta2)
                theta[j] -= (m[j] * alpha) / (v[j].squareRoot() + c.epsilon)
            }
        case .rmsprop:
            let v = state[i][0]
            for j in 0..<theta.count {
                v[j] = c.rho * v[j] + (1 - c.rho) * (g[j] * g[j])
                let increment = c.learningRate * g[j] / (v[j] + c.epsilon).squareRoot()
                if c.momentum > 0 {
                    let mom = state[i][1]
                    mom[j] = c.momentum * mom[j] + increment
                    theta[j] -= mom[j]
                } else {
                    theta[j] -= increment
                }
            }
        }
    }

    /// Ends a step: Keras increments `iterations` after updating every variable.
    package func finishStep() { iterations += 1 }

    /// Restores saved state (`--resume`).
    package func restore(iterations: Int, slots: [[[Float]]]) {
        state.joined().forEach { $0.deallocate() }
        state = slots.map { $0.map { values in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = b.initialize(from: values)
            return b
        } }
        self.iterations = iterations
    }
}
