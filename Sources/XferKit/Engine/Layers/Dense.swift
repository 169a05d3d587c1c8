// Dense: y = act(x · W + b) on the last axis, W (in, units) as Keras stores it.
// Any leading axes are rows: (N, …, in) → (N, …, units), as Keras applies Dense to
// the last axis of a higher-rank input.
//
// The product is one GEMM (rows × in)·(in × units), cut into a grid of row and
// column blocks so that even a batch of one keeps every thread busy.

/// A Keras `Dense` layer.
public final class DenseLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    let activation: Activation
    /// (in, units)
    var kernel: [Float]
    /// (units), nil when `use_bias=False`.
    var bias: [Float]?
    /// (N, …, in): the last input, kept only when the context asks.
    var savedInput: Tensor?

    init(name: String, config: DenseConfig, inputShape: [Int], kernel: [Float], bias: [Float]?) throws {
        guard let inputs = inputShape.last, inputs > 0, config.units > 0 else {
            throw XferError.badInput("layer '\(name)'", "Dense needs a non-empty last axis and units > 0, got input \(inputShape) and \(config.units) units")
        }
        precondition(kernel.count == inputs * config.units && (bias?.count ?? config.units) == config.units)
        self.name = name; self.inputShape = inputShape
        outputShape = inputShape.dropLast() + [config.units]
        activation = config.activation; self.kernel = kernel; self.bias = bias
    }

    convenience init(spec: LayerSpec, config: DenseConfig, inputShape: [Int]) throws {
        guard let inputs = inputShape.last else {
            throw XferError.badInput("layer '\(spec.name)'", "Dense on a scalar input")
        }
        let kernel = try spec.values("kernel", shape: [inputs, config.units])
        let bias = config.useBias ? try spec.values("bias", shape: [config.units]) : nil
        try spec.onlyWeights(config.useBias ? ["kernel", "bias"] : ["kernel"])
        try self.init(name: spec.name, config: config, inputShape: inputShape, kernel: kernel, bias: bias)
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let inputs = inputShape.last!, units = outputShape.last!
        let rows = x.count / inputs
        var y = context.output([x.shape[0]] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            kernel.withUnsafeBufferPointer { pk in
                y.values.withUnsafeMutableBufferPointer { py in
                    let pb = bias?.withUnsafeBufferPointer { $0.baseAddress! }
                    denseForward(px.baseAddress!, rows: rows, inputs: inputs, units: units,
                                 kernel: pk.baseAddress!, bias: pb, activation, into: py.baseAddress!)
                }
            }
        }
        savedInput = context.release(x)
        return y
    }
}

/// y (rows, units) = act(x (rows, inputs) · kernel (inputs, units) + bias (units)).
func denseForward(_ x: UnsafePointer<Float>, rows: Int, inputs: Int, units: Int,
                  kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>?, _ activation: Activation,
                  into y: UnsafeMutablePointer<Float>) {
    let threads = ThreadPool.shared.threadCount
    let rowBlocks = max(1, min(threads * 2, rows / 64))
    // Softmax needs whole rows in one task.
    let colBlocks = activation == .softmax ? 1 : max(1, min((threads + rowBlocks - 1) / rowBlocks, units / 64))
    parallelFor(rowBlocks * colBlocks) { t, _ in
        let r = chunk(t / colBlocks, of: rowBlocks, total: rows)
        let cols = chunk(t % colBlocks, of: colBlocks, total: units)
        let out = y + r.lowerBound * units + cols.lowerBound
        GEMM.sgemm(m: r.count, n: cols.count, k: inputs, a: x + r.lowerBound * inputs, lda: inputs,
                   b: kernel + cols.lowerBound, ldb: units, c: out, ldc: units)
        if let bias {
            for i in 0..<r.count {
                let row = out + i * units
                for j in 0..<cols.count { row[j] += bias[cols.lowerBound + j] }
            }
        }
        if activation != .linear {
            if cols.count == units {
                activate(out, rows: r.count, cols: units, activation)
            } else {
                for i in 0..<r.count { activate(out + i * units, rows: 1, cols: cols.count, activation) }
            }
        }
    }
}
