// Output sizes and padding of windowed layers (Conv2D, pooling), TensorFlow's rules
// (K3 `compute_conv_output_shape`, `_pad_same_spatial_channels_last`):
//   valid: out = floor((in − k_eff)/s) + 1, no padding
//   same:  out = ceil(in/s); pad_total = max((out−1)·s + k_eff − in, 0),
//          before = floor(pad_total/2), the odd extra row/column after (bottom/right)
// with k_eff = (k−1)·d + 1.

struct WindowAxis: Equatable {
    /// Output length.
    let output: Int
    /// Padding before the first input element (top or left).
    let padBefore: Int

    /// nil when `valid` leaves no output.
    init?(input: Int, kernel: Int, stride: Int, dilation: Int = 1, padding: Padding) {
        let kEff = (kernel - 1) * dilation + 1
        switch padding {
        case .valid:
            guard input >= kEff else { return nil }
            output = (input - kEff) / stride + 1
            padBefore = 0
        case .same:
            guard input >= 1 else { return nil }
            output = (input - 1) / stride + 1
            padBefore = max((output - 1) * stride + kEff - input, 0) / 2
        }
    }
}

/// The sizes of one pooling window pass. Input (H, W, C), output (OH, OW, C).
struct PoolGeometry: Equatable {
    let h, w, c: Int
    let kh, kw: Int
    let sh, sw: Int
    let padTop, padLeft: Int
    let oh, ow: Int

    /// nil when `valid` padding leaves no output.
    init?(input: [Int], _ config: Pool2DConfig) {
        precondition(input.count == 3)
        guard let y = WindowAxis(input: input[0], kernel: config.poolSize.h, stride: config.strides.h, padding: config.padding),
              let x = WindowAxis(input: input[1], kernel: config.poolSize.w, stride: config.strides.w, padding: config.padding)
        else { return nil }
        h = input[0]; w = input[1]; c = input[2]
        kh = config.poolSize.h; kw = config.poolSize.w
        sh = config.strides.h; sw = config.strides.w
        padTop = y.padBefore; padLeft = x.padBefore
        oh = y.output; ow = x.output
    }

    /// The real (unpadded) input rows and columns under output pixel (i, j).
    @inline(__always)
    func window(_ i: Int, _ j: Int) -> (rows: Range<Int>, cols: Range<Int>) {
        let top = i * sh - padTop, left = j * sw - padLeft
        return (max(top, 0) ..< min(top + kh, h), max(left, 0) ..< min(left + kw, w))
    }
}

/// Checks a pooling config and input; the geometry, or an error naming the layer.
func poolGeometry(_ config: Pool2DConfig, inputShape: [Int], layer: String, kind: String) throws -> PoolGeometry {
    try requireRank(inputShape, 3, layer: layer, kind: kind)
    guard config.poolSize.h > 0, config.poolSize.w > 0, config.strides.h > 0, config.strides.w > 0 else {
        throw XferError.badInput("layer '\(layer)'", "\(kind) with pool size \(config.poolSize) and strides \(config.strides): sizes must be positive")
    }
    guard let g = PoolGeometry(input: inputShape, config) else {
        throw XferError.badInput("layer '\(layer)'", "input \(inputShape) is smaller than the \(config.poolSize) pool with `valid` padding")
    }
    return g
}

/// Runs `body(outputRow, n, i)` for every output row (n, i) of a pooling layer, split over the pool.
func forEachOutputRow(batch: Int, _ g: PoolGeometry, _ body: (_ n: Int, _ i: Int) -> Void) {
    let rows = batch * g.oh
    let parts = min(rows, ThreadPool.shared.threadCount * 4)
    parallelFor(parts) { part, _ in
        for r in chunk(part, of: parts, total: rows) { body(r / g.oh, r % g.oh) }
    }
}

/// Runs `body(n, channels)` for every sample n and a block of its channels, split over
/// the pool. No two calls share a (sample, channel) pair, so a pooling backward pass can
/// scatter into dx without locks even where windows overlap.
func forEachSampleChannelBlock(batch: Int, channels: Int, _ body: (_ n: Int, _ channels: Range<Int>) -> Void) {
    let threads = ThreadPool.shared.threadCount
    let blocks = batch >= 2 * threads ? 1 : max(1, min(channels, (4 * threads + batch - 1) / batch))
    parallelFor(batch * blocks) { t, _ in
        body(t / blocks, chunk(t % blocks, of: blocks, total: channels))
    }
}
