// The classification metrics `xfer evaluate` prints, as Keras computes them:
//
//   accuracy          categorical: argmax = class; one sigmoid unit: (p > 0.5) = y
//   binary_accuracy   multi-label: (p > 0.5) = y per label, averaged
//   top_K_accuracy    Keras's (Sparse)TopKCategoricalAccuracy: the class is among the K
//                     largest outputs (`tf.math.in_top_k`: ties at the boundary count as in)
//   precision/recall  sigmoid heads, threshold 0.5, pooled over the labels (Keras `Precision()`,
//                     `Recall()`)
//   per class         precision, recall and F1 of each class on the predicted class (argmax; one
//                     sigmoid unit: p > 0.5), as Keras's `Precision(class_id=c, top_k=1)`,
//                     `Recall(class_id=c, top_k=1)` and `F1Score(average=None)`; the confusion
//                     matrix (rows: true class, columns: predicted, `tf.math.confusion_matrix`)
//   per label         multi-label: each label's precision, recall and F1 at p > 0.5, as Keras's
//                     `Precision(class_id=j)`, `Recall(class_id=j)`, `F1Score(average=None,
//                     threshold=0.5)`; support = the samples that have the label

import Foundation

/// tp/(tp + fp), 0 when nothing is predicted (Keras's `divide_no_nan`).
func ratio(_ a: Double, _ b: Double) -> Double { b > 0 ? a / b : 0 }

/// Whether `truth` is among the `k` largest of `row` (ties at the boundary count as in).
func inTopK(_ row: ArraySlice<Float>, truth: Int, k: Int) -> Bool {
    let v = row[row.startIndex + truth]
    return row.filter { $0 > v }.count < k
}

/// One class's row of `xfer evaluate --per-class`.
///
/// ```swift
/// let model = try KerasModel(contentsOf: "checkpoints/losses/cce_smooth.h5")
/// let result = try model.evaluate(try DataSource(contentsOf: "checkpoints/losses/cce_smooth_data.h5"))
/// for c in result.perClass ?? [] { print(c.name, c.precision, c.recall, c.f1, c.support) }
/// ```
public struct ClassMetrics: Sendable, Equatable {
    /// The class (or label) name.
    public var name: String
    /// Of the samples predicted as this class, the share that are.
    public var precision: Double
    /// Of the samples of this class, the share predicted as it.
    public var recall: Double
    /// The harmonic mean of precision and recall.
    public var f1: Double
    /// Samples of this class.
    public var support: Int
}

/// Per-class precision, recall, F1 and the confusion matrix from true and predicted classes.
package func perClassMetrics(truth: [Int], predicted: [Int], classes: Int, names: [String]) -> (rows: [ClassMetrics], confusion: [[Int]]) {
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
    for (t, p) in zip(truth, predicted) where t < classes && p < classes { confusion[t][p] += 1 }
    var rows: [ClassMetrics] = []
    for c in 0..<classes {
        let tp = Double(confusion[c][c])
        let predictedC = Double((0..<classes).reduce(0) { $0 + confusion[$1][c] })
        let actual = confusion[c].reduce(0, +)
        let p = ratio(tp, predictedC), r = ratio(tp, Double(actual))
        rows.append(ClassMetrics(name: c < names.count ? names[c] : String(c), precision: p, recall: r,
                                 f1: ratio(2 * p * r, p + r), support: actual))
    }
    return (rows, confusion)
}

/// Per label of a multi-label head: precision, recall and F1 at p > 0.5. `outputs` and
/// `targets` are (N, labels) row-major.
package func perLabelMetrics(outputs: [Float], targets: [Float], labels: Int, names: [String]?) -> [ClassMetrics] {
    (0..<labels).map { j in
        var tp = 0.0, fp = 0.0, fn = 0.0, support = 0
        for i in stride(from: j, to: outputs.count, by: labels) {
            let positive = outputs[i] > 0.5, truth = targets[i] == 1
            if truth { support += 1 }
            if positive && truth { tp += 1 } else if positive { fp += 1 } else if truth { fn += 1 }
        }
        let p = ratio(tp, tp + fp), r = ratio(tp, tp + fn)
        return ClassMetrics(name: names.flatMap { j < $0.count ? $0[j] : nil } ?? String(j), precision: p, recall: r,
                            f1: ratio(2 * p * r, p + r), support: support)
    }
}
