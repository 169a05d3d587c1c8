// GlobalMaxPooling2D: the max over H and W of each channel (`channels_last`),
// (N, H, W, C) → (N, C), or (N, 1, 1, C) with keepdims.
//
// The Keras kind, `GlobalMaxPooling2DConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `GlobalMaxPooling2D` layer.
package final class GlobalMaxPooling2DLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    /// (N, H, W, C) and (N, C): the last input and output, kept only for backward.
    var savedInput: Tensor?
    var savedOutput: Tensor?
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]

    init(name: String, keepdims: Bool, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: name, kind: "GlobalMaxPooling2D")
        guard inputShape[0] > 0, inputShape[1] > 0 else {
            throw XferError.badInput("layer '\(name)'", "GlobalMaxPooling2D of an empty image \(inputShape)")
        }
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
                    out.update(from: px + b * pixels * c, count: c)
                    for p in 1..<max(pixels, 1) {
                        let src = px + (b * pixels + p) * c
                        for ch in 0..<c { let v = src[ch], m = out[ch]; out[ch] = v > m ? v : m }
                    }
                }
            }
        }
        savedInput = context.release(x)
        if context.keepForBackward { savedOutput = y }
        return y
    }

    /// dy goes to the maximum of each channel; tied maxima share it equally, as TensorFlow's
    /// gradient of `reduce_max` does.
    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient, let x = savedInput, let y = savedOutput else { return nil }
        let n = dy.shape[0], pixels = inputShape[0] * inputShape[1], c = inputShape[2]
        var dx = Tensor(shape: [n] + inputShape, repeating: 0)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeBufferPointer { py in
                dy.values.withUnsafeBufferPointer { pdy in
                    dx.values.withUnsafeMutableBufferPointer { pdx in
                        for b in 0..<n {
                            for ch in 0..<c {
                                let m = py[b * c + ch]
                                var ties = 0
                                for p in 0..<pixels where px[(b * pixels + p) * c + ch] == m { ties += 1 }
                                let share = pdy[b * c + ch] / Float(max(ties, 1))
                                for p in 0..<pixels where px[(b * pixels + p) * c + ch] == m { pdx[(b * pixels + p) * c + ch] = share }
                            }
                        }
                    }
                }
            }
        }
        savedInput = nil; savedOutput = nil
        return dx
    }
}

// MARK: The Keras kind

/// Keras `GlobalMaxPooling2D`.
package struct GlobalMaxPooling2DConfig: GlobalPooling2DOp, Equatable {
    package var keepdims: Bool
    package init(keepdims: Bool = false) { self.keepdims = keepdims }

    package static var kerasClassNames: [String] { ["GlobalMaxPooling2D"] }
    package static var kerasAliases: [String] { ["GlobalMaxPool2D"] }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try GlobalMaxPooling2DLayer(name: spec.name, keepdims: keepdims, inputShape: inputShape)
    }
}
