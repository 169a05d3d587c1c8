// RandomRotation: the identity at inference; in training each image is rotated about its
// centre by an angle drawn uniformly from factor·360° (factor a fraction of a full turn, one
// number f meaning −f…f), warped as Keras warps it: Keras 3's `_compute_affine_matrix` with
// centre ((W−1)/2, (H−1)/2), then `affine_transform` (TensorFlow's projective kernel,
// Engine/ImageTransform.swift) with the layer's fill mode (reflect by default), fill value and
// interpolation (bilinear by default). The angle comes from xfer's seeded generator; the warp
// for a given angle is Keras's (tested against Keras for fixed angles).
// `--augment rotation:F` runs the same function.
//
// The Keras kind, `RandomRotationConfig` (end of file), and its engine layer (RandomImageLayer).

import Foundation

/// Keras 3's rotation matrix for `degrees` about the centre of an image of `height`×`width`
/// (`_compute_affine_matrix` with no translation, scale 1, no shear), in float32 as it computes it.
package func rotationTransform(degrees: Float, height: Int, width: Int) -> [Float] {
    let angle = degrees * Float(Double.pi / 180)
    let cx = 0.5 * (Float(width) - 1), cy = 0.5 * (Float(height) - 1)
    let cosT = cosf(angle), sinT = sinf(angle)
    let a0 = cosT, a1 = -sinT
    let a2 = 0 + cx - cx * a0 - cy * a1
    let b0 = sinT, b1 = cosT
    let b2 = 0 + cy - cx * b0 - cy * b1
    return [a0, a1, a2, b0, b1, b2, 0, 0]
}

/// Keras `RandomRotation(factor, fill_mode, interpolation, fill_value)`.
package struct RandomRotationConfig: SingleInputOp, ImageAugmentation, Equatable {
    /// Fractions of a full turn (lower ≤ upper).
    package var lower: Float, upper: Float
    package var fill: FillMode = .reflect
    package var interpolation: Interpolation = .bilinear
    package var fillValue: Float = 0
    package var seed: Int?

    package init(lower: Float, upper: Float) { self.lower = lower; self.upper = upper }

    package static var kerasClassNames: [String] { ["RandomRotation"] }

    package init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        let f = try k.factor("factor", bounds: -1e6...1e6)
        self.init(lower: f.lower, upper: f.upper)
        (fill, interpolation, fillValue) = try k.warp()
        seed = exactInt(k["seed"])
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["factor"] = [Double(lower), Double(upper)]
        c["fill_mode"] = fill.rawValue
        c["interpolation"] = interpolation.rawValue
        c["fill_value"] = Double(fillValue)
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    package func augment(_ x: inout Tensor, _ random: inout SeededRandom) {
        guard x.rank == 4 else { return }
        let h = x.shape[1], w = x.shape[2]
        let transforms = (0..<x.shape[0]).map { _ in
            rotationTransform(degrees: random.uniform(lower * 360, upper * 360), height: h, width: w)
        }
        projectiveTransformBatch(&x, transforms: transforms, fill: fill, fillValue: fillValue, interpolation: interpolation)
    }
}
