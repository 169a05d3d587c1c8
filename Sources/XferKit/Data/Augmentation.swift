// `--augment flip,rotation:0.1,zoom:0.2,...`: random changes to each training image, drawn
// anew every epoch (seeded), applied to the preprocessed batch before the network, in the order
// given. Because the input changes every epoch, nothing below the first trainable layer can be
// cached. Each name is a Keras preprocessing layer, run by that layer's own function
// (Engine/Layers/Random*.swift), with Keras's factor, fill mode (reflect) and interpolation
// (bilinear):
//
//   flip[:MODE]        RandomFlip(MODE): horizontal (default), vertical, horizontal_and_vertical
//   rotation:F         RandomRotation(F): an angle in −F…F of a full turn (F = 0.1: ±36°)
//   zoom:H[:W]         RandomZoom(H, W): zoom in/out by up to H of the height (and W of the
//                      width; without W the width zooms with the height)
//   translation:H[:W]  RandomTranslation(H, W): shift by up to H of the height, W of the width
//                      (W defaults to H)
//   contrast:F         RandomContrast(F): contrast × 1 − F…1 + F about each channel's mean
//   brightness:F       RandomBrightness(F): add up to ±F of the 0…255 range
//   crop               cut a random box of 80–100 % of each side and resize it back, bilinear
//                      (xfer's own; a random zoom, as Create ML's crop)
//
// contrast and brightness clip to 0…255 as Keras's layers do, on the raw pixels: xfer applies
// them after the preprocessing with 0…255 mapped through it per channel, which is the same change.

/// A named augmentation, as `--augment` gives it (`rotation:0.1`).
package struct Augmentation: Sendable, CustomStringConvertible {
    /// The item as written, normalised (`rotation:0.1`).
    package let name: String
    /// What it does to a batch.
    package let transform: any ImageAugmentation

    package var description: String { name }

    package init(name: String, transform: any ImageAugmentation) { self.name = name; self.transform = transform }

    /// The names `--augment` takes.
    package static let names = ["flip", "rotation", "zoom", "translation", "contrast", "brightness", "crop"]
}

/// Parses `flip,rotation:0.1,zoom:0.2:0.1`; the photometric ones clip to 0…255 as `preprocess` maps it.
package func parseAugmentations(_ text: String, preprocess: PreprocessMode = .caffe) throws -> [Augmentation] {
    try text.split(separator: ",").map { item in
        let parts = item.trimmingCharacters(in: .whitespaces).lowercased().split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        let args = Array(parts.dropFirst())
        func fail(_ why: String) -> XferError {
            XferError.usage("--augment", "'\(item)': \(why)",
                            hint: "e.g. --augment flip,rotation:0.1,zoom:0.2,translation:0.1,contrast:0.2,brightness:0.2 (names: \(Augmentation.names.joined(separator: ", ")))")
        }
        /// Factor number `i`, in `range`.
        func factor(_ i: Int, _ range: ClosedRange<Float>, _ what: String) throws -> Float {
            guard i < args.count, let f = Float(args[i]), f.isFinite else {
                throw fail(i < args.count ? "'\(args[i])' is not a number" : "needs a factor (\(what))")
            }
            guard range.contains(f) else { throw fail("the factor \(args[i]) must be in \(range.lowerBound)...\(range.upperBound) (\(what))") }
            return f
        }
        func count(_ allowed: ClosedRange<Int>) throws {
            if args.count < allowed.lowerBound { throw fail("needs a factor, e.g. \(name):0.1") }
            guard allowed.contains(args.count) else { throw fail("takes \(allowed.upperBound == 0 ? "no factor" : "\(allowed.lowerBound == allowed.upperBound ? "\(allowed.lowerBound)" : "\(allowed.lowerBound) or \(allowed.upperBound)") factor\(allowed.upperBound == 1 ? "" : "s")")") }
        }
        let transform: any ImageAugmentation
        switch name {
        case "flip":
            try count(0...1)
            let m = args.first ?? "horizontal"
            guard let mode = RandomFlipConfig.Mode(rawValue: m) else { throw fail("mode '\(m)' (horizontal, vertical, horizontal_and_vertical)") }
            transform = RandomFlipConfig(mode: mode)
        case "rotation":
            try count(1...1)
            let f = try factor(0, 0...1, "a fraction of a full turn")
            transform = RandomRotationConfig(lower: -f, upper: f)
        case "zoom":
            try count(1...2)
            // Keras: 1 − F must stay above 0.
            let h = try factor(0, 0...0.99, "a fraction of the height")
            let w = args.count > 1 ? try factor(1, 0...0.99, "a fraction of the width") : nil
            transform = RandomZoomConfig(height: (-h, h), width: w.map { (-$0, $0) })
        case "translation":
            try count(1...2)
            let h = try factor(0, 0...1, "a fraction of the height")
            let w = args.count > 1 ? try factor(1, 0...1, "a fraction of the width") : h
            transform = RandomTranslationConfig(height: (-h, h), width: (-w, w))
        case "contrast":
            try count(1...1)
            let f = try factor(0, 0...1, "the contrast changes by a factor in 1 − F…1 + F")
            transform = RandomContrastConfig(lower: f, upper: f, ranges: ChannelRanges(preprocess: preprocess))
        case "brightness":
            try count(1...1)
            let f = try factor(0, 0...1, "a fraction of the 0…255 range")
            transform = RandomBrightnessConfig(lower: -f, upper: f, ranges: ChannelRanges(preprocess: preprocess))
        case "crop":
            try count(0...0)
            transform = RandomCropResize()
        default:
            throw XferError.usage("--augment", "unknown augmentation '\(name)'", hint: "choose from " + Augmentation.names.joined(separator: ", "))
        }
        return Augmentation(name: ([name] + args).joined(separator: ":"), transform: transform)
    }
}

/// Applies `augmentations` to every sample of `x` (N, H, W, C) in place, one after the other.
package func augment(_ x: inout Tensor, _ augmentations: [Augmentation], _ random: inout SeededRandom) {
    guard x.rank == 4 else { return }
    for a in augmentations { a.transform.augment(&x, &random) }
}

/// xfer's `crop`: a random box of 80–100 % of each side, resized back bilinearly (half-pixel centres).
struct RandomCropResize: ImageAugmentation {
    func augment(_ x: inout Tensor, _ random: inout SeededRandom) {
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
        let per = h * w * c
        x.values.withUnsafeMutableBufferPointer { all in
            var scratch = [Float](repeating: 0, count: per)
            for s in 0..<n {
                let img = UnsafeMutableBufferPointer(rebasing: all[(s * per)..<((s + 1) * per)])
                let fh = random.uniform(0.8, 1), fw = random.uniform(0.8, 1)
                let ch0 = Float(h) * fh, cw0 = Float(w) * fw
                let top = random.uniform(0, Float(h) - ch0), left = random.uniform(0, Float(w) - cw0)
                for i in 0..<h {
                    let sy = min(max(top + (Float(i) + 0.5) * ch0 / Float(h) - 0.5, 0), Float(h - 1))
                    let y0 = Int(sy), y1 = min(y0 + 1, h - 1), dy = sy - Float(y0)
                    for j in 0..<w {
                        let sx = min(max(left + (Float(j) + 0.5) * cw0 / Float(w) - 0.5, 0), Float(w - 1))
                        let x0 = Int(sx), x1 = min(x0 + 1, w - 1), dx = sx - Float(x0)
                        for k in 0..<c {
                            let a = img[(y0 * w + x0) * c + k], b = img[(y0 * w + x1) * c + k]
                            let cc = img[(y1 * w + x0) * c + k], d = img[(y1 * w + x1) * c + k]
                            let top = a + (b - a) * dx, bottom = cc + (d - cc) * dx
                            scratch[(i * w + j) * c + k] = top + (bottom - top) * dy
                        }
                    }
                }
                _ = img.update(fromContentsOf: scratch)
            }
        }
    }
}
