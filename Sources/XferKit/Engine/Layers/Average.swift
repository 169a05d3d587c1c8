// Average: y = (x_0 + x_1 + … + x_{n−1}) / n, summed in input order then divided, the inputs
// broadcast (ElementwiseMerge.swift, Broadcast.swift). Backward: ∂L/∂x_i = dy / n, summed
// over the axes x_i was broadcast along.
//
// Follows Keras 3 keras/src/layers/merging/average.py (`ops.add` in a loop, then
// `output / len(inputs)`) and tf_keras/src/layers/merging/average.py; the gradient is
// TensorFlow's `_RealDivGrad` (grad / n) then `_AddGrad`.

/// A Keras `Average` layer.
package typealias AverageLayer = ElementwiseMergeLayer<AverageOp>

package enum AverageOp: ElementwiseMergeOp {
    package static let kind = "Average"
    package static func apply(_ a: Float, _ b: Float) -> Float { a + b }
    package static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { (g, g) }
    package static let backpropReadsValues = false
    package static func finish(_ s: Float, inputCount n: Int) -> Float { s / Float(n) }
    package static let finishIsIdentity = false
    package static func finishGradient(_ dy: Float, inputCount n: Int) -> Float { dy / Float(n) }
}
