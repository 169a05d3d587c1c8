// Layers with several inputs: Keras's merge layers (Add, Subtract, Multiply, Average, Maximum,
// Minimum, Concatenate). They hold no weights and have no training mode; the graph executor
// hands them every input tensor and, in backward, takes one gradient per input.
//
// Shapes never include the batch axis. Elementwise merges broadcast their inputs' per-sample
// shapes as NumPy does (Keras 3 `ops.add` / TensorFlow broadcasting): a squeeze-excite block
// multiplies (H, W, C) by (1, 1, C); the gradient of a broadcast input is summed over the axes
// it was broadcast along.

/// A layer of the graph with one or more inputs and no weights.
package protocol MergeLayer: AnyObject {
    /// The Keras layer name.
    var name: String { get }
    /// Shape of one sample of each input, in the order Keras lists the inputs.
    var inputShapes: [[Int]] { get }
    /// Shape of one output sample.
    var outputShape: [Int] { get }
    /// Computes the output for a batch; every input is (N, inputShapes[i]…). The inputs are not
    /// consumed (another node may read them too). Keeps what backward needs when
    /// `context.keepForBackward`.
    func forward(_ inputs: [Tensor], _ context: ForwardContext) -> Tensor
    /// The gradient for each input whose `needInputGradients` entry is true (nil for the others),
    /// from `dy` (N, outputShape…), using what the last forward kept.
    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradients: [Bool]) -> [Tensor?]
}

/// Runs `body` with a pointer to the values of each tensor, in order (none may be empty).
func withValuePointers<R>(_ tensors: [Tensor], _ body: ([UnsafePointer<Float>]) -> R) -> R {
    withValuePointers(tensors[...], [], body)
}

private func withValuePointers<R>(_ tensors: ArraySlice<Tensor>, _ pointers: [UnsafePointer<Float>],
                                  _ body: ([UnsafePointer<Float>]) -> R) -> R {
    guard let first = tensors.first else { return body(pointers) }
    return first.values.withUnsafeBufferPointer { p in
        withValuePointers(tensors.dropFirst(), pointers + [p.baseAddress!], body)
    }
}

/// Runs `body` on consecutive ranges that together cover 0..<units, on the shared thread pool
/// when the work (`elements` values) is large enough to be worth it. The ranges must be
/// independent: `body` may run on several threads at once.
func parallelRanges(_ units: Int, elements: Int, _ body: (_ range: Range<Int>) -> Void) {
    let parts = elements < 1 << 15 ? 1 : min(units, 4 * ThreadPool.shared.threadCount)
    if parts <= 1 { body(0..<units); return }
    parallelFor(parts) { i, _ in body(chunk(i, of: parts, total: units)) }
}

// MARK: The Keras kinds

/// Keras's merge layers: one output from several inputs (MergeLayer, Engine/Layers/).
package enum MergeOp: Sendable, Equatable {
    case add, subtract, multiply, average, maximum, minimum
    /// Keras `Concatenate(axis=)`, the axis counting the batch axis (−1: the last).
    case concatenate(axis: Int)

    /// The Keras class name.
    package var className: String {
        switch self {
        case .add: return "Add"
        case .subtract: return "Subtract"
        case .multiply: return "Multiply"
        case .average: return "Average"
        case .maximum: return "Maximum"
        case .minimum: return "Minimum"
        case .concatenate: return "Concatenate"
        }
    }
}

extension MergeOp: LayerOp {
    package static var kerasClassNames: [String] {
        ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]
    }

    package init(keras k: KerasLayerConfig) throws {
        switch k.className {
        case "Add": self = .add
        case "Subtract": self = .subtract
        case "Multiply": self = .multiply
        case "Average": self = .average
        case "Maximum": self = .maximum
        case "Minimum": self = .minimum
        default:
            let axis = k["axis"] == nil ? -1 : exactInt(k["axis"])
            guard let axis, axis != 0 else { throw k.unsupported("Concatenate axis \(describe(k["axis"] ?? "?")) is not supported") }
            self = .concatenate(axis: axis)
        }
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        if case .concatenate(let axis) = self { c["axis"] = axis }
    }

    package var kerasClassName: String { className }
    package var takesSeveralInputs: Bool { true }

    /// Keras's merge shapes, by the merge layer's own rule (Engine/Layers/): elementwise merges
    /// broadcast their inputs, Concatenate sums the sizes along its axis.
    package func outputShape(inputs: [[Int]], layer: String) throws -> [Int] {
        do {
            switch self {
            case .add: return try AddLayer.outputShape(name: layer, inputShapes: inputs)
            case .subtract: return try SubtractLayer.outputShape(name: layer, inputShapes: inputs)
            case .multiply: return try MultiplyLayer.outputShape(name: layer, inputShapes: inputs)
            case .average: return try AverageLayer.outputShape(name: layer, inputShapes: inputs)
            case .maximum: return try MaximumLayer.outputShape(name: layer, inputShapes: inputs)
            case .minimum: return try MinimumLayer.outputShape(name: layer, inputShapes: inputs)
            case .concatenate(let axis): return try ConcatenateLayer.outputShape(name: layer, axis: axis, inputShapes: inputs)
            }
        } catch let e as XferError {
            throw XferError.badInput(layer, e.message, hint: e.hint)
        }
    }

    package var finishesBlock: Bool { true }

    package func makeKernel(_ spec: LayerSpec, inputShapes: [[Int]]) throws -> NodeKernel {
        try spec.onlyWeights([])
        return .merge(try makeLayer(name: spec.name, inputShapes: inputShapes))
    }

    /// The engine layer of this merge kind (Engine/Layers/).
    func makeLayer(name: String, inputShapes: [[Int]]) throws -> MergeLayer {
        switch self {
        case .add: return try AddLayer(name: name, inputShapes: inputShapes)
        case .subtract: return try SubtractLayer(name: name, inputShapes: inputShapes)
        case .multiply: return try MultiplyLayer(name: name, inputShapes: inputShapes)
        case .average: return try AverageLayer(name: name, inputShapes: inputShapes)
        case .maximum: return try MaximumLayer(name: name, inputShapes: inputShapes)
        case .minimum: return try MinimumLayer(name: name, inputShapes: inputShapes)
        case .concatenate(let axis): return try ConcatenateLayer(name: name, axis: axis, inputShapes: inputShapes)
        }
    }
}
