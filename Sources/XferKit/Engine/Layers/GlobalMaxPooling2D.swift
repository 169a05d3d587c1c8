// GlobalMaxPooling2D: the max over H and W of each channel (`channels_last`),
// (N, H, W, C) → (N, C), or (N, 1, 1, C) with keepdims.

/// A Keras `GlobalMaxPooling2D` layer.
public final class GlobalMaxPooling2DLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]

    init(name: String, keepdims: Bool, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: name, kind: "GlobalMaxPooling2D")
        guard inputShape[0] > 0, inputShape[1] > 0 else {
            throw XferError.badInput("layer '\(name)'", "GlobalMaxPooling2D of an empty image \(inputShape)")
        }
        self.name = name; self.inputShape = inputShape
        outputShape = keepdims ? [1, 1, inputShape[2]] : [inputShape[2]]
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0], pixels = inputShape[0] * inputShape[1], c = inputShape[2]
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                let px = px.baseAddress!, py = py.baseAddress!
                parallelFor(n) { b, _ in
                    let out = py + b * c
                    out.update(from: px + b * pixels * c, count: c)
                    for p in 1..<max(pixels, 1) {
                        let src = px + (b * pixels + p) * c
                        for ch in 0..<c { let v = src[ch], m = out[ch]; out[ch] = v > m ? v : m }
                    }
                }
            }
        }
        _ = context.release(x)
        return y
    }
}
