// RandomCrop(height, width): the two Kerases give the layer different meanings, and xfer runs
// the one of the Keras that wrote the file (`KerasLayerConfig.keras3`):
//
//   tf-keras   the output is always (height, width, C). Training, with the input at least the
//              crop in both sides: one random window of the crop's size, the same for the whole
//              batch (as Keras cuts it). Otherwise (inference, or a smaller input):
//              `smart_resize` — the largest centred box of the crop's aspect ratio, resized to
//              (height, width) bilinearly as tf.image.resize (half-pixel centres, no
//              antialiasing; Data/ImageResize.swift's taps). Input = crop: the identity.
//   Keras 3    at inference the images pass UNCHANGED (uncropped), although Keras's
//              compute_output_shape says (height, width): the layers after it see the input
//              size. Training crops to (height, width): with the input larger than the crop
//              both ways, one random window for the batch; else the corner of the centred box
//              of the crop's aspect ratio, a slice of at most the crop's size from there, resized
//              to it when smaller (Keras 3's `transform_images`). xfer's networks have one static
//              shape per layer, so a Keras 3 RandomCrop whose input differs from its crop runs at
//              the input size in predict and evaluate, and `finetune` trains a copy of the
//              network built at the crop's size (`trainsAtCropSize`, `keras3CropTrainingModel`)
//              while validating, as Keras does, on one at the input size (FineTuner); a network
//              built for training from the model as it is refuses it (TrainingNetwork, Trainer).
//              Input = crop is the identity in both modes.
//
// The window's offsets come from xfer's seeded generator (Keras's random stream cannot be
// reproduced); the cut itself is exact. Backward, side by side with each forward: the window's
// dy is scattered into zeros; the resize's is its transpose (each dy shared out to the four
// source pixels by the same weights). One plain kernel each, no fast path; RandomCropTests checks
// them against Keras, the resize against a naive oracle and each backward as its forward's transpose.
//
// Written back, the layer keeps its Keras's meaning only in that Keras's format: a tf-keras crop
// whose input differs from the crop resizes at inference, which a .keras file (Keras 3) would
// not; a Keras 3 one predicts uncropped, which a full-model .h5 (tf-keras) would not. Those two
// writes are refused (`checkCropSemantics`) before anything is written (and before `finetune`
// trains); weights-only files, ONNX and writes in the model's own Keras go ahead.
//
// The Keras kind, `RandomCropConfig` (end of file).

import Foundation

/// A box of an image: its top-left corner and its size.
struct CropBox: Equatable {
    var top: Int, left: Int, height: Int, width: Int
}

/// The centred box of the aspect ratio `height`:`width` that smart_resize (tf-keras) and Keras 3's
/// RandomCrop take from an image of `inH` × `inW`: float32 products truncated as Keras casts them.
func aspectBox(inH: Int, inW: Int, height: Int, width: Int) -> CropBox {
    let ch = max(min(inH, Int(Float(inW * height) / Float(width))), 1)
    let cw = max(min(inW, Int(Float(inH * width) / Float(height))), 1)
    return CropBox(top: Int(Float(inH - ch) / 2), left: Int(Float(inW - cw) / 2), height: ch, width: cw)
}

/// Copies `box` of each image of `x` (N, H, W, C) into `y` (N, box.height, box.width, C).
func cropWindow(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>, batch n: Int,
                height h: Int, width w: Int, channels c: Int, box: CropBox) {
    let row = box.width * c
    for s in 0..<n {
        for i in 0..<box.height {
            let from = ((s * h + box.top + i) * w + box.left) * c, to = (s * box.height + i) * row
            (y.baseAddress! + to).update(from: x.baseAddress! + from, count: row)
        }
    }
}

/// Backward of `cropWindow`: dy (N, box…) into `dx` (N, H, W, C), which must be zero outside the box.
func cropWindowBackward(_ dy: UnsafeBufferPointer<Float>, into dx: UnsafeMutableBufferPointer<Float>, batch n: Int,
                        height h: Int, width w: Int, channels c: Int, box: CropBox) {
    let row = box.width * c
    for s in 0..<n {
        for i in 0..<box.height {
            let to = ((s * h + box.top + i) * w + box.left) * c, from = (s * box.height + i) * row
            (dx.baseAddress! + to).update(from: dy.baseAddress! + from, count: row)
        }
    }
}

/// `box` of each image of `x` (N, H, W, C) resized to `outH` × `outW` into `y`, as TensorFlow's
/// ResizeBilinear with half-pixel centres on the sliced box (the same float32 operations).
func resizeBox(_ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>, batch n: Int,
               height h: Int, width w: Int, channels c: Int, box: CropBox, outH: Int, outW: Int) {
    let ys = halfPixelTaps(inSize: box.height, outSize: outH), xs = halfPixelTaps(inSize: box.width, outSize: outW)
    for s in 0..<n {
        let image = x.baseAddress! + s * h * w * c, out = y.baseAddress! + s * outH * outW * c
        for oy in 0..<outH {
            let top = image + ((box.top + ys[oy].lower) * w + box.left) * c
            let bottom = image + ((box.top + ys[oy].upper) * w + box.left) * c
            let wy = ys[oy].lerp
            for ox in 0..<outW {
                let l = xs[ox].lower * c, r = xs[ox].upper * c, wx = xs[ox].lerp
                for k in 0..<c {
                    let upper = top[l + k] + (top[r + k] - top[l + k]) * wx
                    let lower = bottom[l + k] + (bottom[r + k] - bottom[l + k]) * wx
                    out[(oy * outW + ox) * c + k] = upper + (lower - upper) * wy
                }
            }
        }
    }
}

/// Backward of `resizeBox` (its transpose): each dy goes to the four pixels it was read from, by
/// the same weights, added into `dx` (N, H, W, C), which must start at zero.
func resizeBoxBackward(_ dy: UnsafeBufferPointer<Float>, into dx: UnsafeMutableBufferPointer<Float>, batch n: Int,
                       height h: Int, width w: Int, channels c: Int, box: CropBox, outH: Int, outW: Int) {
    let ys = halfPixelTaps(inSize: box.height, outSize: outH), xs = halfPixelTaps(inSize: box.width, outSize: outW)
    for s in 0..<n {
        let image = dx.baseAddress! + s * h * w * c, g = dy.baseAddress! + s * outH * outW * c
        for oy in 0..<outH {
            let top = image + ((box.top + ys[oy].lower) * w + box.left) * c
            let bottom = image + ((box.top + ys[oy].upper) * w + box.left) * c
            let wy = ys[oy].lerp
            for ox in 0..<outW {
                let l = xs[ox].lower * c, r = xs[ox].upper * c, wx = xs[ox].lerp
                for k in 0..<c {
                    let d = g[(oy * outW + ox) * c + k]
                    let upper = d * (1 - wy), lower = d * wy
                    top[l + k] += upper * (1 - wx); top[r + k] += upper * wx
                    bottom[l + k] += lower * (1 - wx); bottom[r + k] += lower * wx
                }
            }
        }
    }
}

/// The engine layer of a Keras `RandomCrop` (the contract above).
final class RandomCropLayer: TrainableLayer {
    var training = false
    var trainable = false
    /// The generator of the window's offsets; the training network seeds it.
    var random = SeededRandom(seed: 0)
    let name: String
    let inputShape: [Int]
    let outputShape: [Int]
    let config: RandomCropConfig
    /// What the last forward did, for backward: nil the identity, else the box and whether it
    /// was resized to the output.
    private var last: (box: CropBox, resized: Bool)?

    init(name: String, config: RandomCropConfig, inputShape: [Int]) throws {
        self.name = name; self.config = config; self.inputShape = inputShape
        outputShape = try config.outputShape(input: inputShape, layer: name)
    }

    /// Why this layer cannot run in training mode (nil: it can): a Keras 3 crop whose input
    /// differs, which Keras trains at the crop size but predicts at the input size.
    var trainingRefusal: String? {
        guard config.keras3, !config.trainsAtCropSize, inputShape[0] != config.height || inputShape[1] != config.width else { return nil }
        return "Keras 3 trains this model with the images cropped to \(config.height)x\(config.width) but predicts them uncropped (\(inputShape[0])x\(inputShape[1])); one network cannot do both (`xfer finetune` and KerasModel.fit train it with two)"
    }

    /// What the next forward does: nil the identity, else the box of the input and whether it is
    /// resized (a window of the output's size is copied).
    private func plan() -> (box: CropBox, resized: Bool)? {
        let (h, w) = (inputShape[0], inputShape[1])
        if (config.keras3 && !config.trainsAtCropSize) || (h == config.height && w == config.width) { return nil }
        if config.keras3 {
            // Keras 3's training crop (the header); outside training too, in a network of this shape.
            if training && h > config.height && w > config.width {
                let top = Int(random.next() % UInt64(h - config.height + 1)), left = Int(random.next() % UInt64(w - config.width + 1))
                return (CropBox(top: top, left: left, height: config.height, width: config.width), false)
            }
            let corner = aspectBox(inH: h, inW: w, height: config.height, width: config.width)
            let box = CropBox(top: corner.top, left: corner.left, height: min(config.height, h - corner.top),
                              width: min(config.width, w - corner.left))
            return (box, box.height != config.height || box.width != config.width)
        }
        if training && h >= config.height && w >= config.width {
            // One window for the batch, as Keras cuts it: offsets uniform in 0...h−height, 0...w−width.
            let top = Int(random.next() % UInt64(h - config.height + 1)), left = Int(random.next() % UInt64(w - config.width + 1))
            return (CropBox(top: top, left: left, height: config.height, width: config.width), false)
        }
        return (aspectBox(inH: h, inW: w, height: config.height, width: config.width), true)
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        precondition(!training || trainingRefusal == nil, "layer '\(name)': refused when the network is built")
        last = plan()
        guard let (box, resized) = last else { return x }
        let n = x.shape[0], (h, w, c) = (inputShape[0], inputShape[1], inputShape[2])
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                if resized {
                    resizeBox(px, into: py, batch: n, height: h, width: w, channels: c, box: box, outH: outputShape[0], outW: outputShape[1])
                } else {
                    cropWindow(px, into: py, batch: n, height: h, width: w, channels: c, box: box)
                }
            }
        }
        _ = context.release(x)
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        guard let (box, resized) = last else { return dy }
        let n = dy.shape[0], (h, w, c) = (inputShape[0], inputShape[1], inputShape[2])
        var dx = Tensor(shape: [n] + inputShape, repeating: 0)
        dy.values.withUnsafeBufferPointer { pdy in
            dx.values.withUnsafeMutableBufferPointer { pdx in
                if resized {
                    resizeBoxBackward(pdy, into: pdx, batch: n, height: h, width: w, channels: c, box: box,
                                      outH: outputShape[0], outW: outputShape[1])
                } else {
                    cropWindowBackward(pdy, into: pdx, batch: n, height: h, width: w, channels: c, box: box)
                }
            }
        }
        return dx
    }
}

// MARK: The Keras kind

/// Keras `RandomCrop(height, width, seed)`, channels last; `keras3`: written by Keras 3, whose
/// inference passes the images uncropped.
struct RandomCropConfig: SingleInputOp, Equatable {
    var height: Int
    var width: Int
    var seed: Int?
    var keras3: Bool
    /// Keras 3's crop in the network `finetune` trains: output the crop's size, as Keras 3 trains
    /// (never read from or written to a file).
    var trainsAtCropSize = false

    init(height: Int, width: Int, seed: Int? = nil, keras3: Bool) {
        self.height = height; self.width = width; self.seed = seed; self.keras3 = keras3
    }

    static var kerasClassNames: [String] { ["RandomCrop"] }

    init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        self.init(height: try k.int("height"), width: try k.int("width"), seed: exactInt(k["seed"]), keras3: k.keras3)
    }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["height"] = height
        c["width"] = width
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    /// tf-keras: (height, width, C). Keras 3: the input's shape, as it predicts (the same when
    /// the input is the crop's size).
    func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (_, _, c) = try spatialInput(input, layer: layer)
        return keras3 && !trainsAtCropSize ? input : [height, width, c]
    }

    /// As the other augmentation layers: random in training, so nothing after it is cached.
    var isRandomInTraining: Bool { true }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try RandomCropLayer(name: spec.name, config: self, inputShape: inputShape)
    }
}

/// `model` with every Keras 3 RandomCrop at the crop's size (`trainsAtCropSize`), the network
/// Keras 3 trains; nil when none of them has an input of another size (one network does both).
func keras3CropTrainingModel(_ model: ModelSpec) throws -> ModelSpec? {
    let differs = try ModelGraph(model).nodes.contains { node in
        guard let c = node.layer.op as? RandomCropConfig, c.keras3 else { return false }
        return node.inputShapes[0][0] != c.height || node.inputShapes[0][1] != c.width
    }
    guard differs else { return nil }
    func marked(_ m: ModelSpec) -> ModelSpec {
        var m = m
        m.layers = m.layers.map { layer in
            var layer = layer
            switch layer.kind {
            case .op(var c as RandomCropConfig) where c.keras3:
                c.trainsAtCropSize = true
                layer.kind = .op(c)
            case .model(let inner):
                layer.kind = .model(marked(inner))
            default:
                break
            }
            return layer
        }
        return m
    }
    return marked(model)
}

/// Refuses writing `model` as a full model for the other Keras when a RandomCrop of it means
/// something else there (see the file header): `keras3` is the format's Keras.
func checkCropSemantics(_ model: ModelSpec, writingKeras3 keras3: Bool, path: String) throws {
    for node in try ModelGraph(model).nodes {
        guard let c = node.layer.op as? RandomCropConfig, c.keras3 != keras3 else { continue }
        let (h, w) = (node.inputShapes[0][0], node.inputShapes[0][1])
        guard h != c.height || w != c.width else { continue }
        let meaning = c.keras3 ? "Keras 3 wrote it and predicts with the \(h)x\(w) image uncropped; tf-keras would resize it to \(c.height)x\(c.width)"
            : "tf-keras wrote it and resizes the \(h)x\(w) image to \(c.height)x\(c.width) at inference; Keras 3 would predict with it uncropped"
        throw XferError.badInput(path, "layer '\(node.path)' (RandomCrop): \(meaning), so this file would predict differently",
                                 hint: c.keras3 ? "write a .keras or .weights.h5 file (Keras 3), or .onnx" : "write a .h5 file (tf-keras), .weights.h5 or .onnx")
    }
}

/// Runs `body` (reading the weights of `model`); when it fails and a Keras 3 RandomCrop of
/// `model` passes its images on uncropped, the hint says why the shapes after it differ from the
/// ones Keras saved (built at the crop's size): Keras 3's own predict fails on this model too.
func explainingUncroppedCrop<T>(_ model: ModelSpec, _ body: () throws -> T) throws -> T {
    do { return try body() } catch var e as XferError {
        guard let (layer, crop) = model.flattenedLayers().lazy.compactMap({ l in (l.layer.op as? RandomCropConfig).map { (l.layer.name, $0) } })
            .first(where: { $0.1.keras3 }) else { throw e }
        e.hint = "Keras 3's RandomCrop '\(layer)' predicts with the image uncropped, not \(crop.height)x\(crop.width), so the layers after it see another size than Keras built them for (Keras 3's predict fails on this model too); save the model with an Input of the crop's size"
        throw e
    }
}
