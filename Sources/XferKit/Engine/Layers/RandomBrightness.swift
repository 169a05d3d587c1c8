// RandomBrightness: the identity at inference; in training each image gets δ·(upper − lower)
// of its `value_range` (0…255 by default) added to every value, δ drawn from the factor (one
// number f meaning −f…f), then clipped to the range, as Keras's `transform_images`. δ comes
// from xfer's seeded generator; the change for a given δ is Keras's.
// `--augment brightness:F` runs the same function on the preprocessed pixels with 0…255 mapped
// through the preprocessing per channel (its width and its clip), which equals Keras's change
// before `preprocess_input`.
//
// The Keras kind, `RandomBrightnessConfig` (end of file), and its engine layer (RandomImageLayer).

import Foundation

/// Brightens (δ > 0) or darkens one image (h, w, c), channels last, in place: each value plus
/// δ·(its channel's range width), clipped to the range.
package func adjustBrightness(_ img: UnsafeMutableBufferPointer<Float>, channels c: Int, delta: Float, ranges: ChannelRanges) {
    let shift = (0..<c).map { k -> Float in let (lo, hi) = ranges.range(k); return delta * (hi - lo) }
    for p in 0..<img.count {
        let k = p % c
        let (lo, hi) = ranges.range(k)
        img[p] = min(max(img[p] + shift[k], lo), hi)
    }
}

/// Keras `RandomBrightness(factor, value_range)`.
package struct RandomBrightnessConfig: SingleInputOp, ImageAugmentation, Equatable {
    package var lower: Float, upper: Float
    package var ranges = ChannelRanges(0, 255)
    package var seed: Int?

    package init(lower: Float, upper: Float, ranges: ChannelRanges = ChannelRanges(0, 255)) {
        self.lower = lower; self.upper = upper; self.ranges = ranges
    }

    package static var kerasClassNames: [String] { ["RandomBrightness"] }

    package init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        let f = try k.factor("factor", bounds: -1...1)
        let r = try k.valueRange()
        self.init(lower: f.lower, upper: f.upper, ranges: ChannelRanges(r.lower, r.upper))
        seed = exactInt(k["seed"])
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["factor"] = [Double(lower), Double(upper)]
        c["value_range"] = [Double(ranges.lower[0]), Double(ranges.upper[0])]
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    package func augment(_ x: inout Tensor, _ random: inout SeededRandom) {
        guard x.rank == 4 else { return }
        let n = x.shape[0], per = x.count / max(n, 1), c = x.shape[3]
        x.values.withUnsafeMutableBufferPointer { all in
            for s in 0..<n {
                let delta = random.uniform(lower, upper)
                adjustBrightness(UnsafeMutableBufferPointer(rebasing: all[(s * per)..<((s + 1) * per)]), channels: c,
                                 delta: delta, ranges: ranges)
            }
        }
    }
}
