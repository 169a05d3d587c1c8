// Add: y = x_0 + x_1 + … + x_{n−1}, summed in input order, the inputs broadcast
// (ElementwiseMerge.swift, Broadcast.swift). Backward: ∂L/∂x_i = dy, summed over the axes x_i
// was broadcast along (an input of the output's shape gets dy itself).
//
// Follows Keras 3 keras/src/layers/merging/add.py (`output = ops.add(output, inputs[i])`) and
// tf_keras/src/layers/merging/add.py (`output += inputs[i]`); the gradient is TensorFlow's
// `_AddGrad` (math_grad.py).

/// A Keras `Add` layer.
package typealias AddLayer = ElementwiseMergeLayer<AddOp>

package enum AddOp: ElementwiseMergeOp {
    package static let kind = "Add"
    package static func apply(_ a: Float, _ b: Float) -> Float { a + b }
    package static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { (g, g) }
    package static let backpropReadsValues = false
    package static let passesGradientThrough = true
}
