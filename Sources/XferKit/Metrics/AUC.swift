// Keras's `AUC()` with its defaults: ROC curve, 200 thresholds, interpolation.
//
// Thresholds: −1e-7, then i/199 for i = 1 … 198, then 1 + 1e-7 (float32); a prediction counts
// as positive at a threshold when it is greater. Per threshold: TPR = tp/(tp + fn), FPR =
// fp/(fp + tn) (0 where the denominator is 0), and AUC = Σᵢ (FPRᵢ − FPRᵢ₊₁)·(TPRᵢ + TPRᵢ₊₁)/2.
// Several sigmoid units (multi-label) are pooled, as Keras's default `multi_label=False`.

import Foundation

/// Area under the ROC curve of `scores` (probabilities) against 0/1 `truth`, as Keras's `AUC()`.
package func kerasAUC(scores: [Float], truth: [Float], thresholds count: Int = 200) -> Double {
    precondition(scores.count == truth.count && count >= 2)
    var thresholds: [Float] = [0 - kerasEpsilon]
    for i in 1..<(count - 1) { thresholds.append(Float(Double(i) / Double(count - 1))) }
    thresholds.append(1 + kerasEpsilon)
    var tpr = [Double](repeating: 0, count: count), fpr = tpr
    for (k, t) in thresholds.enumerated() {
        var tp = 0.0, fp = 0.0, fn = 0.0, tn = 0.0
        for (s, y) in zip(scores, truth) {
            if s > t { if y == 1 { tp += 1 } else { fp += 1 } } else { if y == 1 { fn += 1 } else { tn += 1 } }
        }
        tpr[k] = tp + fn > 0 ? tp / (tp + fn) : 0
        fpr[k] = fp + tn > 0 ? fp / (fp + tn) : 0
    }
    var auc = 0.0
    for i in 0..<(count - 1) { auc += (fpr[i] - fpr[i + 1]) * (tpr[i] + tpr[i + 1]) / 2 }
    return auc
}
