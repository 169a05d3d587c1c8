// Binary cross-entropy (`binary_crossentropy`): one sigmoid unit (two classes, 0/1 targets)
// or k sigmoid units with multi-hot targets (multi-label), as Keras's `fit` computes it.
// Per element, then the mean over the units (Keras's `mean(..., axis=-1)`):
//
// From the logits x (a sigmoid head, its sigmoid stripped, or `from_logits`), TensorFlow's
// `sigmoid_cross_entropy_with_logits`: loss = max(x, 0) − x·y + log1p(exp(−|x|)); its gradient
// as TensorFlow differentiates that expression: [x ≥ 0] − y ∓ e/(1 + e), e = exp(−|x|)
// (= sigmoid(x) − y).
// From probabilities p (tf-keras `backend.binary_crossentropy`): p ← clip(p, 1e-7, 1 − 1e-7),
//   loss = −(y·log(p + 1e-7) + (1 − y)·log(1 − p + 1e-7)).
// Label smoothing (Keras): y ← y·(1 − ls) + ls/2.

import Foundation

/// Sigmoid head(s), binary cross-entropy.
package struct BinaryCrossEntropy: Loss {
    package var fromLogits: Bool
    package var labelSmoothing: Float

    package init(fromLogits: Bool = true, labelSmoothing: Float = 0) {
        self.fromLogits = fromLogits; self.labelSmoothing = labelSmoothing
    }

    package var outputActivation: Activation { fromLogits ? .sigmoid : .linear }

    package func sampleLoss(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        precondition(targetWidth == c, "one target per sigmoid unit")
        var sum: Float = 0
        for j in 0..<c {
            let y = labelSmoothing == 0 ? target[j] : target[j] * (1 - labelSmoothing) + 0.5 * labelSmoothing
            let v = x[j]
            if fromLogits {
                let e = expf(v >= 0 ? -v : v)
                sum += (v >= 0 ? v : 0) - v * y + log1pf(e)
                g?[j] = ((v >= 0 ? 1 : 0) - y + (v >= 0 ? -1 : 1) * e / (1 + e)) / Float(c)
            } else {
                let p = min(max(v, kerasEpsilon), 1 - kerasEpsilon)
                sum -= y * logf(p + kerasEpsilon) + (1 - y) * logf(1 - p + kerasEpsilon)
                let inside = v >= kerasEpsilon && v <= 1 - kerasEpsilon
                g?[j] = inside ? -(y / (p + kerasEpsilon) - (1 - y) / (1 - p + kerasEpsilon)) / Float(c) : 0
            }
        }
        return sum / Float(c)
    }
}
