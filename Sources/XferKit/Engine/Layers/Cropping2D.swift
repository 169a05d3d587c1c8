// Cropping2D: (N, H, W, C) → (N, H−top−bottom, W−left−right, C), the border dropped.
// Backward: dx is dy in the kept window, zeros on the border.
//
// The Keras kind, `Cropping2DConfig` (end of file).

/// A Keras `Cropping2D` layer.
final class Cropping2DLayer: TrainableLayer {
    var training = false
    var trainable = false
    let name: String
    let inputShape: [Int]
    let outputShape: [Int]
    let crop: Cropping2DConfig

    init(name: String, config: Cropping2DConfig, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: name, kind: "Cropping2D")
        self.name = name; self.inputShape = inputShape; crop = config
        outputShape = try config.outputShape(input: inputShape, layer: name)
    }

    /// Copies rows between the cropped (N, OH, OW, C) and the full (N, H, W, C) layout.
    private func copyRows(batch n: Int, _ body: (_ full: Int, _ cropped: Int, _ count: Int) -> Void) {
        let w = inputShape[1], c = inputShape[2], oh = outputShape[0], ow = outputShape[1]
        for b in 0..<n {
            for i in 0..<oh {
                body(((b * inputShape[0] + i + crop.top) * w + crop.left) * c, (b * oh + i) * ow * c, ow * c)
            }
        }
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                copyRows(batch: n) { full, cropped, count in
                    (py.baseAddress! + cropped).update(from: px.baseAddress! + full, count: count)
                }
            }
        }
        _ = context.release(x)
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        let n = dy.shape[0]
        var dx = Tensor(shape: [n] + inputShape, repeating: 0)
        dy.values.withUnsafeBufferPointer { pdy in
            dx.values.withUnsafeMutableBufferPointer { pdx in
                copyRows(batch: n) { full, cropped, count in
                    (pdx.baseAddress! + full).update(from: pdy.baseAddress! + cropped, count: count)
                }
            }
        }
        return dx
    }
}

// MARK: The Keras kind

/// Keras `Cropping2D`: one size, (rows, columns), or ((top, bottom), (left, right)).
struct Cropping2DConfig: SingleInputOp, Equatable {
    var top: Int, bottom: Int, left: Int, right: Int

    init(top: Int, bottom: Int, left: Int, right: Int) {
        self.top = top; self.bottom = bottom; self.left = left; self.right = right
    }

    static var kerasClassNames: [String] { ["Cropping2D"] }

    init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        let b = try k.border("cropping", default: [[0, 0], [0, 0]])
        self.init(top: b.top, bottom: b.bottom, left: b.left, right: b.right)
    }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["cropping"] = [[top, bottom], [left, right]]
        c["data_format"] = "channels_last"
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (h, w, ch) = try spatialInput(input, layer: layer)
        guard top + bottom < h, left + right < w else {
            throw XferError.badInput(layer, "cropping (\(top), \(bottom)), (\(left), \(right)) leaves nothing of \(shapeText(input))",
                                     hint: "check --input-shape")
        }
        return [h - top - bottom, w - left - right, ch]
    }

    var finishesBlock: Bool { true }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try Cropping2DLayer(name: spec.name, config: self, inputShape: inputShape)
    }
}
