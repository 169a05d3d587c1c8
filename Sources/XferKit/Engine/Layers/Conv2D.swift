// Conv2D: TensorFlow's cross-correlation (no kernel flip) with `same`/`valid`
// padding, strides, dilation, and bias + activation fused after the product:
//
//   y[n,i,j,o] = act(b[o] + Σ_{u,v,c} x_pad[n, i·sh + u·dh, j·sw + v·dw, c] · W[u,v,c,o])
//
// Fast path (`conv2DForward`): the output pixels (n, i, j) of the whole batch are rows
// p = (n·OH + i)·OW + j. Taking a tile of rows at a time, im2col writes
// A (M×K, K = KH·KW·C; row p is pixel p's patch in (u, v, c) order, zeros where it
// falls into the padding) into the worker's workspace slice, and
// C = A · W (K×O, the Keras kernel exactly as stored) lands directly in the output,
// because consecutive output pixels are consecutive rows of NHWC. 1×1 stride-1
// convolutions skip im2col: the input already is A.
//
// `conv2DForwardNaive` is the direct seven-loop definition, the oracle in tests.

/// The sizes of one convolution. Input (H, W, C), kernel (KH, KW, C, O), output (OH, OW, O).
struct ConvGeometry: Equatable {
    let h, w, c: Int
    let kh, kw, o: Int
    let sh, sw: Int
    let dh, dw: Int
    let padTop, padLeft: Int
    let oh, ow: Int

    /// GEMM depth: one patch.
    var k: Int { kh * kw * c }
    /// The input rows are the im2col rows.
    var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 }

    /// nil when `valid` padding leaves no output.
    init?(input: [Int], _ config: Conv2DConfig) {
        precondition(input.count == 3)
        guard let y = WindowAxis(input: input[0], kernel: config.kernelSize.h, stride: config.strides.h,
                                 dilation: config.dilation.h, padding: config.padding),
              let x = WindowAxis(input: input[1], kernel: config.kernelSize.w, stride: config.strides.w,
                                 dilation: config.dilation.w, padding: config.padding)
        else { return nil }
        h = input[0]; w = input[1]; c = input[2]
        kh = config.kernelSize.h; kw = config.kernelSize.w; o = config.filters
        sh = config.strides.h; sw = config.strides.w
        dh = config.dilation.h; dw = config.dilation.w
        padTop = y.padBefore; padLeft = x.padBefore
        oh = y.output; ow = x.output
    }
}

/// A Keras `Conv2D` layer.
public final class Conv2DLayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public let outputShape: [Int]
    let config: Conv2DConfig
    let geometry: ConvGeometry
    /// (KH, KW, C, O) — read by the GEMM as K×O.
    var kernel: [Float]
    /// (O), nil when `use_bias=False`.
    var bias: [Float]?
    /// (N, H, W, C): the last input, kept only when the context asks (backward needs it).
    var savedInput: Tensor?

    init(name: String, config: Conv2DConfig, inputShape: [Int], kernel: [Float], bias: [Float]?) throws {
        try requireRank(inputShape, 3, layer: name, kind: "Conv2D")
        guard config.filters > 0, config.kernelSize.h > 0, config.kernelSize.w > 0,
              config.strides.h > 0, config.strides.w > 0, config.dilation.h > 0, config.dilation.w > 0 else {
            throw XferError.badInput("layer '\(name)'", "Conv2D with a zero size: filters \(config.filters), kernel \(config.kernelSize), strides \(config.strides), dilation \(config.dilation)")
        }
        if (config.strides.h > 1 || config.strides.w > 1) && (config.dilation.h > 1 || config.dilation.w > 1) {
            throw XferError.badInput("layer '\(name)'", "Conv2D with both strides \(config.strides) and dilation \(config.dilation) above 1 (Keras rejects it too)")
        }
        guard let g = ConvGeometry(input: inputShape, config) else {
            throw XferError.badInput("layer '\(name)'", "input \(inputShape) is smaller than the \(config.kernelSize) kernel with dilation \(config.dilation) and `valid` padding")
        }
        precondition(kernel.count == g.k * g.o && (bias?.count ?? g.o) == g.o)
        self.name = name; self.config = config; self.inputShape = inputShape
        self.geometry = g; self.kernel = kernel; self.bias = bias
        self.outputShape = [g.oh, g.ow, g.o]
    }

    convenience init(spec: LayerSpec, config: Conv2DConfig, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: spec.name, kind: "Conv2D")
        let kernelShape = [config.kernelSize.h, config.kernelSize.w, inputShape[2], config.filters]
        let kernel = try spec.values("kernel", shape: kernelShape)
        let bias = config.useBias ? try spec.values("bias", shape: [config.filters]) : nil
        try spec.onlyWeights(config.useBias ? ["kernel", "bias"] : ["kernel"])
        try self.init(name: spec.name, config: config, inputShape: inputShape, kernel: kernel, bias: bias)
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        x.values.withUnsafeBufferPointer { px in
            kernel.withUnsafeBufferPointer { pk in
                y.values.withUnsafeMutableBufferPointer { py in
                    let pb = bias?.withUnsafeBufferPointer { $0.baseAddress! }
                    conv2DForward(px.baseAddress!, batch: n, geometry, kernel: pk.baseAddress!, bias: pb,
                                  config.activation, into: py.baseAddress!, workspace: context.workspace)
                }
            }
        }
        savedInput = context.release(x)
        return y
    }

    /// The GEMMs one forward pass of `batch` samples makes: (M, N, K) and how many of each.
    func gemmShapes(batch: Int, workspace: Workspace, threads: Int) -> [(m: Int, n: Int, k: Int, count: Int)] {
        let plan = ConvTiling(geometry, batch: batch, workspace: workspace, threads: threads)
        var shapes = [(m: plan.tileRows, n: geometry.o, k: geometry.k, count: plan.rows / plan.tileRows)]
        if plan.rows % plan.tileRows != 0 { shapes.append((plan.rows % plan.tileRows, geometry.o, geometry.k, 1)) }
        return shapes
    }
}

/// How the output rows of one convolution are cut into tiles.
struct ConvTiling {
    /// Output pixels of the batch: N·OH·OW.
    let rows: Int
    /// Rows per tile (the last tile may be shorter); tileRows·K ≤ the worker budget.
    let tileRows: Int
    var tiles: Int { (rows + tileRows - 1) / tileRows }

    init(_ g: ConvGeometry, batch: Int, workspace: Workspace, threads: Int) {
        rows = batch * g.oh * g.ow
        // At least 16 rows, or the GEMM degenerates into matrix-vector products.
        let fit = max(16, workspace.floatsPerWorker / g.k)
        // Enough tiles to keep every thread busy, then all of nearly equal size.
        let tiles = max((rows + fit - 1) / fit, min(threads, (rows + 15) / 16), 1)
        tileRows = max(1, (rows + tiles - 1) / tiles)
    }
}

/// y (N, OH, OW, O) = act(conv(x (N, H, W, C), kernel (KH, KW, C, O)) + bias (O)).
func conv2DForward(_ x: UnsafePointer<Float>, batch: Int, _ g: ConvGeometry,
                   kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>?, _ activation: Activation,
                   into y: UnsafeMutablePointer<Float>, workspace: Workspace) {
    let threads = ThreadPool.shared.threadCount
    let plan = ConvTiling(g, batch: batch, workspace: workspace, threads: threads)
    let k = g.k
    if !g.isPointwise { workspace.reserve(workers: threads, floats: plan.tileRows * k) }
    parallelFor(plan.tiles, maxThreads: threads) { t, worker in
        let first = t * plan.tileRows
        let m = min(plan.rows - first, plan.tileRows)
        let a: UnsafePointer<Float>
        if g.isPointwise {
            a = x + first * k
        } else {
            let col = workspace.slice(worker)
            im2col(x, g, rows: first ..< first + m, into: col)
            a = UnsafePointer(col)
        }
        let out = y + first * g.o
        GEMM.sgemm(m: m, n: g.o, k: k, a: a, lda: k, b: kernel, ldb: g.o, c: out, ldc: g.o)
        biasActivate(out, rows: m, cols: g.o, bias: bias, activation)
    }
}

/// Writes the patches of output pixels `rows` (flattened over the batch) as rows of
/// `col` (rows.count × KH·KW·C), zeros for the padding.
func im2col(_ x: UnsafePointer<Float>, _ g: ConvGeometry, rows: Range<Int>,
            into col: UnsafeMutablePointer<Float>) {
    let pixels = g.oh * g.ow
    let c = g.c
    let patchRow = g.kw * c  // one kernel row of the patch
    var dst = col
    for p in rows {
        let n = p / pixels, q = p - n * pixels
        let i = q / g.ow, j = q - i * g.ow
        let top = i * g.sh - g.padTop, left = j * g.sw - g.padLeft
        let image = x + n * g.h * g.w * c
        // Undilated and inside the image horizontally: a kernel row is one run of memory.
        let contiguous = g.dw == 1 && left >= 0 && left + g.kw <= g.w
        for u in 0..<g.kh {
            let yy = top + u * g.dh
            if yy < 0 || yy >= g.h {
                dst.update(repeating: 0, count: patchRow)
            } else {
                let src = image + yy * g.w * c
                if contiguous {
                    dst.update(from: src + left * c, count: patchRow)
                } else {
                    for v in 0..<g.kw {
                        let xx = left + v * g.dw
                        if xx < 0 || xx >= g.w {
                            (dst + v * c).update(repeating: 0, count: c)
                        } else {
                            (dst + v * c).update(from: src + xx * c, count: c)
                        }
                    }
                }
            }
            dst += patchRow
        }
    }
}

/// The definition, loop by loop, summing in Double: the test oracle.
/// x (N, H, W, C), kernel (KH, KW, C, O), bias (O) → (N, OH, OW, O).
func conv2DForwardNaive(_ x: Tensor, _ g: ConvGeometry, kernel: [Float], bias: [Float]?,
                        _ activation: Activation) -> Tensor {
    let n = x.shape[0]
    var y = Tensor(shape: [n, g.oh, g.ow, g.o])
    for b in 0..<n {
        for i in 0..<g.oh {
            for j in 0..<g.ow {
                let outBase = ((b * g.oh + i) * g.ow + j) * g.o
                for o in 0..<g.o {
                    var sum = Double(bias?[o] ?? 0)
                    for u in 0..<g.kh {
                        let yy = i * g.sh + u * g.dh - g.padTop
                        guard yy >= 0 && yy < g.h else { continue }
                        for v in 0..<g.kw {
                            let xx = j * g.sw + v * g.dw - g.padLeft
                            guard xx >= 0 && xx < g.w else { continue }
                            for ch in 0..<g.c {
                                let xv = x.values[((b * g.h + yy) * g.w + xx) * g.c + ch]
                                let kv = kernel[((u * g.kw + v) * g.c + ch) * g.o + o]
                                sum += Double(xv) * Double(kv)
                            }
                        }
                    }
                    y.values[outBase + o] = Float(sum)
                }
                y.values.withUnsafeMutableBufferPointer { p in
                    activate(p.baseAddress! + outBase, rows: 1, cols: g.o, activation)
                }
            }
        }
    }
    return y
}
