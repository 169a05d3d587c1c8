// InputLayer: the identity; its shape is the model's input shape.

/// A Keras `InputLayer`.
public final class InputLayer: TrainableLayer {
    public var training = false
    public var trainable = false
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }

    init(name: String, inputShape: [Int]) {
        self.name = name; self.inputShape = inputShape
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor { x }

    public func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        needInputGradient ? dy : nil
    }
}
