// Reshape: (N, in…) → (N, target_shape…), row-major, as `ops.reshape` — the values do not
// move, so forward and backward only relabel the shape. One entry of target_shape may be −1
// (Keras: inferred from the others).
//
// The Keras kind, `ReshapeConfig` (end of file).

/// A Keras `Reshape` layer.
final class ReshapeLayer: TrainableLayer {
    var training = false
    var trainable = false
    let name: String
    let inputShape: [Int]
    let outputShape: [Int]

    init(name: String, inputShape: [Int], outputShape: [Int]) {
        self.name = name; self.inputShape = inputShape; self.outputShape = outputShape
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        x.reshaped([x.shape[0]] + outputShape)
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        needInputGradient ? dy.reshaped([dy.shape[0]] + inputShape) : nil
    }
}

// MARK: The Keras kind

/// Keras `Reshape(target_shape)`.
struct ReshapeConfig: SingleInputOp, Equatable {
    /// Without the batch axis; at most one −1.
    var targetShape: [Int]

    static var kerasClassNames: [String] { ["Reshape"] }

    init(targetShape: [Int]) { self.targetShape = targetShape }

    init(keras k: KerasLayerConfig) throws {
        guard let list = k["target_shape"] as? [Any], !list.isEmpty else {
            throw k.fail("layer '\(k.name)': missing or invalid 'target_shape'", hint: "the model configuration is damaged; save the model again with Keras")
        }
        targetShape = try list.map { v in exactInt(v) == -1 ? -1 : try k.size(v, "target_shape") }
        guard targetShape.filter({ $0 == -1 }).count <= 1 else {
            throw k.fail("layer '\(k.name)': 'target_shape' \(targetShape) has more than one -1 (Keras refuses it too)")
        }
    }

    func writeKeras(_ c: inout [String: Any], className: String) { c["target_shape"] = targetShape }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        guard let total = checkedCount(input) else {
            throw XferError.badInput(layer, "reshaping \(shapeText(input)) gives more values than any machine holds")
        }
        let known = targetShape.filter { $0 != -1 }.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
        var out = targetShape
        if let free = out.firstIndex(of: -1) {
            guard known > 0, total % known == 0 else {
                throw XferError.badInput(layer, "cannot reshape \(shapeText(input)) (\(total) values) to \(targetShape)")
            }
            out[free] = total / known
        }
        guard checkedCount(out) == total else {
            throw XferError.badInput(layer, "cannot reshape \(shapeText(input)) (\(total) values) to \(shapeText(out))")
        }
        return out
    }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        ReshapeLayer(name: spec.name, inputShape: inputShape, outputShape: try outputShape(input: inputShape, layer: spec.name))
    }
}
