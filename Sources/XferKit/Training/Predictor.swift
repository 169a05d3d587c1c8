// Running a model over DATA for `predict` and `evaluate`.
//
// The loss decides how the outputs are read (Losses/Loss.swift): when the model ends in the
// loss's softmax/sigmoid (a Dense or Activation layer), the network runs up to the logits and
// the activation is applied here, so the loss is computed from the logits exactly as Keras's
// `evaluate` does (docs/KERAS-FORMATS.md B.6, no clipping); a `from_logits` loss takes the
// outputs as logits; other outputs are probabilities (Keras's clipped formulas) or, for
// regression, values.

import Foundation

/// Model outputs over a data set, in sample order.
package struct Predictions: Sendable {
    /// (N, units) probabilities of a classifier (softmax/sigmoid applied), values of a regression.
    package var probabilities: Tensor
    /// (N, units) what the network computed: the logits when the activation is applied here.
    package var logits: Tensor?
    /// What Keras's `predict` returns for the model: the probabilities, or a `from_logits`
    /// model's raw logits.
    package var kerasOutputs: Tensor
    /// Sample indices (into the data) of the rows; unreadable images are left out.
    package var indices: [Int]
    /// The data's labels of those samples (-1 where there are none).
    package var labels: [Int]
    /// The data's target rows of those samples (`y` as it is; class ids for image folders).
    package var targets: Tensor
    /// The model's output shape for one sample, as Keras's `predict` gives it (a headless
    /// base: (1, 1, 512)); the rows above are those values flattened.
    package var sampleShape: [Int] = []
}

package final class Predictor {
    package let network: Network
    package let model: ModelSpec
    /// The loss `evaluate` reports, and that decides how outputs are read.
    package let lossConfig: LossConfig
    /// True when the final softmax/sigmoid is applied here, not by the network.
    package let appliesSoftmax: Bool
    let loss: Loss

    /// `loss`: the checkpoint's compiled loss or the one asked for; nil: what the model's last
    /// activation implies (``impliedLoss(of:)``).
    package init(model: ModelSpec, loss: LossConfig? = nil) throws {
        let config = loss ?? impliedLoss(of: model)
        var spec = model
        var strip = false
        if config.activation != .linear, !config.fromLogits, let last = spec.layers.last,
           let logits = last.withoutActivation(config.activation) {
            spec.layers[spec.layers.count - 1] = logits
            strip = true
        }
        self.model = model
        lossConfig = config
        appliesSoftmax = strip
        self.loss = config.make(logits: strip || (config.fromLogits && config.activation != .linear))
        network = try Network(spec: spec)
    }

    /// The number of values the model outputs per sample (the classes of a classifier).
    package var outputCount: Int { network.outputShape.reduce(1, *) }

    /// Checks, before any work, that `data` can be evaluated by this model: targets that fit the
    /// loss (labels below its outputs, 0/1, numbers), samples of the model's input shape.
    /// - Throws: ``XferError`` `.badInput` naming the data.
    package func checkEvaluable(_ data: DataSource) throws {
        try data.checkTargets(for: lossConfig, units: outputCount, purpose: "evaluation")
        try data.checkFits(inputShape: network.inputShape)
    }

    /// Runs the model over every sample of `data`, `batchSize` at a time (after checking that the
    /// samples have the model's input shape).
    package func predict(_ data: DataSource, batchSize: Int = 32,
                        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in },
                        warning: @escaping (String) -> Void = { _ in }) throws -> Predictions {
        let shape = network.inputShape
        try data.checkFits(inputShape: shape)
        var outputs: [Float] = []
        var indices: [Int] = []
        var labels: [Int] = []
        var targets: [Float] = []
        var width = 0, targetWidth = 1
        var sampleShape: [Int] = []
        for start in stride(from: 0, to: data.count, by: batchSize) {
            let wanted = Array(start..<min(data.count, start + batchSize))
            let b = try data.batch(wanted, inputShape: shape, warning: warning)
            progress(min(data.count, start + batchSize), data.count)
            if b.indices.isEmpty { continue }
            let y = try network.predict(b.x, batchSize: batchSize)
            sampleShape = Array(y.shape.dropFirst())
            width = sampleShape.reduce(1, *)
            outputs += y.values
            indices += b.indices
            labels += b.labels
            let t = lossConfig.kind.isCategorical ? TrainingNetwork.classTargets(b.labels) : b.targets
            targetWidth = t.count / b.indices.count
            targets += t.values
        }
        guard !indices.isEmpty else { throw XferError.badInput(data.path, "holds no readable samples") }
        let raw = Tensor(shape: [indices.count, width], values: outputs)
        let probabilities = loss.outputs(raw)
        return Predictions(probabilities: probabilities, logits: appliesSoftmax ? raw : nil,
                           kerasOutputs: appliesSoftmax ? probabilities : raw, indices: indices, labels: labels,
                           targets: Tensor(shape: [indices.count, targetWidth], values: targets), sampleShape: sampleShape)
    }

    /// Loss and metrics as Keras's `evaluate` computes them for this loss (Metrics/Evaluation.swift).
    package func evaluate(_ p: Predictions, classNames: [String]? = nil) throws -> EvaluationResult {
        let n = p.indices.count
        let classes = p.probabilities.shape[1]
        if lossConfig.kind.isCategorical {
            guard p.labels.allSatisfy({ $0 >= 0 }) else {
                throw XferError.badInput("data", "has no labels (y) to evaluate against")
            }
            if let bad = p.labels.first(where: { $0 >= classes }) {
                throw XferError.badInput("data", "holds label \(bad) but the model has \(classes) outputs",
                                         hint: "the data's classes do not match the model's")
            }
        }
        let inputs = p.logits ?? (lossConfig.fromLogits ? p.kerasOutputs : p.probabilities)
        let value = loss.batchLoss(inputs, targets: p.targets, gradient: false).loss
        let m = evaluationMetrics(loss: lossConfig, outputs: p.probabilities, targets: p.targets, classNames: classNames)
        return EvaluationResult(loss: value, lossName: lossConfig.kind.shortName, metrics: m.metrics,
                                perClass: m.perClass, confusion: m.confusion, count: n)
    }
}

/// The loss a model's own top implies when it was not compiled with one: a softmax output
/// categorical cross-entropy, a sigmoid binary cross-entropy (k units: multi-label), a linear
/// output mean squared error.
package func impliedLoss(of model: ModelSpec) -> LossConfig {
    switch headOf(model)?.activation {
    case .softmax?: return LossConfig(.categoricalCrossentropy)
    case .sigmoid?: return LossConfig(.binaryCrossentropy)
    case .linear?: return LossConfig(.meanSquaredError)
    default: return .categorical
    }
}

/// The final layer's units and activation (a Dense, or an Activation layer after one), nil when
/// the model ends otherwise.
package func headOf(_ model: ModelSpec) -> (units: Int, activation: Activation)? {
    let layers = model.flattenedLayers().map(\.layer)
    guard let last = layers.last else { return nil }
    if let d = last.op as? DenseConfig { return (d.units, d.activation) }
    if let a = last.op as? ActivationConfig, let d = layers.dropLast().last?.op as? DenseConfig { return (d.units, a.activation) }
    return nil
}
