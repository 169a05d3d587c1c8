// `--augment flip,crop`: random changes to each training image, drawn anew every
// epoch (seeded), applied to the preprocessed batch before the network. Because the
// input changes every epoch, nothing below the first trainable layer can be cached.
//
//   flip   mirror left–right with probability 1/2 (Keras RandomFlip("horizontal"))
//   crop   cut a random box of 80–100 % of each side and resize it back, bilinear
//          (a random zoom, as Create ML's crop)

/// A named augmentation.
package enum Augmentation: String, Sendable, CaseIterable {
    case flip, crop
}

/// Parses `flip,crop`.
package func parseAugmentations(_ text: String) throws -> [Augmentation] {
    try text.split(separator: ",").map { item in
        let name = item.trimmingCharacters(in: .whitespaces).lowercased()
        guard let a = Augmentation(rawValue: name) else {
            throw XferError.usage("--augment", "unknown augmentation '\(name)'",
                                  hint: "choose from " + Augmentation.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return a
    }
}

/// Applies `augmentations` to every sample of `x` (N, H, W, C) in place.
package func augment(_ x: inout Tensor, _ augmentations: [Augmentation], _ random: inout SeededRandom) {
    guard x.rank == 4 else { return }
    let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    let per = h * w * c
    x.values.withUnsafeMutableBufferPointer { all in
        var scratch = [Float](repeating: 0, count: per)
        for s in 0..<n {
            let img = UnsafeMutableBufferPointer(rebasing: all[(s * per)..<((s + 1) * per)])
            for a in augmentations {
                switch a {
                case .flip:
                    guard random.next() & 1 == 1 else { continue }
                    for i in 0..<h {
                        for j in 0..<(w / 2) {
                            for ch in 0..<c {
                                img.swapAt((i * w + j) * c + ch, (i * w + (w - 1 - j)) * c + ch)
                            }
                        }
                    }
                case .crop:
                    let fh = random.uniform(0.8, 1), fw = random.uniform(0.8, 1)
                    let ch0 = Float(h) * fh, cw0 = Float(w) * fw
                    let top = random.uniform(0, Float(h) - ch0), left = random.uniform(0, Float(w) - cw0)
                    // Bilinear, half-pixel centres, from the box back to h×w.
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
}
