// Bilinear resize as `tf.image.resize(images, size, method="bilinear")` does it, which is what
// `image_dataset_from_directory` calls by default: TensorFlow's ResizeBilinear kernel with
// half-pixel centres, no antialiasing, no corner alignment, computed in float32
// (tensorflow/core/kernels/image/resize_bilinear_op.cc). The same float32 operations in the
// same order, so results agree with TensorFlow to the last bit or two.

/// One output coordinate's two source rows (or columns) and the weight of the upper one.
struct ResizeTap {
    var lower: Int
    var upper: Int
    var lerp: Float
}

/// TensorFlow's compute_interpolation_weights with the HalfPixelScaler:
/// source = (i + 0.5) * (inSize / outSize) - 0.5, clamped to the image.
func halfPixelTaps(inSize: Int, outSize: Int) -> [ResizeTap] {
    let scale = Float(inSize) / Float(outSize)
    return (0..<outSize).map { i in
        let source = (Float(i) + 0.5) * scale - 0.5
        let floor = source.rounded(.down)
        let upper = min(Int(source.rounded(.up)), inSize - 1)
        let lower = min(max(Int(floor), 0), upper)
        return ResizeTap(lower: lower, upper: upper, lerp: source - floor)
    }
}

/// out (outH, outW, C) float32  ←  input (inH, inW, C) uint8
func resizeBilinearForward(
    _ out: UnsafeMutablePointer<Float>, _ input: UnsafePointer<UInt8>,
    inH: Int, inW: Int, outH: Int, outW: Int, C: Int
) {
    let ys = halfPixelTaps(inSize: inH, outSize: outH)
    let xs = halfPixelTaps(inSize: inW, outSize: outW)
    for oy in 0..<outH {
        let top = input + ys[oy].lower * inW * C
        let bottom = input + ys[oy].upper * inW * C
        let wy = ys[oy].lerp
        let row = out + oy * outW * C
        for ox in 0..<outW {
            let left = xs[ox].lower * C, right = xs[ox].upper * C, wx = xs[ox].lerp
            for c in 0..<C {
                let topLeft = Float(top[left + c]), topRight = Float(top[right + c])
                let bottomLeft = Float(bottom[left + c]), bottomRight = Float(bottom[right + c])
                let upperRow = topLeft + (topRight - topLeft) * wx
                let lowerRow = bottomLeft + (bottomRight - bottomLeft) * wx
                row[ox * C + c] = upperRow + (lowerRow - upperRow) * wy
            }
        }
    }
}

extension DecodedImage {
    /// The image resized to `height` x `width` like `tf.image.resize(..., method="bilinear")`,
    /// as float32 in 0...255. // (height, width, 3)
    package func resized(height: Int, width: Int) -> [Float] {
        precondition(height > 0 && width > 0, "resize target must be positive")
        var out = [Float](repeating: 0, count: height * width * channels)
        out.withUnsafeMutableBufferPointer { o in
            pixels.withUnsafeBufferPointer { p in
                resizeBilinearForward(o.baseAddress!, p.baseAddress!, inH: self.height, inW: self.width,
                                      outH: height, outW: width, C: channels)
            }
        }
        return out
    }

    /// Writes the resized image into `out`, which holds `height * width * channels` floats.
    func resize(into out: UnsafeMutablePointer<Float>, height: Int, width: Int) {
        pixels.withUnsafeBufferPointer { p in
            resizeBilinearForward(out, p.baseAddress!, inH: self.height, inW: self.width,
                                  outH: height, outW: width, C: channels)
        }
    }
}
