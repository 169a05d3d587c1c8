// GlobalAveragePooling2D: the mean over H and W of each channel (`channels_last`),
// (N, H, W, C) → (N, C), or (N, 1, 1, C) with keepdims.
//
// The Keras kind, `GlobalAveragePooling2DConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `GlobalAveragePooling2D` layer.
package final class GlobalAveragePooling2DLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]

    init(name: String, keepdims: Bool, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: name, kind: "GlobalAveragePooling2D")
        self.name = name; self.inputShape = inputShape
        outputShape = keepdims ? [1, 1, inputShape[2]] : [inputShape[2]]
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0], pixels = inputShape[0] * inputShape[1], c = inputShape[2]
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                let px = px.baseAddress!, py = py.baseAddress!
                parallelFor(n) { b, _ in
                    let out = py + b * c
                    out.update(repeating: 0, count: c)
                    for p in 0..<pixels {
                        let src = px + (b * pixels + p) * c
                        for ch in 0..<c { out[ch] += src[ch] }
                    }
                    let count = Float(pixels)
                    for ch in 0..<c { out[ch] /= count }
                }
            }
        }
        _ = context.release(x)
        return y
    }

    /// Each pixel gets dy / (H·W) of its channel.
    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        let n = dy.shape[0], pixels = inputShape[0] * inputShape[1], c = inputShape[2]
        var dx = Tensor(shape: [n] + inputShape, repeating: 0)
        let scale = 1 / Float(pixels)
        dy.values.withUnsafeBufferPointer { pdy in
            dx.values.withUnsafeMutableBufferPointer { pdx in
                for b in 0..<n {
                    for p in 0..<pixels {
                        for ch in 0..<c { pdx[(b * pixels + p) * c + ch] = pdy[b * c + ch] * scale }
                    }
                }
            }
        }
        return dx
    }
}

// MARK: The Keras kind

/// Keras `GlobalAveragePooling2D`.
package struct GlobalAveragePooling2DConfig: GlobalPooling2DOp, Equatable {
    package var keepdims: Bool
    package init(keepdims: Bool = false) { self.keepdims = keepdims }

    package static var kerasClassNames: [String] { ["GlobalAveragePooling2D"] }
    package static var kerasAliases: [String] { ["GlobalAvgPool2D"] }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try GlobalAveragePooling2DLayer(name: spec.name, keepdims: keepdims, inputShape: inputShape)
    }
}
