// Dropout: the identity at inference (Keras drops only when called with training=True).

/// A Keras `Dropout` layer.
public final class DropoutLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    let rate: Float

    init(name: String, config: DropoutConfig, inputShape: [Int]) throws {
        guard config.rate >= 0 && config.rate <= 1 else {
            throw XferError.badInput("layer '\(name)'", "Dropout rate \(config.rate) is outside [0, 1]")
        }
        self.name = name; self.inputShape = inputShape; rate = config.rate
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor { x }
}
