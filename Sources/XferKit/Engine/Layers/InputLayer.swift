// InputLayer: the identity; its shape is the model's input shape.

/// A Keras `InputLayer`.
package final class InputLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }

    init(name: String, inputShape: [Int]) {
        self.name = name; self.inputShape = inputShape
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor { x }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        needInputGradient ? dy : nil
    }
}
