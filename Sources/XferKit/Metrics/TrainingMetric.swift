// The metric `xfer finetune` logs beside the loss, per batch and per epoch, chosen by the loss
// as Keras resolves `metrics=["accuracy"]` (and xfer's choice for the others):
//
//   categorical cross-entropy      accuracy          argmax of the output = the class (first of ties)
//   binary cross-entropy, 1 unit   accuracy          Keras's binary accuracy: (p > 0.5) = y
//   binary cross-entropy, k units  binary_accuracy   the same per label, averaged over the labels
//   regression (mse, mae, huber)   mae               mean |ŷ − y| over the outputs
//
// Class weights do not weight it (Keras's `metrics`, unlike `weighted_metrics`); `batchSums`
// takes weights for a weighted metric all the same: Σ wᵢ·mᵢ / Σ wᵢ.

import Foundation

/// The per-epoch metric of a loss.
package enum TrainingMetric: Sendable, Equatable {
    case categoricalAccuracy
    case binaryAccuracy(multiLabel: Bool)
    case meanAbsoluteError

    package static func `for`(_ loss: LossConfig, units: Int) -> TrainingMetric {
        if loss.kind.isRegression { return .meanAbsoluteError }
        if loss.kind == .binaryCrossentropy { return .binaryAccuracy(multiLabel: units > 1) }
        return .categoricalAccuracy
    }

    /// Its Keras name, as `fit` logs it (and `--monitor` takes it).
    package var name: String {
        switch self {
        case .categoricalAccuracy: return "accuracy"
        case .binaryAccuracy(let multi): return multi ? "binary_accuracy" : "accuracy"
        case .meanAbsoluteError: return "mae"
        }
    }

    /// Whether a larger value is better.
    package var higherIsBetter: Bool { self != .meanAbsoluteError }

    /// The metric of one sample: `y` its `units` outputs (probabilities, or regression values),
    /// `target` its target row (a class id when `targetWidth` is 1 and there are several units).
    package func sampleValue(_ y: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int) -> Float {
        switch self {
        case .categoricalAccuracy:
            let truth = targetWidth == 1 ? Int(target[0]) : argmax(target, targetWidth)
            return argmax(y, c) == truth ? 1 : 0
        case .binaryAccuracy:
            var right: Float = 0
            for j in 0..<c where (y[j] > 0.5 ? 1 : 0) == target[j] { right += 1 }
            return right / Float(c)
        case .meanAbsoluteError:
            var s: Float = 0
            for j in 0..<c { s += abs(y[j] - target[j]) }
            return s / Float(c)
        }
    }

    /// Σ wᵢ·mᵢ and Σ wᵢ over a batch of `outputs` (N, units) and `targets` (N, width).
    package func batchSums(outputs: Tensor, targets: Tensor, weights: [Float]?) -> (sum: Double, weight: Double) {
        let n = outputs.shape[0], c = outputs.count / max(n, 1), tw = targets.count / max(n, 1)
        var sum = 0.0, weight = 0.0
        outputs.values.withUnsafeBufferPointer { y in
            targets.values.withUnsafeBufferPointer { t in
                for i in 0..<n {
                    let w = Double(weights?[i] ?? 1)
                    sum += w * Double(sampleValue(y.baseAddress! + i * c, units: c, target: t.baseAddress! + i * tw, targetWidth: tw))
                    weight += w
                }
            }
        }
        return (sum, weight)
    }
}
