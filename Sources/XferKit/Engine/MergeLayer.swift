// Layers with several inputs: Keras's merge layers (Add, Subtract, Multiply, Average, Maximum,
// Minimum, Concatenate). They hold no weights and have no training mode; the graph executor
// hands them every input tensor and, in backward, takes one gradient per input.
//
// Shapes never include the batch axis. Elementwise merges broadcast their inputs' per-sample
// shapes as NumPy does (Keras 3 `ops.add` / TensorFlow broadcasting): a squeeze-excite block
// multiplies (H, W, C) by (1, 1, C); the gradient of a broadcast input is summed over the axes
// it was broadcast along.

/// A layer of the graph with one or more inputs and no weights.
public protocol MergeLayer: AnyObject {
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
