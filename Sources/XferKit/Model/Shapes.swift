// Output shapes and the weights each layer expects, as Keras computes them
import Foundation
// (docs/KERAS-FORMATS.md B.1, B.2; K3 `ops/operation_utils.py`).

/// Output size of a convolution or pooling window along one axis.
public func windowOutputSize(input: Int, kernel: Int, stride: Int, dilation: Int = 1, padding: Padding) -> Int {
    switch padding {
    case .valid: return (input - dilation * (kernel - 1) - 1) / stride + 1
    case .same: return (input - 1) / stride + 1
    }
}

/// TensorFlow's `same` padding: the extra pixel, if any, goes to the bottom/right.
public func samePadding(input: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (before: Int, after: Int) {
    let out = (input - 1) / stride + 1
    let effective = (kernel - 1) * dilation + 1
    let total = max((out - 1) * stride + effective - input, 0)
    return (total / 2, total - total / 2)
}

extension LayerSpec {
    /// The output shape (no batch axis) for an input of `input`, or an error naming the layer.
    public func outputShape(input: [Int]) throws -> [Int] {
        func spatial() throws -> (Int, Int, Int) {
            guard input.count == 3 else {
                throw XferError.badInput(name, "expects an image-shaped input (H, W, C), got \(shapeText(input))")
            }
            return (input[0], input[1], input[2])
        }
        switch kind {
        case .input:
            return input
        case .conv2D(let c):
            let (h, w, _) = try spatial()
            let oh = windowOutputSize(input: h, kernel: c.kernelSize.h, stride: c.strides.h, dilation: c.dilation.h, padding: c.padding)
            let ow = windowOutputSize(input: w, kernel: c.kernelSize.w, stride: c.strides.w, dilation: c.dilation.w, padding: c.padding)
            guard oh > 0, ow > 0 else {
                throw XferError.badInput(name, "input \(shapeText(input)) is too small for a \(c.kernelSize.h)×\(c.kernelSize.w) convolution",
                                         hint: "check --input-shape")
            }
            return [oh, ow, c.filters]
        case .maxPooling2D(let p), .averagePooling2D(let p):
            let (h, w, ch) = try spatial()
            let oh = windowOutputSize(input: h, kernel: p.poolSize.h, stride: p.strides.h, padding: p.padding)
            let ow = windowOutputSize(input: w, kernel: p.poolSize.w, stride: p.strides.w, padding: p.padding)
            guard oh > 0, ow > 0 else {
                throw XferError.badInput(name, "input \(shapeText(input)) is too small for a \(p.poolSize.h)×\(p.poolSize.w) pooling window",
                                         hint: "check --input-shape")
            }
            return [oh, ow, ch]
        case .globalAveragePooling2D(let keep), .globalMaxPooling2D(let keep):
            let (_, _, ch) = try spatial()
            return keep ? [1, 1, ch] : [ch]
        case .flatten:
            guard let n = checkedCount(input) else {
                throw XferError.badInput(name, "flattening \(shapeText(input)) gives more values than any machine holds")
            }
            return [n]
        case .dense(let d):
            guard let last = input.last else { throw XferError.badInput(name, "has an empty input shape") }
            _ = last
            return Array(input.dropLast()) + [d.units]
        case .batchNormalization(let b):
            // Keras counts the batch axis: the last axis of (N, H, W, C) is 3, of (N, F) is 1.
            guard b.axis == -1 || b.axis == input.count else {
                throw XferError.badInput(name, "BatchNormalization over axis \(b.axis) of an input \(shapeText(input)) is not supported (the last axis only)",
                                         hint: "xfer does not run this layer; see `xfer import --help` for the supported kinds")
            }
            return input
        case .dropout, .activation, .relu, .rescaling:
            return input
        case .zeroPadding2D(let p):
            let (h, w, ch) = try spatial()
            return [h + p.top + p.bottom, w + p.left + p.right, ch]
        case .merge(let op):
            return try mergeOutputShape(op, [input])
        case .model(let m):
            // A size the nested model leaves open (−1) takes the one it is given.
            let fits = m.inputShape.count == input.count && zip(m.inputShape, input).allSatisfy { $0 == $1 || $0 < 0 }
            guard fits || m.inputShape.isEmpty else {
                throw XferError.badInput(name, "nested model expects input \(shapeText(m.inputShape)) but is given \(shapeText(input))")
            }
            return try m.outputShape(input: input)
        }
    }

    /// The output shape for the inputs of one call: merge layers take several, the others one.
    public func outputShape(inputs: [[Int]]) throws -> [Int] {
        if case .merge(let op) = kind { return try mergeOutputShape(op, inputs) }
        guard inputs.count == 1 else {
            throw XferError.badInput(name, "\(className) takes one input but is given \(inputs.count)")
        }
        return try outputShape(input: inputs[0])
    }

    /// Keras's merge shapes, by the merge layer's own rule (Engine/Layers/): elementwise merges
    /// broadcast their inputs, Concatenate sums the sizes along its axis.
    private func mergeOutputShape(_ op: MergeOp, _ inputs: [[Int]]) throws -> [Int] {
        do {
            return try XferKit.mergeOutputShape(op, name: name, inputShapes: inputs)
        } catch let e as XferError {
            throw XferError.badInput(name, e.message, hint: e.hint)
        }
    }
}

extension LayerSpec {
    /// The weights this layer must have for an input of `input`: role, shape, trainable kind.
    /// Nested models return [] (their layers hold their weights).
    public func expectedWeights(input: [Int]) -> [(role: String, shape: [Int], trainableKind: Bool)] {
        switch kind {
        case .conv2D(let c):
            let cin = input.last ?? 0
            var w: [(String, [Int], Bool)] = [("kernel", [c.kernelSize.h, c.kernelSize.w, cin, c.filters], true)]
            if c.useBias { w.append(("bias", [c.filters], true)) }
            return w
        case .dense(let d):
            var w: [(String, [Int], Bool)] = [("kernel", [input.last ?? 0, d.units], true)]
            if d.useBias { w.append(("bias", [d.units], true)) }
            return w
        case .batchNormalization(let b):
            let c = input.last ?? 0
            var w: [(String, [Int], Bool)] = []
            if b.scale { w.append(("gamma", [c], true)) }
            if b.center { w.append(("beta", [c], true)) }
            w.append(("moving_mean", [c], false))
            w.append(("moving_variance", [c], false))
            return w
        default:
            return []
        }
    }

    /// Whether this layer (or, for a nested model, anything inside it) holds weights.
    public var hasWeights: Bool {
        switch kind {
        case .conv2D, .dense, .batchNormalization: return true
        case .model(let m): return m.layers.contains { $0.hasWeights }
        default: return false
        }
    }
}

extension ModelSpec {
    /// Input shape of every layer (of its first call; the first input of a merge), in `layers`
    /// order; an InputLayer's is the model's input.
    public func layerInputShapes() throws -> [[Int]] {
        let shapes = try ModelGraph(self).layerShapes
        return layers.map { shapes[$0.name]?.inputs.first ?? inputShape }
    }

    /// Output shape of every layer's first call, in `layers` order.
    public func layerOutputShapes() throws -> [[Int]] {
        let shapes = try ModelGraph(self).layerShapes
        return layers.map { shapes[$0.name]?.output ?? inputShape }
    }

    public func outputShape() throws -> [Int] { try outputShape(input: inputShape) }

    /// The output for an input of `input` (a nested model given the sizes it leaves open).
    func outputShape(input: [Int]) throws -> [Int] {
        var m = self
        m.inputShape = input
        return try ModelGraph(m).outputShape
    }
}

/// The element count of `dims`, or nil when it overflows or passes `limit` (2^40 by default:
/// four terabytes of floats, far beyond any machine xfer runs on).
func checkedCount(_ dims: [Int], limit: Int = 1 << 40) -> Int? {
    var n = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow, p <= limit else { return nil }
        n = p
    }
    return n
}

extension ModelSpec {
    /// Refuses, before anything is allocated, a model whose weights or whose largest tensor for one
    /// sample would need more memory than the machine has: one line saying how much. Returns the
    /// number of weight values the model's layers expect.
    @discardableResult
    public func checkFitsInMemory(source: String, memory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws -> Int {
        var weightValues = 0, largest = (values: 0, layer: "")
        guard !inputShape.contains(where: { $0 < 0 }) else { return 0 }
        let graph = try ModelGraph(self, source: source)
        var counted = Set<String>()
        for node in graph.nodes {
            // A shared layer's weights count once.
            if counted.insert(node.path).inserted {
                for w in node.layer.expectedWeights(input: node.inputShapes[0]) {
                    guard let n = checkedCount(w.shape) else {
                        throw XferError.badInput(source, "layer '\(node.layer.name)': its \(w.role) of shape \(shapeText(w.shape)) is larger than any machine holds",
                                                 hint: "the model configuration is damaged")
                    }
                    weightValues = weightValues.addingReportingOverflow(n).partialValue
                }
            }
            let n = checkedCount(node.outputShape) ?? Int.max
            if n > largest.values { largest = (n, node.layer.name) }
        }
        func gib(_ values: Int) -> String {
            values == Int.max ? "more than 4 TiB" : String(format: "%.1f GiB", Double(values) * 4 / Double(1 << 30))
        }
        let have = String(format: "%.1f GiB", Double(memory) / Double(1 << 30))
        if UInt64(weightValues) > memory / 4 {
            throw XferError.badInput(source, "its weights would need \(gib(weightValues)) of memory; this machine has \(have)",
                                     hint: "the model configuration is damaged, or the model is too large for this machine")
        }
        if largest.values == Int.max || UInt64(largest.values) > memory / 4 {
            throw XferError.badInput(source, "layer '\(largest.layer)' would need \(gib(largest.values)) of memory for one sample; this machine has \(have)",
                                     hint: "check --input-shape, or the model configuration is damaged")
        }
        return weightValues
    }
}

/// `(None, 32, 32, 3)` as Keras prints shapes.
public func shapeText(_ shape: [Int], batch: Bool = false) -> String {
    let parts = (batch ? ["None"] : []) + shape.map { $0 < 0 ? "None" : String($0) }
    return "(" + parts.joined(separator: ", ") + (parts.count == 1 && !batch ? ",)" : ")")
}

extension LayerSpec {
    /// Floating-point operations (a multiply-add counts 2) of this layer's forward pass on one
    /// sample of shape `input`: convolutions and dense products only, the rest is noise beside them.
    public func forwardFLOPs(input: [Int]) -> Double {
        switch kind {
        case .conv2D(let c):
            guard let out = try? outputShape(input: input), out.count == 3, let cin = input.last else { return 0 }
            return 2 * Double(out[0] * out[1] * c.filters) * Double(c.kernelSize.h * c.kernelSize.w * cin)
        case .dense(let d):
            let rows = input.dropLast().reduce(1, *)
            return 2 * Double(rows) * Double(input.last ?? 0) * Double(d.units)
        case .model(let m):
            var inner = m
            inner.inputShape = input
            guard let graph = try? ModelGraph(inner) else { return 0 }
            return graph.nodes.reduce(0) { $0 + $1.layer.forwardFLOPs(input: $1.inputShapes[0]) }
        default:
            return 0
        }
    }
}
