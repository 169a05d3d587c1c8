// Flatten: (N, H, W, C) → (N, H·W·C), row-major, index (h·W + w)·C + c — the values
// do not move.
//
// The Keras kind, `FlattenConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Flatten` layer.
package final class FlattenLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]

    init(name: String, inputShape: [Int]) {
        self.name = name; self.inputShape = inputShape
        outputShape = [inputShape.reduce(1, *)]
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        x.reshaped([x.shape[0]] + outputShape)
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        needInputGradient ? dy.reshaped([dy.shape[0]] + inputShape) : nil
    }
}

// MARK: The Keras kind

/// Keras `Flatten`.
package struct FlattenConfig: SingleInputOp, Equatable {
    package init() {}

    package static var kerasClassNames: [String] { ["Flatten"] }

    package init(keras k: KerasLayerConfig) throws {}
    package func writeKeras(_ c: inout [String: Any], className: String) { c["data_format"] = "channels_last" }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        guard let n = checkedCount(input) else {
            throw XferError.badInput(layer, "flattening \(shapeText(input)) gives more values than any machine holds")
        }
        return [n]
    }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        FlattenLayer(name: spec.name, inputShape: inputShape)
    }
}
