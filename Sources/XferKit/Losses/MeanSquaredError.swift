// Mean squared error (`mse`), Keras's: loss = mean over the units of (ŷ − y)²,
// ∂loss/∂ŷⱼ = 2(ŷⱼ − yⱼ)/units. A regression head's outputs are used as they are.

import Foundation

/// Regression, mean squared error.
package struct MeanSquaredError: Loss {
    package init() {}
    package var outputActivation: Activation { .linear }

    package func sampleLoss(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        meanOverUnits(x, units: c, target: target, targetWidth: targetWidth, gradient: g) { e in (e * e, 2 * e) }
    }
}
