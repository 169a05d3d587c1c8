// Runs a model graph: forward in topological order, backward in reverse with the gradients of
// a value summed over everything that reads it (a residual connection's two paths).
//
// Memory: a value is held until its last reader has run, then its buffer goes back to the
// activation pool (ForwardContext), so a chain holds what it did before — one layer's input
// and output — and a graph holds in addition only the values still waiting for a reader (a
// ResNet block's shortcut). A single-input layer consumes its input: the last reader gets the
// tensor itself, an earlier one shares its storage and does not give it back to the pool
// (`ForwardContext.inputIsShared`; copy on write keeps the shared values
// intact if a layer writes in place).

import Foundation

/// What a graph node runs as: an engine layer, or a merge layer taking several inputs.
package enum NodeKernel {
    case layer(Layer)
    case merge(MergeLayer)

    package var name: String {
        switch self {
        case .layer(let l): return l.name
        case .merge(let m): return m.name
        }
    }
}

final class GraphExecutor {
    let graph: ModelGraph
    /// Node i's kernel (InferenceFolding.swift may replace a folded layer's by an identity).
    var kernels: [NodeKernel]
    let context: ForwardContext
    /// Seconds each node's forward took, summed over passes, while not nil (`xfer-bench ops`:
    /// where a forward pass spends its time).
    var nodeSeconds: [Double]?

    init(graph: ModelGraph, context: ForwardContext) throws {
        self.graph = graph
        self.context = context
        kernels = try graph.nodes.map { try GraphExecutor.kernel(for: $0) }
    }

    /// Builds the engine layer of one node, checking its weights.
    static func kernel(for node: GraphNode) throws -> NodeKernel {
        try node.layer.makeKernel(inputShapes: node.inputShapes)
    }

    /// Runs the nodes for which `run` is true (all when nil), from the values in `feed`; node i
    /// keeps what its backward needs when `keep?[i]`. Returns the values `wanted`.
    func forward(feed: [Int: Tensor], run: [Bool]? = nil, keep: [Bool]? = nil, wanted: [Int]) -> [Tensor] {
        let nodes = graph.nodes
        var remaining = [Int](repeating: 0, count: graph.valueShapes.count)
        for (i, n) in nodes.enumerated() where run?[i] ?? true { for v in n.inputs { remaining[v] += 1 } }
        for v in wanted { remaining[v] += 1 }
        var values = [Tensor?](repeating: nil, count: graph.valueShapes.count)
        for (v, t) in feed { values[v] = t }
        for i in nodes.indices where run?[i] ?? true {
            let node = nodes[i]
            context.keepForBackward = keep?[i] ?? false
            let started = nodeSeconds == nil ? 0 : DispatchTime.now().uptimeNanoseconds
            defer { if nodeSeconds != nil { nodeSeconds![i] += Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9 } }
            switch kernels[i] {
            case .layer(let layer):
                let v = node.inputs[0]
                remaining[v] -= 1
                let x = remaining[v] == 0 ? values[v].take()! : values[v]!
                context.inputIsShared = remaining[v] > 0
                values[node.output] = layer.forward(x, context)
                context.inputIsShared = false
            case .merge(let fused as FusedResidualConvolution):
                // It takes its inputs where this is their last read, so the residual's buffer
                // becomes the output (InferenceFolding.swift).
                let taken = node.inputs.map { v -> Tensor in
                    remaining[v] -= 1
                    return remaining[v] == 0 ? values[v].take()! : values[v]!
                }
                context.inputIsShared = remaining[node.inputs[fused.side]] > 0
                values[node.output] = fused.forward(taken[fused.side], residual: taken[1 - fused.side], context)
                context.inputIsShared = false
            case .merge(let merge):
                values[node.output] = merge.forward(node.inputs.map { values[$0]! }, context)
                for v in node.inputs {
                    remaining[v] -= 1
                    if remaining[v] == 0, let t = values[v].take(), !context.keepForBackward { context.pool.recycle(t) }
                }
            }
        }
        context.keepForBackward = false
        return wanted.map { values[$0]! }
    }

    /// Backward from `dy`, the gradient of the graph's output, through every node whose output
    /// needs a gradient (`plan`). Adds the weight gradients into the layers.
    func backward(_ dy: Tensor, plan: ExecutionPlan) {
        let nodes = graph.nodes
        var grads = [Tensor?](repeating: nil, count: graph.valueShapes.count)
        grads[graph.output] = dy
        func accumulate(_ v: Int, _ g: Tensor) {
            guard var sum = grads[v].take() else { grads[v] = g; return }
            sum.values.withUnsafeMutableBufferPointer { s in
                g.values.withUnsafeBufferPointer { a in for k in 0..<s.count { s[k] += a[k] } }
            }
            grads[v] = sum
        }
        for i in nodes.indices.reversed() where plan.needsGradient[nodes[i].output] {
            let node = nodes[i]
            guard let g = grads[node.output].take() else { continue }
            switch kernels[i] {
            case .layer(let layer):
                let needIn = plan.needsGradient[node.inputs[0]]
                if let dx = (layer as! TrainableLayer).backward(g, context, needInputGradient: needIn), needIn {
                    accumulate(node.inputs[0], dx)
                }
            case .merge(let merge):
                let needs = node.inputs.map { plan.needsGradient[$0] }
                for (v, dx) in zip(node.inputs, merge.backward(g, context, needInputGradients: needs)) {
                    if let dx { accumulate(v, dx) }
                }
            }
        }
    }

    /// Every engine layer of the graph with its node index (merge layers have no weights).
    var layers: [(node: Int, layer: Layer)] {
        kernels.enumerated().compactMap { i, k in if case .layer(let l) = k { return (i, l) } else { return nil } }
    }
}

extension LayerSpec {
    /// The engine kernel of one call of this layer on inputs of `inputShapes`, its weights
    /// checked: an InputLayer's identity, or what its op builds. Nested models are inlined by
    /// the graph, never built.
    func makeKernel(inputShapes: [[Int]]) throws -> NodeKernel {
        switch kind {
        case .input:
            try onlyWeights([])
            return .layer(InputLayer(name: name, inputShape: inputShapes[0]))
        case .op(let op):
            return try op.makeKernel(self, inputShapes: inputShapes)
        case .model:
            throw XferError.badInput("layer '\(name)'", "\(className) is not a single-input layer")
        }
    }
}
