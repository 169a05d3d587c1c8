// MaxPooling2D, TensorFlow's rules (KERAS-FORMATS B.2): `valid` or `same` windows,
// the padded positions never win (each window takes the max of its real elements
// only; with TF's padding split every window holds at least one).

/// A Keras `MaxPooling2D` layer.
public final class MaxPooling2DLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    let geometry: PoolGeometry

    init(name: String, config: Pool2DConfig, inputShape: [Int]) throws {
        geometry = try poolGeometry(config, inputShape: inputShape, layer: name, kind: "MaxPooling2D")
        self.name = name; self.inputShape = inputShape
        outputShape = [geometry.oh, geometry.ow, geometry.c]
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                maxPool2DForward(px.baseAddress!, batch: n, geometry, into: py.baseAddress!)
            }
        }
        _ = context.release(x)
        return y
    }
}

/// y (N, OH, OW, C) = max over each window of x (N, H, W, C), real elements only.
func maxPool2DForward(_ x: UnsafePointer<Float>, batch: Int, _ g: PoolGeometry,
                      into y: UnsafeMutablePointer<Float>) {
    let c = g.c
    forEachOutputRow(batch: batch, g) { n, i in
        let image = x + n * g.h * g.w * c
        for j in 0..<g.ow {
            let out = y + ((n * g.oh + i) * g.ow + j) * c
            let (rows, cols) = g.window(i, j)
            out.update(from: image + (rows.lowerBound * g.w + cols.lowerBound) * c, count: c)
            for yy in rows {
                for xx in cols {
                    let src = image + (yy * g.w + xx) * c
                    for ch in 0..<c { let v = src[ch], m = out[ch]; out[ch] = v > m ? v : m }
                }
            }
        }
    }
}
