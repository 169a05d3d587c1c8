// The values the model API takes, spelled as Keras spells them in code: typed head layers
// (`.dense(64, activation: .relu)`), losses (`.binaryCrossentropy`) and optimizers
// (`.sgd(learningRate: 0.01, momentum: 0.9)`), and XferError as a LocalizedError whose
// description and recovery suggestion are the two lines the `xfer` command prints.

import Foundation

extension HeadLayer {
    /// A Dense layer of `units` outputs (Keras's `Dense(units, activation=...)`).
    ///
    /// ```swift
    /// let head: [HeadLayer] = [.flatten, .dense(256, activation: .relu), .dropout(0.5)]
    /// ```
    public static func dense(_ units: Int, activation: Activation = .linear) -> HeadLayer {
        .dense(units: units, activation: activation)
    }

    /// A Dropout layer dropping `rate` of its inputs while training (Keras's `Dropout(rate)`).
    ///
    /// ```swift
    /// let head: [HeadLayer] = [.globalAveragePooling, .dropout(0.2)]
    /// ```
    public static func dropout(_ rate: Float) -> HeadLayer { .dropout(rate: rate) }

    /// Refuses a layer no model can have (no units, a rate outside [0, 1)).
    func check() throws {
        switch self {
        case .dense(let units, _) where units <= 0:
            throw XferError.usage("replaceTop(with:)", "a dense layer of \(units) units", hint: "give a positive number of units")
        case .dropout(let rate) where !(rate >= 0 && rate < 1):
            throw XferError.usage("replaceTop(with:)", "a dropout rate of \(rate)", hint: "give a rate in [0, 1)")
        default: return
        }
    }
}

extension LossConfig {
    /// Keras's `categorical_crossentropy` on a softmax head (class labels or one-hot rows).
    ///
    /// ```swift
    /// let loss: LossConfig = .categoricalCrossentropy
    /// ```
    public static let categoricalCrossentropy = LossConfig(.categoricalCrossentropy)
    /// Keras's `sparse_categorical_crossentropy` (integer class labels) on a softmax head.
    ///
    /// ```swift
    /// let loss: LossConfig = .sparseCategoricalCrossentropy
    /// ```
    public static let sparseCategoricalCrossentropy = LossConfig(.sparseCategoricalCrossentropy)
    /// Keras's `binary_crossentropy` on one sigmoid unit (two classes) or one per label (multi-label).
    ///
    /// ```swift
    /// let loss: LossConfig = .binaryCrossentropy
    /// ```
    public static let binaryCrossentropy = LossConfig(.binaryCrossentropy)
    /// Keras's `mse` on a linear (regression) head.
    ///
    /// ```swift
    /// let loss: LossConfig = .meanSquaredError
    /// ```
    public static let meanSquaredError = LossConfig(.meanSquaredError)
    /// Keras's `mae` on a linear (regression) head.
    ///
    /// ```swift
    /// let loss: LossConfig = .meanAbsoluteError
    /// ```
    public static let meanAbsoluteError = LossConfig(.meanAbsoluteError)
    /// Keras's `Huber(delta)` on a linear (regression) head.
    ///
    /// ```swift
    /// let loss: LossConfig = .huber(delta: 0.5)
    /// ```
    public static func huber(delta: Float = 1) -> LossConfig { LossConfig(.huber, delta: delta) }
}

extension OptimizerConfig {
    /// Keras's `SGD(learning_rate, momentum, nesterov)`.
    ///
    /// ```swift
    /// let optimizer: OptimizerConfig = .sgd(learningRate: 0.01, momentum: 0.9)
    /// ```
    public static func sgd(learningRate: Float = 0.01, momentum: Float = 0, nesterov: Bool = false) -> OptimizerConfig {
        OptimizerConfig(kind: .sgd, learningRate: learningRate, momentum: momentum, nesterov: nesterov)
    }

    /// Keras's `Adam(learning_rate, beta_1, beta_2, epsilon)`.
    ///
    /// ```swift
    /// let optimizer: OptimizerConfig = .adam(learningRate: 1e-4)
    /// ```
    public static func adam(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7) -> OptimizerConfig {
        var c = OptimizerConfig(kind: .adam, learningRate: learningRate)
        c.beta1 = beta1; c.beta2 = beta2; c.epsilon = epsilon
        return c
    }

    /// Keras's `RMSprop(learning_rate, rho, momentum, epsilon)`.
    ///
    /// ```swift
    /// let optimizer: OptimizerConfig = .rmsprop(learningRate: 0.001, rho: 0.9)
    /// ```
    public static func rmsprop(learningRate: Float = 0.001, rho: Float = 0.9, momentum: Float = 0, epsilon: Float = 1e-7) -> OptimizerConfig {
        var c = OptimizerConfig(kind: .rmsprop, learningRate: learningRate, momentum: momentum)
        c.rho = rho; c.epsilon = epsilon
        return c
    }
}

extension XferError: LocalizedError {
    /// The line the `xfer` command prints after `xfer: error: `: what it is about (a file, a
    /// layer, an argument) and what is wrong.
    ///
    /// ```swift
    /// do { _ = try KerasModel(contentsOf: "missing.h5") } catch let e as XferError {
    ///     print(e.localizedDescription)   // missing.h5: no such file ...
    /// }
    /// ```
    public var errorDescription: String? { description }

    /// What to do, the line the `xfer` command prints after `hint: ` (nil when there is none).
    ///
    /// ```swift
    /// do { _ = try KerasModel(contentsOf: "missing.h5") } catch let e as XferError {
    ///     print(e.recoverySuggestion ?? "")
    /// }
    /// ```
    public var recoverySuggestion: String? { hint?.terminalSafe }
}
