// RandomZoom: the identity at inference; in training each image is scaled about its centre:
// the output samples the input at z·x + (W−1)/2·(1 − z) (and likewise down the rows), with z
// drawn from 1 + height_factor (one number f meaning −f…f: z > 1 zooms out, z < 1 zooms in),
// the width drawn from 1 + width_factor or, without one, the height's own z (aspect kept), as
// Keras's `_get_zoom_matrix`; warped by `affine_transform` (TensorFlow's kernel,
// Engine/ImageTransform.swift) with the layer's fill mode (reflect) and interpolation
// (bilinear). The zooms come from xfer's seeded generator; the warp for given zooms is Keras's.
// `--augment zoom:H[:W]` runs the same function.
//
// The Keras kind, `RandomZoomConfig` (end of file), and its engine layer (RandomImageLayer).

import Foundation

/// Keras's zoom matrix: `zx`, `zy` the zoom factors (1 = unchanged).
package func zoomTransform(heightZoom zy: Float, widthZoom zx: Float, height: Int, width: Int) -> [Float] {
    let xOffset = ((Float(width) - 1) / 2) * (1 - zx)
    let yOffset = ((Float(height) - 1) / 2) * (1 - zy)
    return [zx, 0, xOffset, 0, zy, yOffset, 0, 0]
}

/// Keras `RandomZoom(height_factor, width_factor, fill_mode, interpolation, fill_value)`.
package struct RandomZoomConfig: SingleInputOp, ImageAugmentation, Equatable {
    package var height: (lower: Float, upper: Float)
    /// nil: the width zooms with the height (Keras's `width_factor=None`).
    package var width: (lower: Float, upper: Float)?
    package var fill: FillMode = .reflect
    package var interpolation: Interpolation = .bilinear
    package var fillValue: Float = 0
    package var seed: Int?

    package init(height: (lower: Float, upper: Float), width: (lower: Float, upper: Float)? = nil) {
        self.height = height; self.width = width
    }

    package static func == (a: Self, b: Self) -> Bool {
        a.height == b.height && a.width?.lower == b.width?.lower && a.width?.upper == b.width?.upper && a.fill == b.fill
            && a.interpolation == b.interpolation && a.fillValue == b.fillValue && a.seed == b.seed
    }

    package static var kerasClassNames: [String] { ["RandomZoom"] }

    package init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        // Keras: each bound in (−1, 1].
        let h = try k.factor("height_factor", bounds: -1...1)
        let w = k["width_factor"] == nil || k["width_factor"] is NSNull ? nil : try k.factor("width_factor", bounds: -1...1)
        self.init(height: h, width: w)
        (fill, interpolation, fillValue) = try k.warp()
        seed = exactInt(k["seed"])
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["height_factor"] = [Double(height.lower), Double(height.upper)]
        c["width_factor"] = width.map { [Double($0.lower), Double($0.upper)] as Any } ?? NSNull()
        c["fill_mode"] = fill.rawValue
        c["interpolation"] = interpolation.rawValue
        c["fill_value"] = Double(fillValue)
        c["seed"] = seed.map { $0 as Any } ?? NSNull()
    }

    package func augment(_ x: inout Tensor, _ random: inout SeededRandom) {
        guard x.rank == 4 else { return }
        let h = x.shape[1], w = x.shape[2]
        let transforms = (0..<x.shape[0]).map { _ -> [Float] in
            let zy = random.uniform(1 + height.lower, 1 + height.upper)
            let zx = width.map { random.uniform(1 + $0.lower, 1 + $0.upper) } ?? zy
            return zoomTransform(heightZoom: zy, widthZoom: zx, height: h, width: w)
        }
        projectiveTransformBatch(&x, transforms: transforms, fill: fill, fillValue: fillValue, interpolation: interpolation)
    }
}
