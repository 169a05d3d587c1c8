// Flatten: (N, H, W, C) → (N, H·W·C), row-major, index (h·W + w)·C + c — the values
// do not move.
//
// The Keras kind, `FlattenConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Flatten` layer.
public final class FlattenLayer: TrainableLayer {
    public var training = false
    public var trainable = false
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]

    init(name: String, inputShape: [Int]) {
        self.name = name; self.inputShape = inputShape
        outputShape = [inputShape.reduce(1, *)]
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        x.reshaped([x.shape[0]] + outputShape)
    }

    public func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        needInputGradient ? dy.reshaped([dy.shape[0]] + inputShape) : nil
    }
}

// MARK: The Keras kind

/// Keras `Flatten`.
public struct FlattenConfig: SingleInputOp, Equatable {
    public init() {}

    public static var kerasClassNames: [String] { ["Flatten"] }

    public init(keras k: KerasLayerConfig) throws {}
    public func writeKeras(_ c: inout [String: Any], className: String) { c["data_format"] = "channels_last" }

    public func outputShape(input: [Int], layer: String) throws -> [Int] {
        guard let n = checkedCount(input) else {
            throw XferError.badInput(layer, "flattening \(shapeText(input)) gives more values than any machine holds")
        }
        return [n]
    }

    public func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        FlattenLayer(name: spec.name, inputShape: inputShape)
    }
}
