// RandomTranslation: the identity at inference; in training each image is shifted by dy rows
// and dx columns, dy drawn from height_factor·H and dx from width_factor·W (one number f
// meaning −f…f; fractions of the image's height and width), the output sampling the input at
// (x − dx, y − dy) as Keras's `_get_translation_matrix`; warped by `affine_transform`
// (TensorFlow's kernel, Engine/ImageTransform.swift) with the layer's fill mode (reflect) and
// interpolation (bilinear). The shifts come from xfer's seeded generator; the warp for given
// shifts is Keras's. `--augment translation:H[:W]` runs the same function.
//
// The Keras kind, `RandomTranslationConfig` (end of file), and its engine layer (RandomImageLayer).

import Foundation

/// Keras's translation matrix for a shift of `dx` columns and `dy` rows (pixels).
package func translationTransform(dx: Float, dy: Float) -> [Float] {
    [1, 0, -dx, 0, 1, -dy, 0, 0]
}

/// Keras `RandomTranslation(height_factor, width_factor, fill_mode, interpolation, fill_value)`.
package struct RandomTranslationConfig: SingleInputOp, ImageAugmentation, Equatable {
    package var height: (lower: Float, upper: Float)
    package var width: (lower: Float, upper: Float)
    package var fill: FillMode = .reflect
    package var interpolation: Interpolation = .bilinear
    package var fillValue: Float = 0
    package var seed: Int?

    package init(height: (lower: Float, upper: Float), width: (lower: Float, upper: Float)) {
        self.height = height; self.width = width
    }

    package static func == (a: Self, b: Self) -> Bool {
        a.height == b.height && a.width == b.width && a.fill == b.fill && a.interpolation == b.interpolation
            && a.fillValue == b.fillValue && a.seed == b.seed
    }

    package static var kerasClassNames: [String] { ["RandomTranslation"] }

    package init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        self.init(height: try k.factor("height_factor", bounds: -1...1), width: try k.factor("width_factor", bounds: -1...1))
        (fill, interpolation, fillValue) = try k.warp()
        seed = exactInt(k["seed"])
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["height_factor"] = [Double(height.lower), Double(height.upper)]
        c["width_factor"] = [Double(width.lower), Double(width.upper)]
        c["fill_mode"] = fill.rawValue
        c["interpolation"] = interpolation.rawValue
        c["fill_value"] = Double(fillValue)
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    package func augment(_ x: inout Tensor, _ random: inout SeededRandom) {
        guard x.rank == 4 else { return }
        let h = Float(x.shape[1]), w = Float(x.shape[2])
        let transforms = (0..<x.shape[0]).map { _ -> [Float] in
            let dy = random.uniform(height.lower, height.upper) * h
            let dx = random.uniform(width.lower, width.upper) * w
            return translationTransform(dx: dx, dy: dy)
        }
        projectiveTransformBatch(&x, transforms: transforms, fill: fill, fillValue: fillValue, interpolation: interpolation)
    }
}
