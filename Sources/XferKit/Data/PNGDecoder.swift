// PNG → 8-bit RGB with libpng, as `tf.io.decode_image(..., channels=3)` gives it: grey and
// palette expanded to RGB, alpha and tRNS dropped (not composited), 16-bit samples cut to their
// high byte, gAMA/sRGB/iCCP ignored. With 1 or 4 channels (`--color-mode grayscale|rgba`), as
// `channels=1` / `channels=4` give it: colour made grey by libpng's Rec. 601 weights, or alpha
// kept (tRNS as alpha, 255 where the file has none). The libpng calls, and the setjmp they need, are in
// Sources/CPNG/shim.h; see there for why the simplified png_image API is not used.

import CPNG

enum PNGDecoder {
    static func readHeader(_ png: UnsafeRawBufferPointer) throws -> (width: Int, height: Int) {
        var width: UInt32 = 0, height: UInt32 = 0
        try call { message, size in
            xfer_png_decode_rgb8(png.baseAddress, png.count, nil, 0, &width, &height, message, size)
        }
        // TensorFlow's limits (decode_image_op.cc): sides below 2^27, fewer than 2^29 pixels.
        guard width > 0, height > 0, width < 1 << 27, height < 1 << 27,
              Int(width) * Int(height) < 1 << 29
        else { throw ImageDecodeError("PNG of \(width)x\(height) pixels is too large") }
        return (Int(width), Int(height))
    }

    static func decode(_ png: UnsafeRawBufferPointer, channels: Int = 3) throws -> DecodedImage {
        let (w, h) = try readHeader(png)
        var pixels = [UInt8](repeating: 0, count: h * w * channels)  // (H, W, channels)
        var width: UInt32 = 0, height: UInt32 = 0
        try pixels.withUnsafeMutableBufferPointer { out in
            try call { message, size in
                xfer_png_decode8(png.baseAddress, png.count, Int32(channels), out.baseAddress, out.count,
                                 &width, &height, message, size)
            }
        }
        return DecodedImage(height: h, width: w, channels: channels, pixels: pixels)
    }

    private static func call(_ body: (UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
        var message = [CChar](repeating: 0, count: 256)
        let rc = message.withUnsafeMutableBufferPointer { body($0.baseAddress!, $0.count) }
        guard rc == 0 else {
            let text = String(cString: message)
            throw ImageDecodeError(text == "not a PNG file" ? text : "damaged PNG: \(text)")
        }
    }
}
