// Activation: one of Keras's activation functions (Activations.swift), softmax over
// the last axis. Runs in place on its input.

/// A Keras `Activation` layer.
public final class ActivationLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    let activation: Activation

    init(name: String, activation: Activation, inputShape: [Int]) {
        self.name = name; self.activation = activation; self.inputShape = inputShape
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        activate(&y, activation)
        return y
    }
}
