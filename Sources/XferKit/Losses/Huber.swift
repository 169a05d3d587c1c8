// Huber loss (`huber`, Keras `Huber(delta=1.0)`), per unit with e = ŷ − y:
//   |e| ≤ δ: ½e²        ∂ = e
//   |e| > δ: δ|e| − ½δ²  ∂ = δ·sign(e)
// then the mean over the units (tf-keras `losses.huber`).

import Foundation

/// Regression, Huber loss.
public struct HuberLoss: Loss {
    public var delta: Float

    public init(delta: Float = 1) { self.delta = delta }
    public var outputActivation: Activation { .linear }

    public func sampleLoss(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        precondition(targetWidth == c, "one target per output")
        var sum: Float = 0
        for j in 0..<c {
            let e = x[j] - target[j]
            if abs(e) <= delta {
                sum += 0.5 * e * e
                g?[j] = e / Float(c)
            } else {
                sum += delta * abs(e) - 0.5 * delta * delta
                g?[j] = delta * (e > 0 ? 1 : -1) / Float(c)
            }
        }
        return sum / Float(c)
    }
}
