// What `xfer evaluate` reports, chosen by the loss as a Keras user would compile it:
//
//   categorical    loss, accuracy, top_K_accuracy (K = min(5, classes − 1), from 3 classes)
//   binary         loss, accuracy, auc, precision, recall
//   multi-label    loss, binary_accuracy, auc, precision, recall (pooled over the labels)
//   regression     loss, mae, mse, root_mean_squared_error
//
// and, for the classifiers with one class per sample, the per-class precision/recall/F1 and
// the confusion matrix (Metrics/Classification.swift); for multi-label, the same per label. Every number is what Keras's
// `model.evaluate` / metric objects give on the same outputs (checkpoints/make_loss_fixtures.py).

import Foundation

/// Loss and metrics of a model on labelled data.
///
/// ```swift
/// let model = try KerasModel(contentsOf: "checkpoints/losses/mse.h5")
/// let result = try model.evaluate(try DataSource(contentsOf: "checkpoints/losses/mse_data.h5"))
/// print(result.loss, result.metrics.map(\.name))   // mse, and mae, mse, root_mean_squared_error
/// ```
public struct EvaluationResult: Sendable {
    /// The loss (Keras's, with the checkpoint's or the chosen loss).
    public var loss: Double
    /// The loss, by its short Keras name.
    public var lossName: String
    /// The metrics, by Keras name, in the order they print.
    public var metrics: [(name: String, value: Double)]
    /// Per class (with the confusion matrix), or per label of a multi-label head.
    public var perClass: [ClassMetrics]?
    /// Rows: true class, columns: predicted class (nil for multi-label).
    public var confusion: [[Int]]?
    /// The number of samples evaluated.
    public var count: Int

    /// The accuracy metric (NaN when the loss has none, as for regression).
    public var accuracy: Double { metrics.first { $0.name == "accuracy" }?.value ?? .nan }

    /// `loss: 0.1234 - accuracy: 0.9000 - ...` (docs/CONTRACT.md).
    public var line: String {
        ([("loss", loss)] + metrics).map { "\($0.0): " + String(format: "%.4f", $0.1) }.joined(separator: " - ")
    }
}

/// The metrics of `outputs` (N, units: probabilities for a classifier, values for regression)
/// against `targets` (N, width: class ids for a categorical loss, `y` as it is otherwise).
package func evaluationMetrics(loss: LossConfig, outputs: Tensor, targets: Tensor, classNames: [String]?)
    -> (metrics: [(name: String, value: Double)], perClass: [ClassMetrics]?, confusion: [[Int]]?) {
    let n = outputs.shape[0], c = outputs.count / max(n, 1), tw = targets.count / max(n, 1)
    let y = outputs.values, t = targets.values
    if loss.kind.isRegression {
        let r = regressionMetrics(outputs: y, targets: t)
        return ([("mae", r.mae), ("mse", r.mse), ("root_mean_squared_error", r.rmse)], nil, nil)
    }
    if loss.kind == .binaryCrossentropy {
        var tp = 0.0, fp = 0.0, fn = 0.0, right = 0.0
        for (p, truth) in zip(y, t) {
            let positive = p > 0.5
            if positive == (truth == 1) { right += 1 }
            if positive && truth == 1 { tp += 1 } else if positive { fp += 1 } else if truth == 1 { fn += 1 }
        }
        let metrics: [(name: String, value: Double)] = [(c == 1 ? "accuracy" : "binary_accuracy", right / Double(max(y.count, 1))),
                                                        ("auc", kerasAUC(scores: y, truth: t)),
                                                        ("precision", ratio(tp, tp + fp)), ("recall", ratio(tp, tp + fn))]
        guard c == 1 else { return (metrics, perLabelMetrics(outputs: y, targets: t, labels: c, names: classNames), nil) }
        let (rows, confusion) = perClassMetrics(truth: t.map { Int($0) }, predicted: y.map { $0 > 0.5 ? 1 : 0 }, classes: 2,
                                                names: classNames ?? ["0", "1"])
        return (metrics, rows, confusion)
    }
    // Categorical: class ids (or one-hot rows).
    let truth = (0..<n).map { i in tw == 1 ? Int(t[i]) : t[(i * tw)..<((i + 1) * tw)].indices.max { t[$0] < t[$1] }! - i * tw }
    let predicted = (0..<n).map { i in y[(i * c)..<((i + 1) * c)].indices.max { y[$0] < y[$1] }! - i * c }
    var metrics: [(name: String, value: Double)] = [("accuracy", Double(zip(truth, predicted).filter { $0 == $1 }.count) / Double(max(n, 1)))]
    if c >= 3 {
        let k = min(5, c - 1)
        let hits = (0..<n).filter { inTopK(y[($0 * c)..<(($0 + 1) * c)], truth: truth[$0], k: k) }.count
        metrics.append(("top_\(k)_accuracy", Double(hits) / Double(max(n, 1))))
    }
    let (rows, confusion) = perClassMetrics(truth: truth, predicted: predicted, classes: c, names: classNames ?? (0..<c).map(String.init))
    return (metrics, rows, confusion)
}
