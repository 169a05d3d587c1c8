// RandomContrast: the identity at inference; in training each image's channels are pulled
// towards or pushed from their own mean over the image, y = (x − mean)·f + mean, with f drawn
// from 1 − lower … 1 + upper (one number F meaning F, F: 1 − F … 1 + F, as tf-keras reads it and
// Keras documents it; Keras 3 saves the pair it runs, (0, F)), then clipped to `value_range`
// (0…255; tf-keras: always 0…255), as Keras's `_adjust_contrast` and clip. The factor comes
// from xfer's seeded generator; the change for a given factor is Keras's.
// `--augment contrast:F` runs the same function on the preprocessed pixels with 0…255 mapped
// through the preprocessing per channel, which equals Keras's change before `preprocess_input`.
//
// The Keras kind, `RandomContrastConfig` (end of file), and its engine layer (RandomImageLayer).

import Foundation

/// Adjusts the contrast of one image (h, w, c), channels last, in place: per channel
/// (x − mean)·factor + mean, clipped to the channel's range.
package func adjustContrast(_ img: UnsafeMutableBufferPointer<Float>, height h: Int, width w: Int, channels c: Int,
                           factor: Float, ranges: ChannelRanges) {
    for k in 0..<c {
        // Keras: the mean over the rows, then over the columns.
        var total = 0.0
        for j in 0..<w {
            var column = 0.0
            for i in 0..<h { column += Double(img[(i * w + j) * c + k]) }
            total += column / Double(h)
        }
        let mean = Float(total / Double(w))
        let (lo, hi) = ranges.range(k)
        for p in stride(from: k, to: h * w * c, by: c) {
            img[p] = min(max((img[p] - mean) * factor + mean, lo), hi)
        }
    }
}

/// Keras `RandomContrast(factor, value_range)`.
package struct RandomContrastConfig: SingleInputOp, ImageAugmentation, Equatable {
    /// The factor is drawn from 1 − lower … 1 + upper.
    package var lower: Float, upper: Float
    package var ranges = ChannelRanges(0, 255)
    package var seed: Int?

    package init(lower: Float, upper: Float, ranges: ChannelRanges = ChannelRanges(0, 255)) {
        self.lower = lower; self.upper = upper; self.ranges = ranges
    }

    package static var kerasClassNames: [String] { ["RandomContrast"] }

    package init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        let f = try k.factor("factor", bounds: 0...1e6, symmetric: false)
        let r = try k.valueRange()
        self.init(lower: f.lower, upper: f.upper, ranges: ChannelRanges(r.lower, r.upper))
        seed = exactInt(k["seed"])
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["factor"] = [Double(lower), Double(upper)]
        // tf-keras's RandomContrast takes no value_range (it clips to 0…255): written only when other.
        if ranges != ChannelRanges(0, 255) { c["value_range"] = [Double(ranges.lower[0]), Double(ranges.upper[0])] }
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    package func augment(_ x: inout Tensor, _ random: inout SeededRandom) {
        guard x.rank == 4 else { return }
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3], per = h * w * c
        x.values.withUnsafeMutableBufferPointer { all in
            for s in 0..<n {
                let f = random.uniform(1 - lower, 1 + upper)
                adjustContrast(UnsafeMutableBufferPointer(rebasing: all[(s * per)..<((s + 1) * per)]), height: h, width: w, channels: c,
                               factor: f, ranges: ranges)
            }
        }
    }
}
