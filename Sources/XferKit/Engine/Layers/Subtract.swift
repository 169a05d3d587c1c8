// Subtract: y = x_0 − x_1, exactly two inputs, broadcast (ElementwiseMerge.swift,
// Broadcast.swift). Backward: ∂L/∂x_0 = dy, ∂L/∂x_1 = −dy, each summed over the axes that
// input was broadcast along.
//
// Follows Keras 3 keras/src/layers/merging/subtract.py (`ops.subtract(inputs[0], inputs[1])`,
// and `build` rejects any count but 2) and tf_keras/src/layers/merging/subtract.py; the
// gradient is TensorFlow's `_SubGrad` (math_grad.py).

/// A Keras `Subtract` layer.
package typealias SubtractLayer = ElementwiseMergeLayer<SubtractOp>

package enum SubtractOp: ElementwiseMergeOp {
    package static let kind = "Subtract"
    package static var requiredInputCount: Int? { 2 }
    package static func apply(_ a: Float, _ b: Float) -> Float { a - b }
    package static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { (g, -g) }
    package static let backpropReadsValues = false
}
