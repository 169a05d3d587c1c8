// Categorical cross-entropy on a softmax head, from the logits, as Keras's `fit` computes it
// for `sparse_categorical_crossentropy` / `categorical_crossentropy` after a softmax Dense
// (docs/KERAS-FORMATS.md B.6: TensorFlow fuses them into `softmax_cross_entropy_with_logits`,
// no clipping):
//
//   loss_i = logsumexp(z_i) − z_i[label_i],  averaged over the batch
//   ∂loss/∂z_i = (softmax(z_i) − onehot(label_i)) / N
//
// A sample is right when its largest logit is its label's (the first of tied maxima, as
// `argmax` picks it).

import Foundation

/// Softmax head, categorical cross-entropy from the logits, accuracy.
public struct CategoricalCrossEntropy: Loss {
    public init() {}

    public var headActivation: Activation { .softmax }

    public func outputUnits(classes: Int) -> Int { classes }

    public func lossAndGradient(logits: Tensor, labels: [Int]) -> (loss: Double, correct: Int, dLogits: Tensor) {
        let n = logits.shape[0], c = logits.count / max(n, 1)
        precondition(labels.count == n)
        var d = logits.values
        var loss = 0.0, correct = 0
        d.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                let row = p.baseAddress! + i * c
                let label = labels[i]
                let z = logits.values[i * c + label]
                if argmax(row, c) == label { correct += 1 }
                // TensorFlow's SoftmaxCrossEntropyWithLogits: e = exp(z − max), loss = log Σe − (z − max),
                // backprop = e / Σe − onehot (a division, not a multiplication by 1/Σe).
                var m = -Float.infinity
                for j in 0..<c { m = max(m, row[j]) }
                var sum: Float = 0
                for j in 0..<c { let e = expf(row[j] - m); row[j] = e; sum += e }
                loss += Double(m + logf(sum) - z)
                for j in 0..<c { row[j] = (row[j] / sum - (j == label ? 1 : 0)) / Float(n) }
            }
        }
        return (loss / Double(max(n, 1)), correct, Tensor(shape: logits.shape, values: d))
    }

    public func loss(logits: Tensor, labels: [Int]) -> (loss: Double, correct: Int) {
        let n = logits.shape[0], c = logits.count / max(n, 1)
        var loss = 0.0, correct = 0
        logits.values.withUnsafeBufferPointer { p in
            for i in 0..<n {
                let row = p.baseAddress! + i * c
                if argmax(row, c) == labels[i] { correct += 1 }
                loss += Double(logSumExp(row, c) - row[labels[i]])
            }
        }
        return (loss / Double(max(n, 1)), correct)
    }

    public func probabilities(logits: Tensor) -> Tensor {
        var out = logits
        let c = logits.shape.last ?? 1
        out.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<(logits.count / max(c, 1)) { softmaxRow(p.baseAddress! + i * c, c) }
        }
        return out
    }
}

/// log Σ exp(z) over `count` values, computed stably.
func logSumExp(_ z: UnsafePointer<Float>, _ count: Int) -> Float {
    var m = -Float.infinity
    for j in 0..<count { m = max(m, z[j]) }
    var s: Float = 0
    for j in 0..<count { s += expf(z[j] - m) }
    return m + logf(s)
}

/// Index of the largest of `count` values (the first of ties).
func argmax(_ z: UnsafePointer<Float>, _ count: Int) -> Int {
    var best = 0
    for j in 1..<max(count, 1) where z[j] > z[best] { best = j }
    return best
}
