// Dense: y = act(x · W + b) on the last axis, W (in, units) as Keras stores it.
// Any leading axes are rows: (N, …, in) → (N, …, units), as Keras applies Dense to
// the last axis of a higher-rank input.
//
// The product is one GEMM (rows × in)·(in × units), cut into a grid of row and
// column blocks so that even a batch of one keeps every thread busy.
//
// The Keras kind, `DenseConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Dense` layer.
package final class DenseLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    /// (in, units) and (units): gradients, allocated on the first backward.
    var dKernel: [Float] = []
    var dBias: [Float] = []
    /// (N, …, units): the last output (for the activation's backward), kept only for backward.
    var savedOutput: Tensor?
    /// The last input before the activation, only for silu/gelu.
    var savedPreActivation: Tensor?
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]
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
        let kernel = try spec.values(.kernel, shape: [inputs, config.units])
        let bias = config.useBias ? try spec.values(.bias, shape: [config.units]) : nil
        try spec.onlyWeights(config.useBias ? [.kernel, .bias] : [.kernel])
        try self.init(name: spec.name, config: config, inputShape: inputShape, kernel: kernel, bias: bias)
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let inputs = inputShape.last!, units = outputShape.last!
        let rows = x.count / inputs
        var y = context.output([x.shape[0]] + outputShape)
        // silu and gelu need their input in backward: keep the pre-activation, then activate.
        let keepPre = context.keepForBackward && activationBackwardNeedsInput(activation)
        x.values.withUnsafeBufferPointer { px in
            kernel.withUnsafeBufferPointer { pk in
                y.values.withUnsafeMutableBufferPointer { py in
                    let pb = bias?.withUnsafeBufferPointer { $0.baseAddress! }
                    denseForward(px.baseAddress!, rows: rows, inputs: inputs, units: units,
                                 kernel: pk.baseAddress!, bias: pb, keepPre ? .linear : activation, into: py.baseAddress!)
                }
            }
        }
        if keepPre {
            savedPreActivation = Tensor(shape: y.shape, values: Array(y.values))
            activate(&y, activation)
        }
        savedInput = context.release(x)
        if context.keepForBackward { savedOutput = y }
        return y
    }

    /// dz = dy·act′; dW += xᵀ·dz; db += Σ dz; dx = dz·Wᵀ.
    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard let x = savedInput, let y = savedOutput else { return nil }
        let inputs = inputShape.last!, units = outputShape.last!
        let rows = dy.count / units
        var dz = dy
        dz.values.withUnsafeMutableBufferPointer { pd in
            y.values.withUnsafeBufferPointer { py in
                withOptionalValues(savedPreActivation) { pre in
                    activationBackward(pd.baseAddress!, output: py.baseAddress!, input: pre, rows: rows, cols: units, activation)
                }
            }
        }
        if trainable {
            if dKernel.isEmpty { dKernel = [Float](repeating: 0, count: kernel.count) }
            if bias != nil && dBias.isEmpty { dBias = [Float](repeating: 0, count: units) }
            x.values.withUnsafeBufferPointer { px in
                dz.values.withUnsafeBufferPointer { pz in
                    dKernel.withUnsafeMutableBufferPointer { pk in
                        GEMM.sgemm(transA: true, m: inputs, n: units, k: rows, a: px.baseAddress!, lda: inputs,
                                   b: pz.baseAddress!, ldb: units, beta: 1, c: pk.baseAddress!, ldc: units)
                    }
                    if bias != nil {
                        for r in 0..<rows { for j in 0..<units { dBias[j] += pz[r * units + j] } }
                    }
                }
            }
        }
        savedInput = nil; savedOutput = nil; savedPreActivation = nil
        guard needInputGradient else { return nil }
        var dx = Tensor(shape: [dy.shape[0]] + inputShape, repeating: 0)
        dz.values.withUnsafeBufferPointer { pz in
            kernel.withUnsafeBufferPointer { pk in
                dx.values.withUnsafeMutableBufferPointer { px in
                    GEMM.sgemm(transB: true, m: rows, n: inputs, k: units, a: pz.baseAddress!, lda: units,
                               b: pk.baseAddress!, ldb: units, c: px.baseAddress!, ldc: inputs)
                }
            }
        }
        return dx
    }

    package func zeroGradients() {
        for i in dKernel.indices { dKernel[i] = 0 }
        for i in dBias.indices { dBias[i] = 0 }
    }

    package func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        if dKernel.isEmpty { dKernel = [Float](repeating: 0, count: kernel.count) }
        dKernel.withUnsafeBufferPointer { g in kernel.withUnsafeMutableBufferPointer { body(.kernel, $0, g) } }
        if bias != nil {
            if dBias.isEmpty { dBias = [Float](repeating: 0, count: bias!.count) }
            dBias.withUnsafeBufferPointer { g in bias!.withUnsafeMutableBufferPointer { body(.bias, $0, g) } }
        }
    }

    package func currentWeights() -> [WeightRole: [Float]] {
        var w: [WeightRole: [Float]] = [.kernel: kernel]
        if let bias { w[.bias] = bias }
        return w
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

// MARK: The Keras kind

/// Keras `Dense`.
package struct DenseConfig: SingleInputOp, Equatable {
    package var units: Int
    package var useBias: Bool
    package var activation: Activation
    package init(units: Int, useBias: Bool = true, activation: Activation = .linear) {
        self.units = units; self.useBias = useBias; self.activation = activation
    }

    package static var kerasClassNames: [String] { ["Dense"] }

    package init(keras k: KerasLayerConfig) throws {
        self.init(units: try k.int("units"), useBias: k.bool("use_bias", default: true), activation: try k.activation())
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["units"] = units
        c["activation"] = activation.rawValue
        c["use_bias"] = useBias
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        guard !input.isEmpty else { throw XferError.badInput(layer, "has an empty input shape") }
        return Array(input.dropLast()) + [units]
    }

    package func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        var w: [ExpectedWeight] = [(.kernel, [input.last ?? 0, units], true)]
        if useBias { w.append((.bias, [units], true)) }
        return w
    }

    package var hasWeights: Bool { true }

    package func forwardFLOPs(input: [Int]) -> Double {
        let rows = input.dropLast().reduce(1, *)
        return 2 * Double(rows) * Double(input.last ?? 0) * Double(units)
    }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try DenseLayer(spec: spec, config: self, inputShape: inputShape)
    }
}
