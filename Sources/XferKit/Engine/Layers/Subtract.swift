// Subtract: y = x_0 − x_1, exactly two inputs, broadcast (ElementwiseMerge.swift,
// Broadcast.swift). Backward: ∂L/∂x_0 = dy, ∂L/∂x_1 = −dy, each summed over the axes that
// input was broadcast along.
//
// Follows Keras 3 keras/src/layers/merging/subtract.py (`ops.subtract(inputs[0], inputs[1])`,
// and `build` rejects any count but 2) and tf_keras/src/layers/merging/subtract.py; the
// gradient is TensorFlow's `_SubGrad` (math_grad.py).

/// A Keras `Subtract` layer.
public typealias SubtractLayer = ElementwiseMergeLayer<SubtractOp>

public enum SubtractOp: ElementwiseMergeOp {
    public static let kind = "Subtract"
    public static var requiredInputCount: Int? { 2 }
    public static func apply(_ a: Float, _ b: Float) -> Float { a - b }
    public static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { (g, -g) }
    public static let backpropReadsValues = false
}
