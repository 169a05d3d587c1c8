// Average: y = (x_0 + x_1 + … + x_{n−1}) / n, summed in input order then divided, the inputs
// broadcast (ElementwiseMerge.swift, Broadcast.swift). Backward: ∂L/∂x_i = dy / n, summed
// over the axes x_i was broadcast along.
//
// Follows Keras 3 keras/src/layers/merging/average.py (`ops.add` in a loop, then
// `output / len(inputs)`) and tf_keras/src/layers/merging/average.py; the gradient is
// TensorFlow's `_RealDivGrad` (grad / n) then `_AddGrad`.

/// A Keras `Average` layer.
public typealias AverageLayer = ElementwiseMergeLayer<AverageOp>

public enum AverageOp: ElementwiseMergeOp {
    public static let kind = "Average"
    public static func apply(_ a: Float, _ b: Float) -> Float { a + b }
    public static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float) { (g, g) }
    public static let backpropReadsValues = false
    public static func finish(_ s: Float, inputCount n: Int) -> Float { s / Float(n) }
    public static func finishGradient(_ dy: Float, inputCount n: Int) -> Float { dy / Float(n) }
}
