// Running a model over DATA for `predict` and `evaluate`.
//
// When the model ends in a softmax (a Dense or Activation layer with
// activation="softmax"), the network runs up to the logits and the softmax is
// applied here, so the loss can be computed from the logits exactly as Keras's
// `fit`/`evaluate` do (docs/KERAS-FORMATS.md B.6: `softmax_cross_entropy_with_logits`,
// no clipping). Other outputs are treated as probabilities (renormalised, clipped
// to [1e-7, 1 − 1e-7]).

import Foundation

public struct EvaluationResult: Sendable {
    /// Mean categorical cross-entropy over the samples.
    public var loss: Double
    /// Fraction of samples whose top-1 class is the label.
    public var accuracy: Double
    public var count: Int
}

/// Model outputs over a data set, in sample order.
public struct Predictions: Sendable {
    /// (N, classes) probabilities.
    public var probabilities: Tensor
    /// (N, classes) logits when the model ends in a softmax, else nil.
    public var logits: Tensor?
    /// Sample indices (into the data) of the rows; unreadable images are left out.
    public var indices: [Int]
    /// The data's labels of those samples (-1 where there are none).
    public var labels: [Int]
    /// The model's output shape for one sample, as Keras's `predict` gives it (a headless
    /// base: (1, 1, 512)); the rows above are those values flattened.
    public var sampleShape: [Int] = []
}

public final class Predictor {
    public let network: Network
    public let model: ModelSpec
    /// True when the final softmax is applied here, not by the network.
    public let appliesSoftmax: Bool

    /// The loss `evaluate` reports (categorical cross-entropy); it applies the softmax.
    let loss = CategoricalCrossEntropy()

    public init(model: ModelSpec) throws {
        var spec = model
        var strip = false
        if let last = spec.layers.last, let logits = last.withoutActivation(loss.headActivation) {
            spec.layers[spec.layers.count - 1] = logits
            strip = true
        }
        self.model = model
        appliesSoftmax = strip
        network = try Network(spec: spec)
    }

    /// The number of values the model outputs per sample (the classes of a classifier).
    public var outputCount: Int { network.outputShape.reduce(1, *) }

    /// Checks, before any work, that `data` can be evaluated by this model: labels present,
    /// samples of the model's input shape, every label one of its outputs.
    /// - Throws: ``XferError`` `.badInput` naming the data.
    public func checkEvaluable(_ data: DataSource) throws {
        _ = try data.requireLabels(for: "evaluation")
        try data.checkFits(inputShape: network.inputShape)
        try data.checkLabels(below: outputCount)
    }

    /// Runs the model over every sample of `data`, `batchSize` at a time (after checking that the
    /// samples have the model's input shape).
    public func predict(_ data: DataSource, batchSize: Int = 32,
                        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in },
                        warning: @escaping (String) -> Void = { _ in }) throws -> Predictions {
        let shape = network.inputShape
        guard shape.count == 3 else {
            throw XferError.badInput(model.name, "takes input \(shapeText(shape)), not images (H, W, C)")
        }
        try data.checkFits(inputShape: shape)
        var outputs: [Float] = []
        var indices: [Int] = []
        var labels: [Int] = []
        var width = 0
        var sampleShape: [Int] = []
        for start in stride(from: 0, to: data.count, by: batchSize) {
            let wanted = Array(start..<min(data.count, start + batchSize))
            let b = try data.batch(wanted, height: shape[0], width: shape[1], warning: warning)
            progress(min(data.count, start + batchSize), data.count)
            if b.indices.isEmpty { continue }
            let y = try network.predict(b.x, batchSize: batchSize)
            sampleShape = Array(y.shape.dropFirst())
            width = sampleShape.reduce(1, *)
            outputs += y.values
            indices += b.indices
            labels += b.labels
        }
        guard !indices.isEmpty else { throw XferError.badInput(data.path, "holds no readable samples") }
        let raw = Tensor(shape: [indices.count, width], values: outputs)
        if appliesSoftmax {
            return Predictions(probabilities: loss.probabilities(logits: raw), logits: raw, indices: indices, labels: labels, sampleShape: sampleShape)
        }
        return Predictions(probabilities: raw, logits: nil, indices: indices, labels: labels, sampleShape: sampleShape)
    }

    /// Loss and accuracy as Keras's `evaluate` computes them for categorical cross-entropy.
    public func evaluate(_ p: Predictions) throws -> EvaluationResult {
        let n = p.indices.count
        let classes = p.probabilities.shape[1]
        guard p.labels.allSatisfy({ $0 >= 0 }) else {
            throw XferError.badInput("data", "has no labels (y) to evaluate against")
        }
        if let bad = p.labels.first(where: { $0 >= classes }) {
            throw XferError.badInput("data", "holds label \(bad) but the model has \(classes) outputs",
                                     hint: "the data's classes do not match the model's")
        }
        if let logits = p.logits {
            let r = loss.loss(logits: logits, labels: p.labels)
            return EvaluationResult(loss: r.loss, accuracy: Double(r.correct) / Double(n), count: n)
        }
        // Outputs that are already probabilities: Keras's cross-entropy on them, renormalised and
        // clipped to [1e-7, 1 − 1e-7].
        var total = 0.0, correct = 0
        for i in 0..<n {
            let row = Array(p.probabilities.values[(i * classes)..<((i + 1) * classes)])
            let label = p.labels[i]
            let q = min(max(row[label] / row.reduce(0, +), 1e-7), 1 - 1e-7)
            total -= Double(log(q))
            if row.indices.max(by: { row[$0] < row[$1] }) == label { correct += 1 }
        }
        return EvaluationResult(loss: total / Double(n), accuracy: Double(correct) / Double(n), count: n)
    }
}
