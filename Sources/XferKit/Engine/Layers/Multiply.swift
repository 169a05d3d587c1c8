// Multiply: y = ((x_0 · x_1) · x_2) · …, multiplied in input order, the inputs broadcast
// (ElementwiseMerge.swift, Broadcast.swift) — a squeeze-excite block's (H, W, C) × (1, 1, C).
// Backward through the chain s_i = s_{i−1} · x_i: ∂L/∂s_{i−1} = g · x_i, ∂L/∂x_i = s_{i−1} · g
// (so ∂L/∂x_i = dy · Π_{j≠i} x_j), each summed over the axes that input was broadcast along.
// Backward reads the inputs: forward keeps them when asked.
//
// Follows Keras 3 keras/src/layers/merging/multiply.py (`output = ops.multiply(output, x)`;
// its mask handling does not apply: xfer has no masks) and
// tf_keras/src/layers/merging/multiply.py (`output = output * inputs[i]`); the gradient is
// TensorFlow's `_MulGrad` (math_grad.py: gx = grad · y, gy = x · grad).

/// A Keras `Multiply` layer.
package typealias MultiplyLayer = ElementwiseMergeLayer<MultiplyOp>

package enum MultiplyOp: ElementwiseMergeOp {
    package static let kind = "Multiply"
    package static func apply(_ a: Float, _ b: Float) -> Float { a * b }
    package static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { (g * b, a * g) }
    package static let backpropReadsValues = true
}
