// Mean absolute error (`mae`), Keras's: loss = mean over the units of |ŷ − y|,
// ∂loss/∂ŷⱼ = sign(ŷⱼ − yⱼ)/units (TensorFlow's sign: 0 at 0).

import Foundation

/// Regression, mean absolute error.
public struct MeanAbsoluteError: Loss {
    public init() {}
    public var outputActivation: Activation { .linear }

    public func sampleLoss(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        precondition(targetWidth == c, "one target per output")
        var sum: Float = 0
        for j in 0..<c {
            let e = x[j] - target[j]
            sum += abs(e)
            g?[j] = (e > 0 ? 1 : e < 0 ? -1 : 0) / Float(c)
        }
        return sum / Float(c)
    }
}
