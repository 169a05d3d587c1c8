// AveragePooling2D, TensorFlow's rules: `valid` or `same` windows; with `same` the sum
// is divided by the number of real (non-padded) elements under the window, not by
// the pool size (TF `avg_pool`, which the Keras TF backend calls).
//
// Backward: each dy is shared equally, dy / (real elements), among its window's real
// elements; where windows overlap the shares add up. Nothing needs keeping.
//
// The Keras kind, `AveragePooling2DConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `AveragePooling2D` layer.
package final class AveragePooling2DLayer: TrainableLayer {
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]
    let geometry: PoolGeometry

    package var training = false
    /// No weights: nothing trains.
    package var trainable = false

    init(name: String, config: Pool2DConfig, inputShape: [Int]) throws {
        geometry = try poolGeometry(config, inputShape: inputShape, layer: name, kind: "AveragePooling2D")
        self.name = name; self.inputShape = inputShape
        outputShape = [geometry.oh, geometry.ow, geometry.c]
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                averagePool2DForward(px.baseAddress!, batch: n, geometry, into: py.baseAddress!)
            }
        }
        _ = context.release(x)
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        let n = dy.shape[0]
        precondition(dy.shape == [n] + outputShape, "layer '\(name)': dy has shape \(dy.shape), expected (N, \(outputShape))")
        var dx = context.output([n] + inputShape)
        dy.values.withUnsafeBufferPointer { pg in
            dx.values.withUnsafeMutableBufferPointer { pdx in
                averagePool2DBackward(pg.baseAddress!, batch: n, geometry, into: pdx.baseAddress!)
            }
        }
        return dx
    }
}

/// y (N, OH, OW, C) = mean over each window's real elements of x (N, H, W, C).
func averagePool2DForward(_ x: UnsafePointer<Float>, batch: Int, _ g: PoolGeometry,
                          into y: UnsafeMutablePointer<Float>) {
    let c = g.c
    forEachOutputRow(batch: batch, g) { n, i in
        let image = x + n * g.h * g.w * c
        for j in 0..<g.ow {
            let out = y + ((n * g.oh + i) * g.ow + j) * c
            let (rows, cols) = g.window(i, j)
            out.update(repeating: 0, count: c)
            for yy in rows {
                for xx in cols {
                    let src = image + (yy * g.w + xx) * c
                    for ch in 0..<c { out[ch] += src[ch] }
                }
            }
            let count = Float(rows.count * cols.count)
            for ch in 0..<c { out[ch] /= count }
        }
    }
}

/// dx (N, H, W, C): every real element of a window gets dy (N, OH, OW, C) / its real count.
func averagePool2DBackward(_ dy: UnsafePointer<Float>, batch: Int, _ g: PoolGeometry,
                           into dx: UnsafeMutablePointer<Float>) {
    let c = g.c
    forEachSampleChannelBlock(batch: batch, channels: c) { n, channels in
        let image = dx + n * g.h * g.w * c
        for p in 0..<g.h * g.w { (image + p * c + channels.lowerBound).update(repeating: 0, count: channels.count) }
        for i in 0..<g.oh {
            for j in 0..<g.ow {
                let grad = dy + ((n * g.oh + i) * g.ow + j) * c
                let (rows, cols) = g.window(i, j)
                let inverse = 1 / Float(rows.count * cols.count)
                for yy in rows {
                    for xx in cols {
                        let dst = image + (yy * g.w + xx) * c
                        for ch in channels { dst[ch] += grad[ch] * inverse }
                    }
                }
            }
        }
    }
}

// MARK: The Keras kind

/// Keras `AveragePooling2D`.
package struct AveragePooling2DConfig: SingleInputOp, Equatable {
    package var pool: Pool2DConfig
    package init(_ pool: Pool2DConfig = Pool2DConfig()) { self.pool = pool }

    package static var kerasClassNames: [String] { ["AveragePooling2D"] }
    package static var kerasAliases: [String] { ["AvgPool2D"] }

    package init(keras k: KerasLayerConfig) throws { self.init(try Pool2DConfig(keras: k)) }
    package func writeKeras(_ c: inout [String: Any], className: String) { pool.writeKeras(&c) }
    package func outputShape(input: [Int], layer: String) throws -> [Int] { try pool.outputShape(input: input, layer: layer) }
    package var isFeature: Bool { true }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try AveragePooling2DLayer(name: spec.name, config: pool, inputShape: inputShape)
    }
}
