// What every single-input engine layer is: a named step from one activation tensor to the
// next, with fixed per-sample input and output shapes worked out when the graph is built
// (layers with several inputs are MergeLayers). Training adds `TrainableLayer` (Backward.swift).
//
// A layer keeps what its backward pass will need (its input, its output, argmax positions)
// only when the context asks for it, so inference holds no more than the activations in flight.

/// One layer of a `Network`.
package protocol Layer: AnyObject {
    /// The Keras layer name.
    var name: String { get }
    /// Shape of one input sample (no batch axis), e.g. (H, W, C).
    var inputShape: [Int] { get }
    /// Shape of one output sample (no batch axis).
    var outputShape: [Int] { get }
    /// Runs the layer on a batch `(N, inputShape…)`, returning `(N, outputShape…)`.
    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor
}

/// What a forward pass shares between its layers.
package final class ForwardContext {
    /// Scratch memory (im2col tiles), one slice per worker thread.
    let workspace: Workspace
    /// Activation buffers passed from layer to layer.
    let pool = TensorPool()
    /// Keep what backward needs. Off for inference.
    package var keepForBackward: Bool
    /// The input of the layer running now is still held by another reader (the graph executor
    /// sets it): its buffer is not the layer's to give back to the pool, where it would be both
    /// in use and handed out again (a copy on the next write, and a new allocation).
    var inputIsShared = false

    /// A layer's new output, contents arbitrary: every element must be written. When backward
    /// keeps it, its buffer is about its own size (never one of the pass's largest, which
    /// would then be missing from the pool on the next pass and be allocated again).
    func output(_ shape: [Int]) -> Tensor { pool.tensor(shape, fitted: keepForBackward) }

    /// A layer is done with its input `x`: keep it for backward if asked (returning it),
    /// otherwise reuse its buffer. An input kept from a much larger buffer (the last output
    /// of the frozen part of the pass) is kept as a copy of its own size, the buffer reused.
    func release(_ x: consuming Tensor) -> Tensor? {
        if keepForBackward {
            guard TensorPool.oversized(x.values.capacity, x.count) else { return x }
            let kept = Tensor(shape: x.shape, values: x.values.withUnsafeBufferPointer { [Float]($0) })
            if !inputIsShared { pool.recycle(x) }
            return kept
        }
        if !inputIsShared { pool.recycle(x) }
        return nil
    }

    package init(keepForBackward: Bool = false) {
        self.workspace = Workspace()
        self.keepForBackward = keepForBackward
    }

    init(workspace: Workspace, keepForBackward: Bool = false) {
        self.workspace = workspace
        self.keepForBackward = keepForBackward
    }
}
