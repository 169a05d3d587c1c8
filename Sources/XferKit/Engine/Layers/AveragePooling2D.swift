// AveragePooling2D, TensorFlow's rules: `valid` or `same` windows; with `same` the sum
// is divided by the number of real (non-padded) elements under the window, not by
// the pool size (TF `avg_pool`, which the Keras TF backend calls).

/// A Keras `AveragePooling2D` layer.
public final class AveragePooling2DLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    let geometry: PoolGeometry

    init(name: String, config: Pool2DConfig, inputShape: [Int]) throws {
        geometry = try poolGeometry(config, inputShape: inputShape, layer: name, kind: "AveragePooling2D")
        self.name = name; self.inputShape = inputShape
        outputShape = [geometry.oh, geometry.ow, geometry.c]
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
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
