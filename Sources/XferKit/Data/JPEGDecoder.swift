// JPEG → 8-bit RGB with libjpeg-turbo's TurboJPEG API, pixel for pixel what Keras gets from
// `tf.io.decode_image(..., channels=3)`.
//
// TensorFlow's DecodeImage op decodes JPEG with the *fast integer* IDCT (JDCT_IFAST, "the
// TensorFlow-chosen default ... sacrificing image quality for speed", decode_image_op.cc) and
// fancy upsampling; `decode_jpeg`'s own default dct_method is the same. The accurate ISLOW
// IDCT differs from it by up to ~10 grey levels, so TJFLAG_FASTDCT is not optional here.
// CMYK/YCCK files are decoded to CMYK and converted to RGB with TensorFlow's formula
// (jpeg_mem.cc), which depends on whether the file carries an Adobe APP14 marker.
// TensorFlow rejects a file whose data ends before the EOI marker; libjpeg only warns about
// it (and pads the image with grey), so the marker walk below checks for it. Other libjpeg
// warnings ("Corrupt JPEG data: N extraneous bytes ...") leave TensorFlow decoding, and so us.

import CTurboJPEG

enum JPEGDecoder {
    struct Header {
        var width: Int
        var height: Int
        var isCMYK: Bool
    }

    static func readHeader(_ jpeg: UnsafeRawBufferPointer) throws -> Header {
        try withDecompressor { handle in try header(handle, jpeg) }
    }

    /// Decodes to `outChannels` samples per pixel: 3 (RGB, as TensorFlow), 1 (grey: libjpeg's
    /// own conversion, the luma plane, as `decode_jpeg(channels=1)`), or 4 (RGB and an opaque
    /// alpha of 255, as Keras's `load_img(color_mode="rgba")`; TensorFlow refuses 4 for JPEG).
    static func decode(_ jpeg: UnsafeRawBufferPointer, channels outChannels: Int = 3) throws -> DecodedImage {
        let markers = scanMarkers(jpeg)
        guard markers.reachesEOI else { throw ImageDecodeError("JPEG data ends early (truncated)") }
        return try withDecompressor { handle in
            let h = try header(handle, jpeg)
            let channels = h.isCMYK ? 4 : outChannels
            let format = h.isCMYK ? TJPF_CMYK : outChannels == 1 ? TJPF_GRAY : outChannels == 4 ? TJPF_RGBA : TJPF_RGB
            var raw = [UInt8](repeating: 0, count: h.height * h.width * channels)  // (H, W, channels)
            let rc = raw.withUnsafeMutableBufferPointer { out in
                tjDecompress2(
                    handle, jpeg.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(jpeg.count),
                    out.baseAddress, Int32(h.width), 0, Int32(h.height),
                    Int32(format.rawValue), TJFLAG_FASTDCT)
            }
            if rc != 0 && tjGetErrorCode(handle) != Int32(TJERR_WARNING.rawValue) {
                throw ImageDecodeError("damaged JPEG: \(errorString(handle))")
            }
            if !h.isCMYK { return DecodedImage(height: h.height, width: h.width, channels: outChannels, pixels: raw) }
            let rgb = DecodedImage(
                height: h.height, width: h.width,
                pixels: cmykToRGB(raw, pixelCount: h.height * h.width, adobe: markers.sawAdobe))
            // TensorFlow decodes CMYK to RGB only; other modes are made from that RGB.
            return outChannels == 3 ? rgb : rgb.converted(toChannels: outChannels)
        }
    }

    private static func withDecompressor<T>(_ body: (tjhandle) throws -> T) throws -> T {
        guard let handle = tjInitDecompress() else { throw ImageDecodeError("cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        return try body(handle)
    }

    private static func header(_ handle: tjhandle, _ jpeg: UnsafeRawBufferPointer) throws -> Header {
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let rc = tjDecompressHeader3(
            handle, jpeg.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt(jpeg.count),
            &width, &height, &subsampling, &colorspace)
        guard rc == 0 else { throw ImageDecodeError("damaged JPEG: \(errorString(handle))") }
        let isCMYK = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        let components = isCMYK ? 4 : colorspace == Int32(TJCS_GRAY.rawValue) ? 1 : 3
        // TensorFlow's limit (jpeg_mem.cc): height * width * components in the file below 2^29.
        // libjpeg can return from a header that ends before its frame (SOF) with no size at all.
        guard width > 0, height > 0 else {
            throw ImageDecodeError("damaged JPEG: its header ends before the image size (truncated or not a JPEG past its first bytes)")
        }
        guard Int(width) * Int(height) * components < 1 << 29 else {
            throw ImageDecodeError("JPEG of \(width)x\(height) pixels is too large")
        }
        return Header(width: Int(width), height: Int(height), isCMYK: isCMYK)
    }

    private static func errorString(_ handle: tjhandle) -> String {
        guard let text = tjGetErrorStr2(handle) else { return "unknown error" }
        return String(cString: text)
    }

    /// TensorFlow's CMYK → RGB (jpeg_mem.cc). Adobe files store inverted CMYK.
    static func cmykToRGB(_ cmyk: [UInt8], pixelCount: Int, adobe: Bool) -> [UInt8] {
        var rgb = [UInt8](repeating: 0, count: pixelCount * 3)  // (H, W, 3)
        for i in 0..<pixelCount {
            let c = Int(cmyk[4 * i]), m = Int(cmyk[4 * i + 1]), y = Int(cmyk[4 * i + 2]), k = Int(cmyk[4 * i + 3])
            if adobe {
                rgb[3 * i] = UInt8(k * c / 255)
                rgb[3 * i + 1] = UInt8(k * m / 255)
                rgb[3 * i + 2] = UInt8(k * y / 255)
            } else {
                rgb[3 * i] = UInt8((255 - k) * (255 - c) / 255)
                rgb[3 * i + 1] = UInt8((255 - k) * (255 - m) / 255)
                rgb[3 * i + 2] = UInt8((255 - k) * (255 - y) / 255)
            }
        }
        return rgb
    }

    struct Markers {
        /// An APP14 segment of at least 12 bytes starting "Adobe" (libjpeg's saw_Adobe_marker).
        var sawAdobe = false
        /// The marker stream reaches EOI before the data ends.
        var reachesEOI = false
    }

    /// Walks the JPEG marker segments, and the entropy-coded data after each SOS, up to EOI.
    static func scanMarkers(_ jpeg: UnsafeRawBufferPointer) -> Markers {
        var found = Markers()
        let n = jpeg.count
        guard n >= 2, jpeg[0] == 0xFF, jpeg[1] == 0xD8 else { return found }
        var i = 2
        while i < n {
            // Find the next marker: 0xFF, any fill 0xFFs, then a code that is not 0x00 (a stuffed
            // data byte) or RST0-7 (restart markers inside entropy-coded data).
            guard jpeg[i] == 0xFF else { i += 1; continue }
            var j = i + 1
            while j < n, jpeg[j] == 0xFF { j += 1 }
            guard j < n else { break }
            let code = jpeg[j]
            i = j + 1
            switch code {
            case 0x00, 0xD0...0xD7, 0x01:
                continue
            case 0xD9:
                found.reachesEOI = true
                return found
            default:
                guard i + 1 < n else { return found }
                let length = Int(jpeg[i]) << 8 | Int(jpeg[i + 1])
                if code == 0xEE, length - 2 >= 12, i + 7 <= n,
                   jpeg[i + 2] == 0x41, jpeg[i + 3] == 0x64, jpeg[i + 4] == 0x6F,
                   jpeg[i + 5] == 0x62, jpeg[i + 6] == 0x65 {  // "Adobe"
                    found.sawAdobe = true
                }
                i += length  // after SOS this lands in entropy-coded data; the scan goes on from there
            }
        }
        return found
    }
}
