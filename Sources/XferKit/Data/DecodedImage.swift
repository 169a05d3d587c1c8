// Reading one image file the way Keras's `image_dataset_from_directory` does: the format is
// told by the file's first bytes, not its name (tf.io.decode_image's ClassifyFileFormat), and
// the result is always 8-bit RGB. JPEG and PNG are decoded (JPEGDecoder, PNGDecoder); the
// other formats TensorFlow knows (GIF, BMP, WebP, JPEG XL) are reported as unsupported.

import Foundation

/// An 8-bit RGB image as decoded from a JPEG or PNG file (or grey or RGBA, by the color mode).
package struct DecodedImage: Sendable, Equatable {
    package var height: Int
    package var width: Int
    /// Samples per pixel: 3 (RGB) unless decoded for another ``ColorMode``.
    package var channels: Int = 3
    /// Row-major RGB bytes. // (H, W, channels)
    package var pixels: [UInt8]

    package init(height: Int, width: Int, pixels: [UInt8]) {
        precondition(pixels.count == height * width * 3, "pixels must hold height * width * 3 bytes")
        self.height = height; self.width = width; self.pixels = pixels
    }

    package init(height: Int, width: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == height * width * channels, "pixels must hold height * width * channels bytes")
        self.height = height; self.width = width; self.channels = channels; self.pixels = pixels
    }

    /// An RGB image as grey (libpng's Rec. 601 integer weights, as TensorFlow's PNG path) or
    /// RGBA (alpha 255). Used where TensorFlow itself has no conversion (CMYK JPEG).
    package func converted(toChannels c: Int) -> DecodedImage {
        precondition(channels == 3 && (c == 1 || c == 4), "converts RGB to grey or RGBA")
        let n = height * width
        var out = [UInt8](repeating: 255, count: n * c)
        for i in 0..<n {
            let r = Int(pixels[3 * i]), g = Int(pixels[3 * i + 1]), b = Int(pixels[3 * i + 2])
            if c == 1 {
                // libpng's png_set_rgb_to_gray(0.299, 0.587): 15-bit fixed point, truncated.
                out[i] = UInt8((9797 * r + 19234 * g + 3737 * b) >> 15)
            } else {
                out[4 * i] = UInt8(r); out[4 * i + 1] = UInt8(g); out[4 * i + 2] = UInt8(b)
            }
        }
        return DecodedImage(height: height, width: width, channels: c, pixels: out)
    }

    /// Decodes a JPEG or PNG file.
    ///
    /// ```swift
    /// let image = try DecodedImage(contentsOf: URL(fileURLWithPath: "data/cat/1.jpg"))
    /// print(image.height, image.width)  // pixels holds height * width * 3 bytes
    /// ```
    /// - Throws: ``XferError`` (`.badInput`, subject = the file path) for a file that cannot be
    ///   read, is not a regular file (a FIFO or device is never opened for reading), is larger
    ///   than 256 MiB, is not a JPEG or PNG, or is damaged.
    package init(contentsOf url: URL) throws {
        let data: Data
        do { data = try readRegularFile(url.path) } catch let error as ImageDecodeError {
            throw XferError.badInput(url.relativePath, error.message)
        }
        try self.init(data: data, name: url.relativePath)
    }

    /// Decodes the bytes of a JPEG or PNG file; `name` is the error's subject.
    package init(data: Data, name: String) throws {
        do {
            self = try data.withUnsafeBytes { try decodeImageBytes($0) }
        } catch let error as ImageDecodeError {
            throw XferError.badInput(name, error.message)
        }
    }
}

/// Why a file could not be decoded; the caller adds the file name.
struct ImageDecodeError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

enum ImageFileFormat {
    case jpeg, png, gif, bmp, webp, jpegXL, unknown

    /// TensorFlow's ClassifyFileFormat (decode_image_op.cc).
    init(sniffing bytes: UnsafeRawBufferPointer) {
        func starts(_ prefix: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + prefix.count
                && prefix.indices.allSatisfy { bytes[offset + $0] == prefix[$0] }
        }
        if starts([0xFF, 0xD8, 0xFF]) { self = .jpeg }
        else if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { self = .png }
        else if starts(Array("GIF8".utf8)) { self = .gif }
        else if starts(Array("BM".utf8)) { self = .bmp }
        else if bytes.count > 12, starts(Array("RIFF".utf8)), starts(Array("WEBP".utf8), at: 8) { self = .webp }
        else if starts([0xFF, 0x0A]) || starts([0, 0, 0, 0x0C, 0x4A, 0x58, 0x4C, 0x20, 0x0D, 0x0A, 0x87, 0x0A]) {
            self = .jpegXL
        } else { self = .unknown }
    }

    /// Why this format cannot be read, or nil for JPEG and PNG.
    var unsupportedReason: String? {
        switch self {
        case .jpeg, .png: return nil
        case .gif: return "GIF images are not supported (convert to PNG)"
        case .bmp: return "BMP images are not supported (convert to PNG)"
        case .webp: return "WebP images are not supported (convert to PNG or JPEG)"
        case .jpegXL: return "JPEG XL images are not supported (convert to PNG or JPEG)"
        case .unknown: return "not an image (neither JPEG nor PNG data)"
        }
    }
}

func decodeImageBytes(_ bytes: UnsafeRawBufferPointer, channels: Int = 3) throws -> DecodedImage {
    guard !bytes.isEmpty else { throw ImageDecodeError("empty file") }
    let format = ImageFileFormat(sniffing: bytes)
    switch format {
    case .jpeg: return try JPEGDecoder.decode(bytes, channels: channels)
    case .png: return try PNGDecoder.decode(bytes, channels: channels)
    default: throw ImageDecodeError(format.unsupportedReason!)
    }
}

/// Checks that `bytes` start a JPEG or PNG whose header parses; returns its size.
/// `bytes` may be only the beginning of the file: a header that runs past it throws.
func readImageHeader(_ bytes: UnsafeRawBufferPointer) throws -> (height: Int, width: Int) {
    guard !bytes.isEmpty else { throw ImageDecodeError("empty file") }
    let format = ImageFileFormat(sniffing: bytes)
    switch format {
    case .jpeg:
        let h = try JPEGDecoder.readHeader(bytes)
        return (h.height, h.width)
    case .png:
        let (w, h) = try PNGDecoder.readHeader(bytes)
        return (h, w)
    default: throw ImageDecodeError(format.unsupportedReason!)
    }
}
