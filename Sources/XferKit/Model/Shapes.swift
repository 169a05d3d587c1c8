// Output shapes, expected weights and forward FLOPs of a layer, as Keras computes them
// (docs/KERAS-FORMATS.md B.1, B.2; K3 `ops/operation_utils.py`): an InputLayer and a nested
// model here, every other kind by its op (Ops/LayerOp.swift, the rule in Engine/Layers/).
// Also the window arithmetic the convolution and pooling kinds share.

import Foundation

/// Output size of a convolution or pooling window along one axis.
package func windowOutputSize(input: Int, kernel: Int, stride: Int, dilation: Int = 1, padding: Padding) -> Int {
    switch padding {
    case .valid: return (input - dilation * (kernel - 1) - 1) / stride + 1
    case .same: return (input - 1) / stride + 1
    }
}

/// The window of a pooling layer (MaxPooling2D, AveragePooling2D); strides default to the pool size.
package struct Pool2DConfig: Sendable, Equatable {
    package var poolSize: (h: Int, w: Int)
    package var strides: (h: Int, w: Int)
    package var padding: Padding

    package init(poolSize: (h: Int, w: Int) = (2, 2), strides: (h: Int, w: Int)? = nil, padding: Padding = .valid) {
        self.poolSize = poolSize; self.strides = strides ?? poolSize; self.padding = padding
    }

    package static func == (a: Pool2DConfig, b: Pool2DConfig) -> Bool {
        a.poolSize == b.poolSize && a.strides == b.strides && a.padding == b.padding
    }

    init(keras k: KerasLayerConfig) throws {
        let pool = try k.pair("pool_size", default: 2)
        let strides = k["strides"].flatMap { $0 is NSNull ? nil : $0 }
        self.init(poolSize: pool, strides: try strides.map { try k.pair($0, "strides") }, padding: try k.padding())
    }

    func writeKeras(_ c: inout [String: Any]) {
        c["pool_size"] = [poolSize.h, poolSize.w]
        c["strides"] = [strides.h, strides.w]
        c["padding"] = padding.rawValue
        c["data_format"] = "channels_last"
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (h, w, ch) = try spatialInput(input, layer: layer)
        let oh = windowOutputSize(input: h, kernel: poolSize.h, stride: strides.h, padding: padding)
        let ow = windowOutputSize(input: w, kernel: poolSize.w, stride: strides.w, padding: padding)
        guard oh > 0, ow > 0 else {
            throw XferError.badInput(layer, "input \(shapeText(input)) is too small for a \(poolSize.h)×\(poolSize.w) pooling window",
                                     hint: "check --input-shape")
        }
        return [oh, ow, ch]
    }
}

extension LayerSpec {
    /// The output shape (no batch axis) for an input of `input`, or an error naming the layer.
    package func outputShape(input: [Int]) throws -> [Int] {
        switch kind {
        case .input:
            return input
        case .op(let op):
            return try op.outputShape(inputs: [input], layer: name)
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
    package func outputShape(inputs: [[Int]]) throws -> [Int] {
        if let op, op.takesSeveralInputs { return try op.outputShape(inputs: inputs, layer: name) }
        guard inputs.count == 1 else {
            throw XferError.badInput(name, "\(className) takes one input but is given \(inputs.count)")
        }
        return try outputShape(input: inputs[0])
    }
}

extension LayerSpec {
    /// The weights this layer must have for an input of `input`: role, shape, trainable kind.
    /// Nested models return [] (their layers hold their weights).
    package func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        op?.expectedWeights(input: input) ?? []
    }

    /// Whether this layer (or, for a nested model, anything inside it) holds weights.
    package var hasWeights: Bool {
        switch kind {
        case .input: return false
        case .op(let op): return op.hasWeights
        case .model(let m): return m.layers.contains { $0.hasWeights }
        }
    }
}

extension ModelSpec {
    /// Input shape of every layer (of its first call; the first input of a merge), in `layers`
    /// order; an InputLayer's is the model's input.
    package func layerInputShapes() throws -> [[Int]] {
        let shapes = try ModelGraph(self).layerShapes
        return layers.map { shapes[$0.name]?.inputs.first ?? inputShape }
    }

    /// Output shape of every layer's first call, in `layers` order.
    package func layerOutputShapes() throws -> [[Int]] {
        let shapes = try ModelGraph(self).layerShapes
        return layers.map { shapes[$0.name]?.output ?? inputShape }
    }

    package func outputShape() throws -> [Int] { try outputShape(input: inputShape) }

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
    package func checkFitsInMemory(source: String, memory: UInt64 = ProcessInfo.processInfo.physicalMemory) throws -> Int {
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
package func shapeText(_ shape: [Int], batch: Bool = false) -> String {
    let parts = (batch ? ["None"] : []) + shape.map { $0 < 0 ? "None" : String($0) }
    return "(" + parts.joined(separator: ", ") + (parts.count == 1 && !batch ? ",)" : ")")
}

extension LayerSpec {
    /// Floating-point operations (a multiply-add counts 2) of this layer's forward pass on one
    /// sample of shape `input`: convolutions and dense products only, the rest is noise beside them.
    package func forwardFLOPs(input: [Int]) -> Double {
        switch kind {
        case .input:
            return 0
        case .op(let op):
            return op.forwardFLOPs(input: input)
        case .model(let m):
            var inner = m
            inner.inputShape = input
            guard let graph = try? ModelGraph(inner) else { return 0 }
            return graph.nodes.reduce(0) { $0 + $1.layer.forwardFLOPs(input: $1.inputShapes[0]) }
        }
    }
}

/// What GlobalAveragePooling2D and GlobalMaxPooling2D share: Keras's `keepdims`, its config and
/// the shape rule, (H, W, C) → (C) or (1, 1, C).
package protocol GlobalPooling2DOp: SingleInputOp {
    var keepdims: Bool { get }
    init(keepdims: Bool)
}

extension GlobalPooling2DOp {
    package init(keras k: KerasLayerConfig) throws { self.init(keepdims: k.bool("keepdims", default: false)) }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["data_format"] = "channels_last"
        c["keepdims"] = keepdims
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (_, _, ch) = try spatialInput(input, layer: layer)
        return keepdims ? [1, 1, ch] : [ch]
    }
}
