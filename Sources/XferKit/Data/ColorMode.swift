// `--color-mode rgb|grayscale|rgba`: Keras's `color_mode` of `image_dataset_from_directory`,
// how many channels an image is decoded to. Decoding follows `tf.io.decode_image(channels=...)`
// (JPEGDecoder, PNGDecoder): grayscale is libjpeg's luma plane for a JPEG and libpng's Rec. 601
// conversion for a PNG; rgba keeps a PNG's alpha (tRNS made alpha, 255 where the file has none)
// and gives a JPEG, which TensorFlow refuses to decode to 4 channels, an opaque alpha of 255 as
// Keras's `load_img(color_mode="rgba")` does.

/// How many channels images are decoded to (Keras's `color_mode`).
package enum ColorMode: String, CaseIterable, Sendable {
    case rgb, grayscale, rgba

    /// Samples per pixel.
    package var channels: Int {
        switch self {
        case .rgb: return 3
        case .grayscale: return 1
        case .rgba: return 4
        }
    }

    /// The mode that gives `channels` channels (a model's input), nil for any other count.
    package init?(channels: Int) {
        guard let mode = Self.allCases.first(where: { $0.channels == channels }) else { return nil }
        self = mode
    }
}
