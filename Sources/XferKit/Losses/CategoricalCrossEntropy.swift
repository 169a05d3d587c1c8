// Categorical cross-entropy (`categorical_crossentropy` with one-hot or soft rows,
// `sparse_categorical_crossentropy` with class ids), as Keras's `fit` computes it
// (docs/KERAS-FORMATS.md B.6):
//
// From the logits z (a softmax head, its softmax stripped, or `from_logits`), TensorFlow's
// `softmax_cross_entropy_with_logits`, no clipping:
//   e = exp(z − max z), loss = Σⱼ yⱼ·(log Σe − (zⱼ − max z)), ∂loss/∂z = e/Σe·Σy − y
//   (sparse: y is the class's one-hot row; a division by Σe, not a multiplication by its
//   reciprocal, as TensorFlow's kernel — the Fashion job's numbers depend on it).
// From probabilities p (an output that is not a softmax's): p ← p/Σp, p ← clip(p, 1e-7, 1 − 1e-7),
//   loss = −Σⱼ yⱼ·log pⱼ.
// Label smoothing (Keras): y ← y·(1 − ls) + ls/C, on the one-hot row of a class id too.

import Foundation

/// Softmax head, categorical cross-entropy.
package struct CategoricalCrossEntropy: Loss {
    /// The inputs are logits (else probabilities).
    package var fromLogits: Bool
    package var labelSmoothing: Float

    package init(fromLogits: Bool = true, labelSmoothing: Float = 0) {
        self.fromLogits = fromLogits; self.labelSmoothing = labelSmoothing
    }

    package var outputActivation: Activation { fromLogits ? .softmax : .linear }

    package func sampleLoss(_ z: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        // The target as a row of C values: a class id's one-hot row, smoothed.
        let sparse = targetWidth == 1 && c > 1
        func y(_ j: Int) -> Float {
            let raw: Float = sparse ? (Int(target[0]) == j ? 1 : 0) : target[j]
            return labelSmoothing == 0 ? raw : raw * (1 - labelSmoothing) + labelSmoothing / Float(c)
        }
        if fromLogits {
            var m = -Float.infinity
            for j in 0..<c { m = max(m, z[j]) }
            var sum: Float = 0
            var e = [Float](repeating: 0, count: c)
            for j in 0..<c { e[j] = expf(z[j] - m); sum += e[j] }
            let logSum = logf(sum)
            if sparse && labelSmoothing == 0 {
                let label = Int(target[0])
                if let g { for j in 0..<c { g[j] = e[j] / sum - (j == label ? 1 : 0) } }
                return m + logSum - z[label]
            }
            var loss: Float = 0, total: Float = 0
            for j in 0..<c { let t = y(j); loss += t * (logSum - (z[j] - m)); total += t }
            if let g { for j in 0..<c { g[j] = e[j] / sum * total - y(j) } }
            return loss
        }
        // Probabilities: renormalised, clipped.
        var s: Float = 0
        for j in 0..<c { s += z[j] }
        var loss: Float = 0
        var dq = [Float](repeating: 0, count: c)
        for j in 0..<c {
            let q = z[j] / s
            let clipped = min(max(q, kerasEpsilon), 1 - kerasEpsilon)
            let t = y(j)
            loss -= t * logf(clipped)
            dq[j] = (q >= kerasEpsilon && q <= 1 - kerasEpsilon) ? -t / clipped : 0
        }
        if let g {
            // Through the renormalisation q = p/Σp.
            var dot: Float = 0
            for j in 0..<c { dot += dq[j] * z[j] }
            for k in 0..<c { g[k] = dq[k] / s - dot / (s * s) }
        }
        return loss
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
