// Mean absolute error (`mae`), Keras's: loss = mean over the units of |ŷ − y|,
// ∂loss/∂ŷⱼ = sign(ŷⱼ − yⱼ)/units (TensorFlow's sign: 0 at 0).

import Foundation

/// Regression, mean absolute error.
package struct MeanAbsoluteError: Loss {
    package init() {}
    package var outputActivation: Activation { .linear }

    package func sampleLoss(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                           gradient g: UnsafeMutablePointer<Float>?) -> Float {
        meanOverUnits(x, units: c, target: target, targetWidth: targetWidth, gradient: g) { e in
            (abs(e), e > 0 ? 1 : e < 0 ? -1 : 0)
        }
    }
}
