// Mean squared error (`mse`), Keras's: loss = mean over the units of (ŷ − y)²,
// ∂loss/∂ŷⱼ = 2(ŷⱼ − yⱼ)/units. A regression head's outputs are used as they are.

import Foundation

/// Regression, mean squared error.
public struct MeanSquaredError: Loss {
    public init() {}
    public var outputActivation: Activation { .linear }

    public func sampleLoss(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        precondition(targetWidth == c, "one target per output")
        var sum: Float = 0
        for j in 0..<c {
            let e = x[j] - target[j]
            sum += e * e
            g?[j] = 2 * e / Float(c)
        }
        return sum / Float(c)
    }
}
