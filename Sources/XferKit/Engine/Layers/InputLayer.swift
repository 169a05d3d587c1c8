// InputLayer: the identity; its shape is the model's input shape.

/// A Keras `InputLayer`.
public final class InputLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }

    init(name: String, inputShape: [Int]) {
        self.name = name; self.inputShape = inputShape
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor { x }
}
