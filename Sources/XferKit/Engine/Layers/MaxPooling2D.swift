// MaxPooling2D, TensorFlow's rules (KERAS-FORMATS B.2): `valid` or `same` windows,
// the padded positions never win (each window takes the max of its real elements
// only; with TF's padding split every window holds at least one).
//
// Backward: each dy goes whole to the element its window took, the first of equal
// maxima in a row-major scan (h, then w) of the real elements, as TF's CPU kernel
// breaks ties (`SpatialMaxPoolWithArgMaxHelper`); where windows overlap the shares add
// up. The forward records those positions, only when the context keeps for backward.
//
// The Keras kind, `MaxPooling2DConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `MaxPooling2D` layer.
package final class MaxPooling2DLayer: TrainableLayer {
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]
    let geometry: PoolGeometry
    /// (N, OH, OW, C): where in its sample's (H, W, C) input each output came from, as a
    /// flat offset; valid after a forward that kept for backward.
    private(set) var argmax: [Int32] = []
    /// Batch size of the forward that filled `argmax`, nil when it kept nothing.
    private var savedBatch: Int?

    package var training = false
    /// No weights: nothing trains.
    package var trainable = false

    init(name: String, config: Pool2DConfig, inputShape: [Int]) throws {
        geometry = try poolGeometry(config, inputShape: inputShape, layer: name, kind: "MaxPooling2D")
        guard geometry.h * geometry.w * geometry.c <= Int(Int32.max) else {
            throw XferError.badInput("layer '\(name)'", "MaxPooling2D input \(inputShape) has more than 2³¹ values per sample")
        }
        self.name = name; self.inputShape = inputShape
        outputShape = [geometry.oh, geometry.ow, geometry.c]
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        savedBatch = nil
        if context.keepForBackward {
            if argmax.count != y.count { argmax = [Int32](repeating: 0, count: y.count) }
            x.values.withUnsafeBufferPointer { px in
                y.values.withUnsafeMutableBufferPointer { py in
                    argmax.withUnsafeMutableBufferPointer { pa in
                        maxPool2DForward(px.baseAddress!, batch: n, geometry, into: py.baseAddress!,
                                         argmax: pa.baseAddress!)
                    }
                }
            }
            savedBatch = n
        } else {
            x.values.withUnsafeBufferPointer { px in
                y.values.withUnsafeMutableBufferPointer { py in
                    maxPool2DForward(px.baseAddress!, batch: n, geometry, into: py.baseAddress!)
                }
            }
        }
        _ = context.release(x)
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        guard let n = savedBatch else {
            preconditionFailure("layer '\(name)': backward without a forward that kept its argmax (keepForBackward)")
        }
        precondition(dy.shape == [n] + outputShape, "layer '\(name)': dy has shape \(dy.shape), expected \([n] + outputShape)")
        var dx = context.output([n] + inputShape)
        dy.values.withUnsafeBufferPointer { pg in
            argmax.withUnsafeBufferPointer { pa in
                dx.values.withUnsafeMutableBufferPointer { pdx in
                    maxPool2DBackward(pg.baseAddress!, argmax: pa.baseAddress!, batch: n, geometry, into: pdx.baseAddress!)
                }
            }
        }
        return dx
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

/// The same, also writing argmax (N, OH, OW, C): the offset in the sample's (H, W, C)
/// input of the first maximum in row-major order (a later element wins only if larger).
func maxPool2DForward(_ x: UnsafePointer<Float>, batch: Int, _ g: PoolGeometry,
                      into y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>) {
    let c = g.c
    forEachOutputRow(batch: batch, g) { n, i in
        let image = x + n * g.h * g.w * c
        for j in 0..<g.ow {
            let at = ((n * g.oh + i) * g.ow + j) * c
            let out = y + at, arg = argmax + at
            let (rows, cols) = g.window(i, j)
            let first = (rows.lowerBound * g.w + cols.lowerBound) * c
            for ch in 0..<c { out[ch] = image[first + ch]; arg[ch] = Int32(first + ch) }
            for yy in rows {
                for xx in cols {
                    let offset = (yy * g.w + xx) * c
                    let src = image + offset
                    for ch in 0..<c where src[ch] > out[ch] {
                        out[ch] = src[ch]
                        arg[ch] = Int32(offset + ch)
                    }
                }
            }
        }
    }
}

/// dx (N, H, W, C) = Σ over the outputs that took each element of dy (N, OH, OW, C).
func maxPool2DBackward(_ dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, batch: Int, _ g: PoolGeometry,
                       into dx: UnsafeMutablePointer<Float>) {
    let c = g.c, outputs = g.oh * g.ow
    forEachSampleChannelBlock(batch: batch, channels: c) { n, channels in
        let image = dx + n * g.h * g.w * c
        for p in 0..<g.h * g.w { (image + p * c + channels.lowerBound).update(repeating: 0, count: channels.count) }
        let base = n * outputs * c
        for q in 0..<outputs {
            let at = base + q * c
            for ch in channels { image[Int(argmax[at + ch])] += dy[at + ch] }
        }
    }
}

// MARK: The Keras kind

/// Keras `MaxPooling2D`.
package struct MaxPooling2DConfig: SingleInputOp, Equatable {
    package var pool: Pool2DConfig
    package init(_ pool: Pool2DConfig = Pool2DConfig()) { self.pool = pool }

    package static var kerasClassNames: [String] { ["MaxPooling2D"] }
    package static var kerasAliases: [String] { ["MaxPool2D"] }

    package init(keras k: KerasLayerConfig) throws { self.init(try Pool2DConfig(keras: k)) }
    package func writeKeras(_ c: inout [String: Any], className: String) { pool.writeKeras(&c) }
    package func outputShape(input: [Int], layer: String) throws -> [Int] { try pool.outputShape(input: input, layer: layer) }
    package var isFeature: Bool { true }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try MaxPooling2DLayer(name: spec.name, config: pool, inputShape: inputShape)
    }
}
