// A runnable model: the engine layers built from a ModelSpec's graph (ModelGraph) by each
// layer's op (`LayerOp.makeKernel`), checked once at build time (every layer's input shapes,
// every weight's shape), then run on batches by the graph executor.
//
// Forward passes run in inference mode (Dropout off, BatchNormalization on its moving
// statistics), as Keras's `model.predict` does. The work of each layer is split over
// the process's thread pool (`ThreadPool.shared.threadCount`): convolutions over
// tiles of the batch's output pixels, the other layers over rows.

import Foundation

/// A model ready to run, built from a `ModelSpec` whose weights are loaded.
///
/// ```swift
/// let network = try Network(spec: spec)            // spec.inputShape = [224, 224, 3]
/// let x = Tensor(shape: [8, 224, 224, 3], repeating: 0)
/// let y = try network.predict(x, batchSize: 16)     // (8,) + network.outputShape
/// ```
package final class Network {
    package let name: String
    /// One input sample, (H, W, C).
    package let inputShape: [Int]
    /// One output sample, e.g. (7, 7, 512) or (classes).
    package let outputShape: [Int]
    /// The model opened up (nested models inlined), as it runs.
    package let graph: ModelGraph

    private let context = ForwardContext(workspace: Workspace())
    private let executor: GraphExecutor
    private let lock = NSLock()

    package init(spec: ModelSpec) throws {
        guard !spec.inputShape.isEmpty, spec.inputShape.allSatisfy({ $0 > 0 }) else {
            throw XferError.badInput("model '\(spec.name)'", "input shape \(spec.inputShape) is not fully known",
                                     hint: "give the input shape explicitly")
        }
        name = spec.name
        inputShape = spec.inputShape
        graph = try ModelGraph(spec)
        executor = try GraphExecutor(graph: graph, context: context)
        outputShape = graph.outputShape
        if Network.foldsForInference {
            (foldedBatchNormalizations, foldedPaddings, foldedResiduals) = executor.foldForInference()
        }
    }

    /// Whether networks built after it is set fold each BatchNormalization that only normalises a
    /// convolution into it, with the activation after it, each ZeroPadding2D before a
    /// convolution into its padding, and residual Adds into the convolution before them
    /// (Execution/InferenceFolding.swift).
    /// On by default; `xfer-bench --no-fold` measures without.
    nonisolated(unsafe) package static var foldsForInference = true

    /// How many BatchNormalization layers were folded into their convolutions.
    package private(set) var foldedBatchNormalizations = 0
    /// How many ZeroPadding2D layers became the padding of the convolution after them.
    package private(set) var foldedPaddings = 0
    /// How many residual Adds run inside the convolution before them.
    package private(set) var foldedResiduals = 0

    /// Runs the model on `x` (N, inputShape…), `batchSize` samples at a time; returns (N, outputShape…).
    package func predict(_ x: Tensor, batchSize: Int = 32) throws -> Tensor {
        guard x.rank == inputShape.count + 1, Array(x.shape.dropFirst()) == inputShape else {
            throw XferError.usage("model '\(name)'",
                                  "input has shape \(x.shape), expected (N, \(inputShape.map(String.init).joined(separator: ", ")))")
        }
        guard batchSize > 0 else { throw XferError.usage("batch size", "must be positive, got \(batchSize)") }
        lock.lock(); defer { lock.unlock() }
        context.keepForBackward = false
        let n = x.shape[0]
        if n <= batchSize { return forward(x) }
        var y = Tensor(uninitializedShape: [n] + outputShape)
        let per = outputShape.reduce(1, *)
        for start in stride(from: 0, to: n, by: batchSize) {
            let part = forward(x.samples(start ..< min(n, start + batchSize)))
            y.values.withUnsafeMutableBufferPointer { dst in
                part.values.withUnsafeBufferPointer { src in
                    (dst.baseAddress! + start * per).update(from: src.baseAddress!, count: src.count)
                }
            }
            context.pool.recycle(part)
        }
        return y
    }

    /// One pass over one batch.
    private func forward(_ x: Tensor) -> Tensor {
        context.pool.beginPass()
        let y = executor.forward(feed: [0: x], wanted: [graph.output])[0]
        // The result leaves the pool: copy it out of what may be the largest buffer
        // of the pass, which then serves the next pass.
        let result = y.values.withUnsafeBufferPointer { src in
            Tensor(shape: y.shape, values: [Float](unsafeUninitializedCapacity: src.count) { dst, n in
                _ = dst.initialize(from: src)
                n = src.count
            })
        }
        context.pool.recycle(y)
        return result
    }

    /// The GEMMs one forward pass over `batch` samples makes in its convolutions, as
    /// (M, N, K, number of calls), for the current thread count.
    package func convolutionGEMMs(batch: Int) -> [(m: Int, n: Int, k: Int, count: Int)] {
        executor.layers.flatMap { _, layer -> [(m: Int, n: Int, k: Int, count: Int)] in
            guard let conv = layer as? Conv2DLayer else { return [] }
            return conv.gemmShapes(batch: batch, workspace: context.workspace, threads: ThreadPool.shared.threadCount)
        }
    }

    /// Whether passes record how long each node's forward takes (`layerSeconds`); setting it clears them.
    package var timesLayers: Bool {
        get { lock.withLock { executor.nodeSeconds != nil } }
        set { lock.withLock { executor.nodeSeconds = newValue ? [Double](repeating: 0, count: graph.nodes.count) : nil } }
    }

    /// Per node while `timesLayers`: its path, Keras class and seconds summed over the passes since.
    package var layerSeconds: [(path: String, className: String, seconds: Double)] {
        lock.withLock {
            zip(graph.nodes, executor.nodeSeconds ?? []).map { ($0.path, $0.layer.className, $1) }
        }
    }

    /// Bytes of scratch memory the forward passes have used so far.
    package var workspaceBytes: Int { context.workspace.bytes }

    /// The engine layer of a single-input layer (its op's, Engine/Layers/), its weights checked.
    static func build(_ spec: LayerSpec, inputShape shape: [Int]) throws -> Layer {
        guard case .layer(let layer) = try spec.makeKernel(inputShapes: [shape]) else {
            throw XferError.badInput("layer '\(spec.name)'", "\(spec.className) is not a single-input layer")
        }
        return layer
    }
}
