// A nested Sequential/Functional model used as one layer (e.g. a VGG16 base inside
// a transfer model): runs its own chain of layers.

/// A model used as a layer of another.
public final class NestedModelLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    /// The inner layers, in order.
    public let layers: [Layer]

    init(name: String, layers: [Layer], inputShape: [Int]) {
        self.name = name; self.layers = layers; self.inputShape = inputShape
        outputShape = layers.last?.outputShape ?? inputShape
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        for layer in layers { y = layer.forward(y, context) }
        return y
    }
}
