// Minimum: y = min(…min(min(x_0, x_1), x_2)…, x_{n−1}), folded in input order, the inputs
// broadcast (ElementwiseMerge.swift, Broadcast.swift). As `tf.minimum`: NaN if either side is
// NaN, and the first operand on equal values.
// Backward, TensorFlow's rule at each step of the chain s_i = min(s_{i−1}, x_i): the gradient
// goes to s_{i−1} where s_{i−1} ≤ x_i, to x_i otherwise. So of tied minima the first input
// gets all of dy, the others 0. Each input's share is summed over the axes it was broadcast
// along. Backward reads the inputs: forward keeps them when asked.
//
// Follows Keras 3 keras/src/layers/merging/minimum.py (`_apply_merge_op_and_or_mask(
// ops.minimum, inputs)`: `output = op_fn(output, x)`; masks do not apply) and
// tf_keras/src/layers/merging/minimum.py (`output = tf.minimum(output, inputs[i])`); the
// gradient is TensorFlow's `_MinimumGrad` (math_grad.py, `_MaximumMinimumGrad` with
// `less_equal`).

/// A Keras `Minimum` layer.
package typealias MinimumLayer = ElementwiseMergeLayer<MinimumOp>

package enum MinimumOp: ElementwiseMergeOp {
    package static let kind = "Minimum"
    package static func apply(_ a: Float, _ b: Float) -> Float { a <= b || a.isNaN ? a : b }
    package static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { a <= b ? (g, 0) : (0, g) }
    package static let backpropReadsValues = true
}
