// The image warp behind Keras's geometric augmentation layers (RandomRotation, RandomZoom,
// RandomTranslation): `keras.ops.image.affine_transform`, which on the TensorFlow backend is
// TensorFlow's ImageProjectiveTransformV3 kernel (tensorflow/core/kernels/image/image_ops.h),
// reproduced operation for operation in float32:
//
//   for each output pixel (x = column, y = row), with the 8 numbers [a0 a1 a2 b0 b1 b2 c0 c1]:
//     k = c0·x + c1·y + 1            (k = 0: the fill value)
//     x' = (a0·x + a1·y + a2) / k,  y' = (b0·x + b1·y + b2) / k     (a point of the input)
//     x', y' mapped into the image by the fill mode (reflect dcba|abcd|dcba, wrap abcd|abcd,
//     nearest: clamped, constant: as they are), then read bilinearly (or nearest, rounding
//     half away from zero); a neighbour outside the image reads the fill value.
//
// The transform maps output points to input points (its inverse moves the image), as in Keras.

import Foundation

/// Keras's `fill_mode`: how points outside the input are filled.
package enum FillMode: String, Sendable, CaseIterable {
    /// `d c b a | a b c d | d c b a` (Keras's default).
    case reflect
    /// `a b c d | a b c d | a b c d`.
    case wrap
    /// The fill value (`fill_value`, default 0).
    case constant
    /// The nearest edge pixel.
    case nearest
}

/// Keras's `interpolation` of the geometric layers.
package enum Interpolation: String, Sendable, CaseIterable {
    case bilinear, nearest
}

/// TensorFlow's `MapCoordinate` of one axis of length `len` (float32, its truncations kept).
@inline(__always)
func mapCoordinate(_ out: Float, _ len: Int, _ mode: FillMode) -> Float {
    var c = out
    switch mode {
    case .constant:
        return out
    case .nearest:
        return min(max(out, 0), Float(len - 1))
    case .reflect:
        if c < 0 {
            if len <= 1 {
                c = 0
            } else {
                let sz2 = 2 * len
                if c < Float(sz2) { c = Float(sz2) * Float(Int(-c / Float(sz2))) + c }
                c = c < Float(-len) ? c + Float(sz2) : -c - 1
            }
        } else if c > Float(len - 1) {
            if len <= 1 {
                c = 0
            } else {
                let sz2 = 2 * len
                c -= Float(sz2) * Float(Int(c / Float(sz2)))
                if c >= Float(len) { c = Float(sz2) - c - 1 }
            }
        }
    case .wrap:
        if c < 0 {
            if len <= 1 {
                c = 0
            } else {
                let sz = len - 1
                c += Float(len) * Float(Int(-c / Float(sz)) + 1)
            }
        } else if c > Float(len - 1) {
            if len <= 1 {
                c = 0
            } else {
                let sz = len - 1
                c -= Float(len) * Float(Int(c / Float(sz)))
            }
        }
    }
    return min(max(c, 0), Float(len - 1))
}

/// Warps one image `src` (h, w, c), channels last, into `dst` (the same size) by the 8-number
/// projective `transform` (`keras.ops.image.affine_transform` on the TensorFlow backend).
package func projectiveTransform(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableBufferPointer<Float>,
                                height h: Int, width w: Int, channels c: Int, transform t: [Float],
                                fill: FillMode = .reflect, fillValue: Float = 0, interpolation: Interpolation = .bilinear) {
    precondition(t.count == 8 && src.count == h * w * c && dst.count == h * w * c)
    @inline(__always) func read(_ y: Int, _ x: Int, _ k: Int) -> Float {
        (0 <= y && y < h && 0 <= x && x < w) ? src[(y * w + x) * c + k] : fillValue
    }
    for oy in 0..<h {
        for ox in 0..<w {
            let fx = Float(ox), fy = Float(oy)
            let base = (oy * w + ox) * c
            let projection = t[6] * fx + t[7] * fy + 1
            if projection == 0 {
                for k in 0..<c { dst[base + k] = fillValue }
                continue
            }
            let inX = (t[0] * fx + t[1] * fy + t[2]) / projection
            let inY = (t[3] * fx + t[4] * fy + t[5]) / projection
            let x = mapCoordinate(inX, w, fill), y = mapCoordinate(inY, h, fill)
            switch interpolation {
            case .nearest:
                let ry = Int(y.rounded(.toNearestOrAwayFromZero)), rx = Int(x.rounded(.toNearestOrAwayFromZero))
                for k in 0..<c { dst[base + k] = read(ry, rx, k) }
            case .bilinear:
                let yFloor = y.rounded(.down), xFloor = x.rounded(.down)
                let yCeil = yFloor + 1, xCeil = xFloor + 1
                let y0 = Int(yFloor), x0 = Int(xFloor), y1 = Int(yCeil), x1 = Int(xCeil)
                for k in 0..<c {
                    let top = (xCeil - x) * read(y0, x0, k) + (x - xFloor) * read(y0, x1, k)
                    let bottom = (xCeil - x) * read(y1, x0, k) + (x - xFloor) * read(y1, x1, k)
                    dst[base + k] = (yCeil - y) * top + (y - yFloor) * bottom
                }
            }
        }
    }
}

/// Warps every image of `x` (N, H, W, C) in place, image `n` by `transforms[n]`.
func projectiveTransformBatch(_ x: inout Tensor, transforms: [[Float]], fill: FillMode, fillValue: Float,
                              interpolation: Interpolation) {
    precondition(x.rank == 4 && transforms.count == x.shape[0])
    let h = x.shape[1], w = x.shape[2], c = x.shape[3], per = h * w * c
    var scratch = [Float](repeating: 0, count: per)
    x.values.withUnsafeMutableBufferPointer { all in
        for n in 0..<transforms.count {
            let img = UnsafeMutableBufferPointer(rebasing: all[(n * per)..<((n + 1) * per)])
            scratch.withUnsafeMutableBufferPointer { s in
                projectiveTransform(UnsafeBufferPointer(img), into: s, height: h, width: w, channels: c, transform: transforms[n],
                                    fill: fill, fillValue: fillValue, interpolation: interpolation)
            }
            _ = img.update(fromContentsOf: scratch)
        }
    }
}

// MARK: The random image layers

/// A random change of a batch of images (N, H, W, C): what a Keras augmentation layer does in
/// training (and what `--augment` applies). Each image draws its own parameters from `random`,
/// image after image, so a seeded generator repeats the batch exactly.
package protocol ImageAugmentation: Sendable {
    /// Transforms every image of `x` in place.
    func augment(_ x: inout Tensor, _ random: inout SeededRandom)
}

/// What every Keras random augmentation layer is as a layer kind: an image in, the same shape
/// out, random only in training, run by a `RandomImageLayer`.
extension SingleInputOp where Self: ImageAugmentation {
    package func outputShape(input: [Int], layer: String) throws -> [Int] { _ = try spatialInput(input, layer: layer); return input }
    package var isRandomInTraining: Bool { true }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        RandomImageLayer(name: spec.name, augmentation: self, inputShape: inputShape)
    }
}

/// The engine layer of a Keras random augmentation layer (RandomFlip, RandomRotation, ...): the
/// identity at inference, as Keras runs it outside `training=True`; in training each image of the
/// batch changed by the layer's `ImageAugmentation` with parameters from `random` (seeded by the
/// training network). Gradients pass only through the identity: training a layer before a random
/// one is refused when the network is built.
package final class RandomImageLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    /// The generator of the drawn parameters; the training network seeds it.
    package var random = SeededRandom(seed: 0)
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }
    let augmentation: any ImageAugmentation

    init(name: String, augmentation: any ImageAugmentation, inputShape: [Int]) {
        self.name = name; self.augmentation = augmentation; self.inputShape = inputShape
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        guard training else { return x }
        var y = x
        augmentation.augment(&y, &random)
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        precondition(!training, "layer '\(name)': no gradient through a random transform (refused when the network is built)")
        return needInputGradient ? dy : nil
    }
}

extension KerasLayerConfig {
    /// A Keras augmentation factor: one number f (`symmetric`: −f…f, else f…f as the layer reads
    /// it) or a list of two (lower, upper), each in `bounds`.
    func factor(_ key: String, bounds: ClosedRange<Double>, symmetric: Bool = true) throws -> (lower: Float, upper: Float) {
        let value = self[key]
        func number(_ v: Any?) throws -> Double {
            guard let n = v as? NSNumber, !isBoolean(n), n.doubleValue.isFinite, bounds.contains(n.doubleValue) else {
                throw fail("layer '\(name)' (\(className)): '\(key)' is \(value.map(describe) ?? "missing"); it must be a number in \(bounds.lowerBound)...\(bounds.upperBound) or a list of two",
                           hint: "the model configuration is damaged; save the model again with Keras")
            }
            return n.doubleValue
        }
        if let list = value as? [Any] {
            guard list.count == 2 else { throw fail("layer '\(name)' (\(className)): '\(key)' must be one number or two, not \(list.count)") }
            let a = try number(list[0]), b = try number(list[1])
            return (Float(min(a, b)), Float(max(a, b)))
        }
        let f = abs(try number(value))
        return symmetric ? (Float(-f), Float(f)) : (Float(f), Float(f))
    }

    /// Keras `fill_mode` (default reflect) and `interpolation` (default bilinear), `fill_value`.
    func warp() throws -> (fill: FillMode, interpolation: Interpolation, fillValue: Float) {
        let f = (self["fill_mode"] as? String ?? "reflect").lowercased()
        guard let fill = FillMode(rawValue: f) else {
            throw unsupported("fill_mode '\(f)' (xfer runs \(FillMode.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let i = (self["interpolation"] as? String ?? "bilinear").lowercased()
        guard let interpolation = Interpolation(rawValue: i) else {
            throw unsupported("interpolation '\(i)' (xfer runs bilinear, nearest)")
        }
        return (fill, interpolation, Float(try double("fill_value", default: 0)))
    }

    /// Keras `value_range` (default 0…255).
    func valueRange() throws -> (lower: Float, upper: Float) {
        guard let v = self["value_range"], !(v is NSNull) else { return (0, 255) }
        guard let l = v as? [Any], l.count == 2, let a = (l[0] as? NSNumber)?.doubleValue, let b = (l[1] as? NSNumber)?.doubleValue,
              a.isFinite, b.isFinite, a < b else {
            throw fail("layer '\(name)' (\(className)): 'value_range' is \(describe(v)); it must be two increasing numbers",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        return (Float(a), Float(b))
    }
}

/// Keras's `value_range` of each channel: the range the photometric layers clip to.
/// `--augment` maps 0…255 through the preprocessing, so a change there equals Keras's on the
/// raw pixels before `preprocess_input`.
package struct ChannelRanges: Sendable, Equatable {
    package var lower: [Float]
    package var upper: [Float]

    /// The same range for every channel (a Keras layer's `value_range`).
    package init(_ lower: Float, _ upper: Float) { self.lower = [lower]; self.upper = [upper] }

    /// 0…255 as `mode` maps it, per channel (caffe: −103.939…151.061 for blue, ...).
    package init(preprocess mode: PreprocessMode) {
        var lo: [Float] = [0, 0, 0], hi: [Float] = [255, 255, 255]
        lo.withUnsafeMutableBufferPointer { mode.apply(to: $0) }
        hi.withUnsafeMutableBufferPointer { mode.apply(to: $0) }
        lower = lo; upper = hi
    }

    @inline(__always) func range(_ channel: Int) -> (Float, Float) {
        lower.count == 1 ? (lower[0], upper[0]) : (lower[channel], upper[channel])
    }
}
