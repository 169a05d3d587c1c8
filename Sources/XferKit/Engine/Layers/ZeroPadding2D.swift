// ZeroPadding2D: (N, H, W, C) → (N, top+H+bottom, left+W+right, C), zeros around.
//
// The Keras kind, `ZeroPadding2DConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `ZeroPadding2D` layer.
package final class ZeroPadding2DLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]
    let padding: ZeroPadding2DConfig

    init(name: String, config: ZeroPadding2DConfig, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: name, kind: "ZeroPadding2D")
        guard min(config.top, config.bottom, config.left, config.right) >= 0 else {
            throw XferError.badInput("layer '\(name)'", "negative padding \(config)")
        }
        self.name = name; self.inputShape = inputShape; padding = config
        outputShape = [config.top + inputShape[0] + config.bottom,
                       config.left + inputShape[1] + config.right, inputShape[2]]
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0], h = inputShape[0], w = inputShape[1], c = inputShape[2]
        let ow = outputShape[1], oh = outputShape[0]
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                let px = px.baseAddress!, py = py.baseAddress!
                // Each output row once, on the pool: zeros where it is padding, the input row
                // between (zeroing the whole output first, on one thread, took longer than the copy).
                let rows = n * oh, parts = min(rows, ThreadPool.shared.threadCount * 4)
                let left = padding.left * c, right = (ow - padding.left - w) * c
                parallelFor(parts) { part, _ in
                    for r in chunk(part, of: parts, total: rows) {
                        let b = r / oh, i = r - b * oh - padding.top
                        let dst = py + r * ow * c
                        guard i >= 0 && i < h else {
                            dst.update(repeating: 0, count: ow * c)
                            continue
                        }
                        dst.update(repeating: 0, count: left)
                        (dst + left).update(from: px + (b * h + i) * w * c, count: w * c)
                        (dst + left + w * c).update(repeating: 0, count: right)
                    }
                }
            }
        }
        _ = context.release(x)
        return y
    }

    /// dx is dy without the padded border.
    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        let n = dy.shape[0], h = inputShape[0], w = inputShape[1], c = inputShape[2]
        let ow = outputShape[1], oh = outputShape[0]
        var dx = Tensor(shape: [n] + inputShape, repeating: 0)
        dy.values.withUnsafeBufferPointer { pdy in
            dx.values.withUnsafeMutableBufferPointer { pdx in
                for b in 0..<n {
                    for i in 0..<h {
                        let src = pdy.baseAddress! + ((b * oh + i + padding.top) * ow + padding.left) * c
                        (pdx.baseAddress! + (b * h + i) * w * c).update(from: src, count: w * c)
                    }
                }
            }
        }
        return dx
    }
}

// MARK: The Keras kind

/// Keras `ZeroPadding2D`: one size, (rows, columns), or ((top, bottom), (left, right)).
package struct ZeroPadding2DConfig: SingleInputOp, Equatable {
    package var top: Int, bottom: Int, left: Int, right: Int
    package init(top: Int, bottom: Int, left: Int, right: Int) {
        self.top = top; self.bottom = bottom; self.left = left; self.right = right
    }

    package static var kerasClassNames: [String] { ["ZeroPadding2D"] }

    package init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        let b = try k.border("padding", default: 1)
        self.init(top: b.top, bottom: b.bottom, left: b.left, right: b.right)
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["padding"] = [[top, bottom], [left, right]]
        c["data_format"] = "channels_last"
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (h, w, ch) = try spatialInput(input, layer: layer)
        return [h + top + bottom, w + left + right, ch]
    }

    package var finishesBlock: Bool { true }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try ZeroPadding2DLayer(name: spec.name, config: self, inputShape: inputShape)
    }
}
