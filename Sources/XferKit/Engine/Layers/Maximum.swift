// Maximum: y = max(…max(max(x_0, x_1), x_2)…, x_{n−1}), folded in input order, the inputs
// broadcast (ElementwiseMerge.swift, Broadcast.swift). As `tf.maximum`: NaN if either side is
// NaN, and the first operand on equal values.
// Backward, TensorFlow's rule at each step of the chain s_i = max(s_{i−1}, x_i): the gradient
// goes to s_{i−1} where s_{i−1} ≥ x_i, to x_i otherwise. So of tied maxima the first input
// gets all of dy, the others 0 (GlobalMaxPooling2D instead shares ties; that is
// `tf.reduce_max`'s rule, not this one). Each input's share is summed over the axes it was
// broadcast along. Backward reads the inputs: forward keeps them when asked.
//
// Follows Keras 3 keras/src/layers/merging/maximum.py (`_apply_merge_op_and_or_mask(
// ops.maximum, inputs)`: `output = op_fn(output, x)`; masks do not apply) and
// tf_keras/src/layers/merging/maximum.py (`output = tf.maximum(output, inputs[i])`); the
// gradient is TensorFlow's `_MaximumGrad` (math_grad.py, `_MaximumMinimumGrad` with
// `greater_equal`).

/// A Keras `Maximum` layer.
package typealias MaximumLayer = ElementwiseMergeLayer<MaximumOp>

package enum MaximumOp: ElementwiseMergeOp {
    package static let kind = "Maximum"
    package static func apply(_ a: Float, _ b: Float) -> Float { a >= b || a.isNaN ? a : b }
    package static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { a >= b ? (g, 0) : (0, g) }
    package static let backpropReadsValues = true
}
