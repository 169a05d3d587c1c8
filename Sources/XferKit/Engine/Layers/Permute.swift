// Permute: reorders the axes of each sample, Keras's `Permute(dims)` with `dims` a permutation
// of 1…rank (the batch axis stays first): output axis i is input axis dims[i] − 1, so
// (N, H, W, C) with dims (2, 1, 3) → (N, W, H, C). Backward applies the inverse permutation
// to dy. The kernel walks the output in order and gathers from the input by strides.
//
// The Keras kind, `PermuteConfig` (end of file): its config as Keras reads and writes it, its
// output shape, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Permute` layer.
package final class PermuteLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]
    /// Output axis i reads input axis `axes[i]` (0-based, batch axis excluded).
    let axes: [Int]

    init(name: String, axes: [Int], inputShape: [Int]) {
        self.name = name; self.axes = axes; self.inputShape = inputShape
        outputShape = axes.map { inputShape[$0] }
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = context.output([x.shape[0]] + outputShape)
        permute(x, into: &y, from: inputShape, axes: axes)
        _ = context.release(x)
        return y
    }

    /// dx = dy permuted back: input axis axes[i] reads output axis i.
    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        var inverse = [Int](repeating: 0, count: axes.count)
        for (i, a) in axes.enumerated() { inverse[a] = i }
        var dx = Tensor(shape: [dy.shape[0]] + inputShape, repeating: 0)
        permute(dy, into: &dx, from: outputShape, axes: inverse)
        return dx
    }
}

/// y[n][i₀…] = x[n][j…] with j[axes[k]] = i[k], for samples of shape `shape`.
func permute(_ x: Tensor, into y: inout Tensor, from shape: [Int], axes: [Int]) {
    let rank = shape.count, per = shape.reduce(1, *), n = x.count / max(per, 1)
    var strides = [Int](repeating: 1, count: rank)
    for a in stride(from: rank - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * shape[a + 1] }
    let outShape = axes.map { shape[$0] }, outStrides = axes.map { strides[$0] }
    x.values.withUnsafeBufferPointer { px in
        y.values.withUnsafeMutableBufferPointer { py in
            var index = [Int](repeating: 0, count: rank)
            for b in 0..<n {
                let base = b * per
                index.withUnsafeMutableBufferPointer { idx in
                    for k in 0..<rank { idx[k] = 0 }
                    var source = 0
                    for o in 0..<per {
                        py[base + o] = px[base + source]
                        // Advance the output index (last axis fastest), keeping the source offset.
                        var k = rank - 1
                        while k >= 0 {
                            idx[k] += 1; source += outStrides[k]
                            if idx[k] < outShape[k] { break }
                            source -= outStrides[k] * outShape[k]; idx[k] = 0; k -= 1
                        }
                    }
                }
            }
        }
    }
}

// MARK: The Keras kind

/// Keras `Permute(dims)`, dims 1-based as Keras writes them.
package struct PermuteConfig: SingleInputOp, Equatable {
    package var dims: [Int]
    package init(dims: [Int]) { self.dims = dims }

    package static var kerasClassNames: [String] { ["Permute"] }

    package init(keras k: KerasLayerConfig) throws {
        guard let list = k["dims"] as? [Any], !list.isEmpty else {
            throw k.fail("layer '\(k.name)': missing or invalid 'dims'", hint: "the model configuration is damaged; save the model again with Keras")
        }
        let dims = try list.map { try k.size($0, "dims") }
        guard Set(dims) == Set(1...dims.count) else {
            throw k.fail("layer '\(k.name)': 'dims' \(dims) is not a permutation of 1…\(dims.count) (Keras refuses it too)")
        }
        self.init(dims: dims)
    }

    package func writeKeras(_ c: inout [String: Any], className: String) { c["dims"] = dims }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        guard input.count == dims.count else {
            throw XferError.badInput(layer, "Permute of \(dims.count) axes on an input \(shapeText(input))")
        }
        return dims.map { input[$0 - 1] }
    }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        _ = try outputShape(input: inputShape, layer: spec.name)
        return PermuteLayer(name: spec.name, axes: dims.map { $0 - 1 }, inputShape: inputShape)
    }
}
