// Huber loss (`huber`, Keras `Huber(delta=1.0)`), per unit with e = ŷ − y:
//   |e| ≤ δ: ½e²        ∂ = e
//   |e| > δ: δ|e| − ½δ²  ∂ = δ·sign(e)
// then the mean over the units (tf-keras `losses.huber`).

import Foundation

/// Regression, Huber loss.
package struct HuberLoss: Loss {
    package var delta: Float

    package init(delta: Float = 1) { self.delta = delta }
    package var outputActivation: Activation { .linear }

    package func sampleLoss(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        meanOverUnits(x, units: c, target: target, targetWidth: targetWidth, gradient: g) { e in
            abs(e) <= delta ? (0.5 * e * e, e) : (delta * abs(e) - 0.5 * delta * delta, delta * (e > 0 ? 1 : -1))
        }
    }
}
