// Identity: y = x (Keras `Identity`, a placeholder layer some models keep, e.g. a head
// switched off by a flag). Forward and backward hand the tensor on unchanged.
//
// The Keras kind, `IdentityConfig`: its config as Keras reads and writes it, its output shape,
// and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Identity` layer.
package final class IdentityLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }

    init(name: String, inputShape: [Int]) { self.name = name; self.inputShape = inputShape }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor { x }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        needInputGradient ? dy : nil
    }
}

// MARK: The Keras kind

/// Keras `Identity`.
package struct IdentityConfig: SingleInputOp, Equatable {
    package init() {}
    package static var kerasClassNames: [String] { ["Identity"] }
    package init(keras k: KerasLayerConfig) throws {}
    package func writeKeras(_ c: inout [String: Any], className: String) {}
    package func outputShape(input: [Int], layer: String) throws -> [Int] { input }
    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        IdentityLayer(name: spec.name, inputShape: inputShape)
    }
}
