// RandomFlip: the identity at inference; in training each image is mirrored with probability
// 1/2 — left–right (`horizontal`), top–bottom (`vertical`), or both at once
// (`horizontal_and_vertical`: one draw flips both axes, as Keras 3 does it). The draws come
// from xfer's seeded generator (Keras's random stream cannot be reproduced); the flip itself is
// exact. `--augment flip[:MODE]` runs the same function.
//
// The Keras kind, `RandomFlipConfig` (end of file), and its engine layer (RandomImageLayer,
// Engine/ImageTransform.swift).

import Foundation

/// Mirrors one image (h, w, c), channels last, in place.
package func flipImage(_ img: UnsafeMutableBufferPointer<Float>, height h: Int, width w: Int, channels c: Int,
                      horizontal: Bool, vertical: Bool) {
    if horizontal {
        for i in 0..<h {
            for j in 0..<(w / 2) {
                for k in 0..<c { img.swapAt((i * w + j) * c + k, (i * w + (w - 1 - j)) * c + k) }
            }
        }
    }
    if vertical {
        for i in 0..<(h / 2) {
            for j in 0..<(w * c) { img.swapAt(i * w * c + j, (h - 1 - i) * w * c + j) }
        }
    }
}

/// Keras `RandomFlip(mode)`.
package struct RandomFlipConfig: SingleInputOp, ImageAugmentation, Equatable {
    package enum Mode: String, Sendable, CaseIterable {
        case horizontal, vertical
        case horizontalAndVertical = "horizontal_and_vertical"
    }
    package var mode: Mode
    package var seed: Int?
    package init(mode: Mode = .horizontalAndVertical, seed: Int? = nil) { self.mode = mode; self.seed = seed }

    package static var kerasClassNames: [String] { ["RandomFlip"] }

    package init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        let m = k["mode"] as? String ?? Mode.horizontalAndVertical.rawValue
        guard let mode = Mode(rawValue: m) else { throw k.unsupported("mode '\(m)' (horizontal, vertical, horizontal_and_vertical)") }
        self.init(mode: mode, seed: exactInt(k["seed"]))
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["mode"] = mode.rawValue
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    package func augment(_ x: inout Tensor, _ random: inout SeededRandom) {
        guard x.rank == 4 else { return }
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3], per = h * w * c
        x.values.withUnsafeMutableBufferPointer { all in
            for s in 0..<n where random.next() & 1 == 1 {
                flipImage(UnsafeMutableBufferPointer(rebasing: all[(s * per)..<((s + 1) * per)]), height: h, width: w, channels: c,
                          horizontal: mode != .vertical, vertical: mode != .horizontal)
            }
        }
    }
}
