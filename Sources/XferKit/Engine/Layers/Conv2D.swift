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
//
// Backward (`conv2DBackward`), from dz = dy·act'(…) (N, OH, OW, O), the gradient at the
// pre-activation, over the same rows p and the same im2col tiles A (M×K):
//
//   dKernel (K×O) += Aᵀ · dz        one partial per worker (its workspace slice), summed at the end
//   dBias   (O)   += Σ_p dz[p, :]
//   dx            = col2im(dz · Wᵀ)  (M×K) scatter-added into (N, H, W, C), zeroed first
//
// Neighbouring output pixels share input pixels, so two tiles scattering into the same
// sample would race: when dx is wanted, a task is one or more whole samples and walks
// its tiles in order. 1×1 stride-1 convolutions again skip im2col: dx = dz · Wᵀ row for
// row. `conv2DBackwardNaive` is the seven-loop definition of the same three sums.
//
// 3×3 stride-1 layers may run on Winograd instead (Engine/Winograd.swift decides per layer by
// shape): its forward and backward replace the three GEMM passes here; bias and ReLU fuse into
// its output transform, other activations and all the gradients of the epilogue stay as here.
// The inference forward of the other shapes runs on oneDNN's direct convolution
// (Engine/DirectConvolution.swift), bias and the common activations fused.
//
// The Keras kind, `Conv2DConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// The input rows are the im2col rows (not so when a folded ZeroPadding2D pads a 1×1 convolution).
    var isPointwise: Bool { kh == 1 && kw == 1 && sh == 1 && sw == 1 && padTop == 0 && padLeft == 0 && oh == h && ow == w }

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
package final class Conv2DLayer: KernelBiasLayer {
    package let name: String
    /// Its input shape and geometry change once, before the first pass, when the ZeroPadding2D
    /// before it is folded into its padding (Execution/InferenceFolding.swift).
    package internal(set) var inputShape: [Int]
    package let outputShape: [Int]
    /// Its activation may change once, before the first pass, when a BatchNormalization and the
    /// activation after it are folded in (Execution/InferenceFolding.swift).
    var config: Conv2DConfig
    var geometry: ConvGeometry
    /// (KH, KW, C, O) — read by the GEMM as K×O.
    package var kernel: [Float] {
        // The Winograd path keeps the kernel in oneDNN's layout; a new version re-transforms it.
        // (A didSet that ignores oldValue lets the optimizer update the array in place.)
        didSet { kernelVersion &+= 1 }
    }
    private(set) var kernelVersion = 0
    /// The Winograd primitives, made on first use of that path (Engine/Winograd.swift).
    var winograd: WinogradConvolution?
    /// The oneDNN direct-convolution primitives of inference passes, made on first use of that path
    /// for the shapes Winograd does not run (Engine/DirectConvolution.swift).
    var direct: DirectConvolution?
    /// (O), nil when `use_bias=False`.
    package var bias: [Float]?
    /// (N, H, W, C): the last input, kept only when the context asks (backward needs it).
    var savedInput: Tensor?
    /// (N, OH, OW, O): what the activation derivative is computed from, kept only when
    /// the context asks: the output, or for silu/gelu the pre-activation.
    var savedActivation: Tensor?

    /// Keras's `training` flag (a convolution computes the same either way).
    package var training = false
    package var trainable = false
    /// (KH, KW, C, O) and (O): gradients, allocated when the layer first trains.
    package var dKernel: [Float] = []
    package var dBias: [Float] = []

    package init(name: String, config: Conv2DConfig, inputShape: [Int], kernel: [Float], bias: [Float]?) throws {
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
        let kernel = try spec.values(.kernel, shape: kernelShape)
        let bias = config.useBias ? try spec.values(.bias, shape: [config.filters]) : nil
        try spec.onlyWeights(config.useBias ? [.kernel, .bias] : [.kernel])
        try self.init(name: spec.name, config: config, inputShape: inputShape, kernel: kernel, bias: bias)
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        let activation = config.activation
        // silu/gelu derivatives need the pre-activation: stop before the activation.
        let keepPreActivation = context.keepForBackward && activationBackwardNeedsInput(activation)
        let choice = ConvolutionChoice(geometry)
        let wino = choice.winograd ? winogradConvolution() : nil
        x.values.withUnsafeBufferPointer { px in
            kernel.withUnsafeBufferPointer { pk in
                y.values.withUnsafeMutableBufferPointer { py in
                    let pb = bias?.withUnsafeBufferPointer { $0.baseAddress! }
                    let act = keepPreActivation ? Activation.linear : activation
                    // Where oneDNN fails at run time (out of memory), im2col does the work instead.
                    if let wino, wino.forward(px.baseAddress!, batch: n, kernel: pk.baseAddress!, bias: pb, version: kernelVersion,
                                              backward: context.keepForBackward && choice.winogradBackward,
                                              workspace: context.workspace, into: py.baseAddress!) {
                        // What oneDNN did not fuse: the activations other than ReLU.
                        let rest = act == .relu && wino.fusesReLU ? Activation.linear : act
                        parallelBiasActivate(py.baseAddress!, rows: n * geometry.oh * geometry.ow, cols: geometry.o,
                                             bias: wino.fusesBias ? nil : pb, rest)
                    } else if act == activation, DirectConvolution.wanted(context),
                              directConvolution().forward(px.baseAddress!, batch: n, kernel: pk.baseAddress!, bias: pb,
                                                          version: kernelVersion, workspace: context.workspace,
                                                          into: py.baseAddress!) {
                        // What oneDNN did not fuse (DirectConvolution.swift).
                        let rest = act == direct!.fusedActivation ? Activation.linear : act
                        parallelBiasActivate(py.baseAddress!, rows: n * geometry.oh * geometry.ow, cols: geometry.o,
                                             bias: nil, rest)
                    } else {
                        conv2DForward(px.baseAddress!, batch: n, geometry, kernel: pk.baseAddress!, bias: pb,
                                      act, into: py.baseAddress!, workspace: context.workspace)
                    }
                }
            }
        }
        savedInput = context.release(x)
        savedActivation = keptForActivationGradient(&y, activation, preActivationKept: keepPreActivation, context)
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard trainable || needInputGradient else { return nil }
        guard let x = savedInput else {
            preconditionFailure("layer '\(name)': backward without a forward that kept its input (keepForBackward)")
        }
        let n = x.shape[0]
        precondition(dy.shape == [n] + outputShape, "layer '\(name)': dy has shape \(dy.shape), expected \([n] + outputShape)")
        // (N, OH, OW, O): the gradient at the pre-activation.
        let dz = preActivationGradient(dy, saved: savedActivation, config.activation, context)
        if trainable {
            allocateGradients()
            if bias != nil { addBiasGradient(dz, into: &dBias) }
        }
        var dx = needInputGradient ? context.output([n] + inputShape).values : []  // (N, H, W, C)
        x.values.withUnsafeBufferPointer { px in
            kernel.withUnsafeBufferPointer { pk in
                dz.values.withUnsafeBufferPointer { pz in
                    withStorage(&dKernel, if: trainable) { pdk in
                        withStorage(&dx, if: needInputGradient) { pdx in
                            // Each pass on Winograd where it runs; what it could not do (oneDNN out of
                            // memory) on im2col.
                            var kernelDone = pdk == nil, inputDone = pdx == nil
                            if ConvolutionChoice(geometry).winogradBackward {
                                let wino = winogradConvolution()
                                if let pdk {
                                    kernelDone = wino.backwardWeights(px.baseAddress!, dz: pz.baseAddress!, batch: n,
                                                                      kernel: pk.baseAddress!, version: kernelVersion,
                                                                      workspace: context.workspace, addingInto: pdk)
                                }
                                if let pdx {
                                    inputDone = wino.backwardData(pz.baseAddress!, batch: n, kernel: pk.baseAddress!,
                                                                  version: kernelVersion, workspace: context.workspace, into: pdx)
                                }
                            }
                            if !kernelDone || !inputDone {
                                conv2DBackward(px.baseAddress!, batch: n, geometry, kernel: pk.baseAddress!, dz: pz.baseAddress!,
                                               dKernel: kernelDone ? nil : pdk, dx: inputDone ? nil : pdx,
                                               workspace: context.workspace)
                            }
                        }
                    }
                }
            }
        }
        if config.activation != .linear { context.pool.recycle(dz) }
        return needInputGradient ? Tensor(shape: [n] + inputShape, values: dx) : nil
    }

    private func winogradConvolution() -> WinogradConvolution {
        if let winograd { return winograd }
        // ReLU fuses into oneDNN's output transform; other activations run after it.
        let made = WinogradConvolution(geometry, fusingBias: bias != nil, fusingReLU: config.activation == .relu)
        winograd = made
        return made
    }

    /// The oneDNN direct convolution for inference passes, made on first use (Engine/DirectConvolution.swift).
    private func directConvolution() -> DirectConvolution {
        if let direct { return direct }
        let made = DirectConvolution(geometry, groups: 1, fusingBias: bias != nil, activation: config.activation)
        direct = made
        return made
    }

    /// The summing primitive of `forward(_:adding:then:_:)`, made on first use.
    private var directSumming: DirectConvolution?

    /// Whether `forward(_:adding:then:_:)` can run on oneDNN with the residual fused: the layer's
    /// own epilogue is linear, Winograd does not take its forward, and oneDNN fuses `activation`.
    func fusesResidual(then activation: Activation) -> Bool {
        config.activation == .linear && !ConvolutionChoice(geometry).winograd && Convolution.path != .im2col
            && DirectConvolution.fusable(activation) && directSumming?.refusal == nil
    }

    /// Inference only (InferenceFolding.swift): activation(conv(x) + bias + residual), the Add of a
    /// residual connection and the activation after it run inside oneDNN's epilogue, in the
    /// residual's own buffer when nothing else holds it. Where oneDNN does not run it, the plain
    /// forward, then the sum and the activation, give the same result.
    func forward(_ x: consuming Tensor, adding residual: consuming Tensor, then activation: Activation,
                 _ context: ForwardContext) -> Tensor {
        precondition(!context.keepForBackward && config.activation == .linear && residual.shape == [x.shape[0]] + outputShape)
        let n = x.shape[0]
        if DirectConvolution.wanted(context) && fusesResidual(then: activation) {
            let direct = directSumming ?? DirectConvolution(geometry, groups: 1, fusingBias: bias != nil,
                                                            activation: activation, summing: true)
            directSumming = direct
            // Copy on write: a residual another node still reads is copied here, not overwritten.
            var y = residual
            let done = x.values.withUnsafeBufferPointer { px in
                kernel.withUnsafeBufferPointer { pk in
                    y.values.withUnsafeMutableBufferPointer { py in
                        direct.forward(px.baseAddress!, batch: n, kernel: pk.baseAddress!,
                                       bias: bias?.withUnsafeBufferPointer { $0.baseAddress! }, version: kernelVersion,
                                       workspace: context.workspace, into: py.baseAddress!)
                    }
                }
            }
            if done {
                // What oneDNN did not fuse.
                if activation != direct.fusedActivation { activate(&y, activation) }
                _ = context.release(x)
                return y
            }
            residual = y  // untouched: oneDNN did not run
        }
        var y = forward(x, context)
        y.values.withUnsafeMutableBufferPointer { py in
            residual.values.withUnsafeBufferPointer { pr in
                parallelRanges(py.count, elements: py.count) { r in for i in r { py[i] += pr[i] } }
            }
        }
        activate(&y, activation)
        return y
    }

    /// What runs this layer's convolution under the current `Convolution.path`.
    var convolutionChoice: ConvolutionChoice { ConvolutionChoice(geometry) }

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

/// `biasActivate` over `rows` rows of `cols`, in row blocks on the thread pool.
func parallelBiasActivate(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                          bias: UnsafePointer<Float>?, _ activation: Activation) {
    guard bias != nil || activation != .linear, rows > 0 else { return }
    let parts = max(1, min(ThreadPool.shared.threadCount * 4, rows * cols / 16384))
    parallelFor(parts) { part, _ in
        let r = chunk(part, of: parts, total: rows)
        biasActivate(p + r.lowerBound * cols, rows: r.count, cols: cols, bias: bias, activation)
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

// MARK: - Backward

/// `body` with `array`'s storage when `condition` holds (the array then is not empty), else with nil.
@inline(__always)
func withStorage<R>(_ array: inout [Float], if condition: Bool, _ body: (UnsafeMutablePointer<Float>?) -> R) -> R {
    condition ? array.withUnsafeMutableBufferPointer { body($0.baseAddress!) } : body(nil)
}

/// What an epilogue's backward needs from its forward (the `saved` of `preActivationGradient`):
/// nil for a linear epilogue or outside training, else y as the activation's derivative reads it.
/// `y` holds the activated output, or the pre-activation where `preActivationKept` (silu/gelu's
/// derivatives read their input): that is kept and `y` activated here. The kept tensor shares y's
/// buffer; whoever writes into y next gets a copy (array semantics).
func keptForActivationGradient(_ y: inout Tensor, _ activation: Activation, preActivationKept: Bool,
                               _ context: ForwardContext) -> Tensor? {
    guard context.keepForBackward && activation != .linear else { return nil }
    let kept = y
    if preActivationKept { activate(&y, activation) }
    return kept
}

/// The gradient at a layer's pre-activation: dy itself for a linear epilogue, else a new tensor
/// from the context (`activationGradient`). `saved` is what the forward kept for it.
func preActivationGradient(_ dy: Tensor, saved: Tensor?, _ activation: Activation, _ context: ForwardContext) -> Tensor {
    guard activation != .linear else { return dy }
    var dz = context.output(dy.shape)
    activationGradient(dy, saved!, activation, into: &dz)
    return dz
}

/// dBias += the sums of dz's channels (its last axis): the bias gradient of an epilogue.
func addBiasGradient(_ dz: Tensor, into dBias: inout [Float]) {
    let channels = dBias.count
    dz.values.withUnsafeBufferPointer { pz in
        dBias.withUnsafeMutableBufferPointer { pb in
            addColumnSums(pz.baseAddress!, rows: dz.count / channels, cols: channels, into: pb.baseAddress!)
        }
    }
}

/// dz = dy · act'(…) element-wise (softmax: its Jacobian, over the last axis), the shapes
/// all equal. `saved` is the activation's output, or for silu/gelu its input. The
/// derivatives are TensorFlow's: relu passes where y > 0, relu6 where 0 < y < 6, elu and
/// selu take y (`EluGrad`, `SeluGrad`).
func activationGradient(_ dy: Tensor, _ saved: Tensor, _ activation: Activation, into dz: inout Tensor) {
    precondition(dy.shape == saved.shape && dy.shape == dz.shape)
    guard dy.count > 0 else { return }
    let cols = dy.shape.last ?? 1
    let rows = dy.count / max(cols, 1)
    let parts = min(rows, ThreadPool.shared.threadCount * 4)
    dy.values.withUnsafeBufferPointer { pg in
        saved.values.withUnsafeBufferPointer { ps in
            dz.values.withUnsafeMutableBufferPointer { pz in
                let pg = pg.baseAddress!, ps = ps.baseAddress!, pz = pz.baseAddress!
                parallelFor(parts) { part, _ in
                    let r = chunk(part, of: parts, total: rows)
                    let start = r.lowerBound * cols
                    activationGradient(pg + start, ps + start, activation, rows: r.count, cols: cols, into: pz + start)
                }
            }
        }
    }
}

/// The kernel of `activationGradient` on `rows` rows of `cols` values: dy copied into dz, then
/// the one activation table's backward (Activations.swift). `s` is the output, or for silu/gelu
/// the input, which is all that table reads for them.
func activationGradient(_ dy: UnsafePointer<Float>, _ s: UnsafePointer<Float>, _ activation: Activation,
                        rows: Int, cols: Int, into dz: UnsafeMutablePointer<Float>) {
    dz.update(from: dy, count: rows * cols)
    activationBackward(dz, output: s, input: s, rows: rows, cols: cols, activation)
}

/// sums (cols) += Σ over the rows of m (rows × cols).
func addColumnSums(_ m: UnsafePointer<Float>, rows: Int, cols: Int, into sums: UnsafeMutablePointer<Float>) {
    let parts = max(1, min(ThreadPool.shared.threadCount, rows / 256))
    var partial = [Float](repeating: 0, count: parts * cols)  // (parts, cols)
    partial.withUnsafeMutableBufferPointer { pp in
        let pp = pp.baseAddress!
        parallelFor(parts) { part, _ in
            let acc = pp + part * cols
            for r in chunk(part, of: parts, total: rows) {
                let row = m + r * cols
                for j in 0..<cols { acc[j] += row[j] }
            }
        }
        for part in 0..<parts {
            for j in 0..<cols { sums[j] += pp[part * cols + j] }
        }
    }
}

/// How one convolution's backward pass is cut: tasks of `taskRows` consecutive output
/// rows (the last may be shorter), each walked in tiles of at most `tileRows`.
struct ConvBackwardTiling {
    /// Output pixels of the batch: N·OH·OW.
    let rows: Int
    let taskRows: Int
    let tileRows: Int
    var tasks: Int { (rows + taskRows - 1) / taskRows }

    /// `scatters`: the pass adds patches into dx (an input gradient through im2col), so a
    /// task must own whole samples.
    init(_ g: ConvGeometry, batch: Int, scatters: Bool, workspace: Workspace, threads: Int) {
        let forward = ConvTiling(g, batch: batch, workspace: workspace, threads: threads)
        rows = forward.rows
        guard scatters else {
            taskRows = forward.tileRows
            tileRows = forward.tileRows
            return
        }
        let pixels = g.oh * g.ow
        let fit = max(16, workspace.floatsPerWorker / g.k)
        if pixels <= fit {
            // Several samples per tile, but enough tasks for every thread.
            let samples = max(1, min(fit / pixels, (batch + threads - 1) / threads))
            taskRows = samples * pixels
            tileRows = taskRows
        } else {
            let tiles = (pixels + fit - 1) / fit
            taskRows = pixels
            tileRows = (pixels + tiles - 1) / tiles
        }
    }
}

/// From dz (N, OH, OW, O), the gradient at the pre-activation of a convolution of
/// x (N, H, W, C) with kernel (KH, KW, C, O): adds Aᵀ·dz into dKernel (KH, KW, C, O) when
/// given, and writes dx (N, H, W, C) when given.
func conv2DBackward(_ x: UnsafePointer<Float>, batch: Int, _ g: ConvGeometry, kernel: UnsafePointer<Float>,
                    dz: UnsafePointer<Float>, dKernel: UnsafeMutablePointer<Float>?,
                    dx: UnsafeMutablePointer<Float>?, workspace: Workspace) {
    guard dKernel != nil || dx != nil else { return }
    let threads = ThreadPool.shared.threadCount
    let scatters = dx != nil && !g.isPointwise
    let plan = ConvBackwardTiling(g, batch: batch, scatters: scatters, workspace: workspace, threads: threads)
    let k = g.k, o = g.o, pixels = g.oh * g.ow
    // A worker's slice holds its im2col tile (M×K). The tasks are cut into `groups` fixed runs,
    // each summing its dKernel partial (K×O) in task order, and the partials are added in group
    // order: the result does not depend on which thread ran what, so a seeded run repeats
    // bit for bit.
    let colFloats = g.isPointwise ? 0 : plan.tileRows * k
    workspace.reserve(workers: threads, floats: max(colFloats, 1))
    let groups = max(1, min(threads, plan.tasks))
    let partialFloats = dKernel == nil ? 0 : k * o
    let partials = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, groups * partialFloats))
    defer { partials.deallocate() }
    parallelFor(groups, maxThreads: threads) { group, worker in
        let col = workspace.slice(worker)
        let partial = partials.baseAddress! + group * partialFloats
        var started = false
        for t in chunk(group, of: groups, total: plan.tasks) {
            let task = t * plan.taskRows ..< min(plan.rows, (t + 1) * plan.taskRows)
            if scatters, let dx {
                let imageFloats = g.h * g.w * g.c
                (dx + task.lowerBound / pixels * imageFloats)
                    .update(repeating: 0, count: task.count / pixels * imageFloats)
            }
            var first = task.lowerBound
            while first < task.upperBound {
                let m = min(task.upperBound - first, plan.tileRows)
                let a: UnsafePointer<Float>
                if g.isPointwise {
                    a = x + first * k
                } else {
                    im2col(x, g, rows: first ..< first + m, into: col)
                    a = UnsafePointer(col)
                }
                let dzTile = dz + first * o
                if dKernel != nil {
                    GEMM.sgemm(transA: true, m: k, n: o, k: m, a: a, lda: k, b: dzTile, ldb: o,
                               beta: started ? 1 : 0, c: partial, ldc: o)
                    started = true
                }
                if let dx {
                    if g.isPointwise {
                        GEMM.sgemm(transB: true, m: m, n: k, k: o, a: dzTile, lda: o, b: kernel, ldb: o,
                                   c: dx + first * k, ldc: k)
                    } else {
                        // The tile's patches are no longer needed: their gradients take their place.
                        GEMM.sgemm(transB: true, m: m, n: k, k: o, a: dzTile, lda: o, b: kernel, ldb: o,
                                   c: col, ldc: k)
                        col2im(col, g, rows: first ..< first + m, into: dx)
                    }
                }
                first += m
            }
        }
        if !started && partialFloats > 0 { partial.update(repeating: 0, count: partialFloats) }
    }
    guard let dKernel else { return }
    let total = k * o
    let parts = max(1, min(threads * 4, total / 4096))
    parallelFor(parts, maxThreads: threads) { part, _ in
        let r = chunk(part, of: parts, total: total)
        for group in 0..<groups {
            let src = partials.baseAddress! + group * partialFloats
            for i in r { dKernel[i] += src[i] }
        }
    }
}

/// Adds the rows of `col` (rows.count × KH·KW·C), patch gradients of output pixels
/// `rows` (flattened over the batch), into dx (N, H, W, C) where im2col took them from;
/// the padding's share is dropped.
func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, rows: Range<Int>,
            into dx: UnsafeMutablePointer<Float>) {
    let pixels = g.oh * g.ow
    let c = g.c
    let patchRow = g.kw * c
    var src = col
    for p in rows {
        let n = p / pixels, q = p - n * pixels
        let i = q / g.ow, j = q - i * g.ow
        let top = i * g.sh - g.padTop, left = j * g.sw - g.padLeft
        let image = dx + n * g.h * g.w * c
        let contiguous = g.dw == 1 && left >= 0 && left + g.kw <= g.w
        for u in 0..<g.kh {
            let yy = top + u * g.dh
            if yy >= 0 && yy < g.h {
                let dst = image + yy * g.w * c
                if contiguous {
                    let d = dst + left * c
                    for t in 0..<patchRow { d[t] += src[t] }
                } else {
                    for v in 0..<g.kw {
                        let xx = left + v * g.dw
                        guard xx >= 0 && xx < g.w else { continue }
                        let d = dst + xx * c, s = src + v * c
                        for t in 0..<c { d[t] += s[t] }
                    }
                }
            }
            src += patchRow
        }
    }
}

/// The gradients of z = conv(x, kernel) + bias, loop by loop in Double: the test oracle.
/// From dz (N, OH, OW, O): dx (N, H, W, C), dKernel (KH, KW, C, O), dBias (O).
func conv2DBackwardNaive(_ x: Tensor, _ g: ConvGeometry, kernel: [Float], dz: Tensor)
    -> (dx: Tensor, dKernel: [Float], dBias: [Float]) {
    let n = x.shape[0]
    var dx = [Double](repeating: 0, count: x.count)
    var dk = [Double](repeating: 0, count: kernel.count)
    var db = [Double](repeating: 0, count: g.o)
    for b in 0..<n {
        for i in 0..<g.oh {
            for j in 0..<g.ow {
                for o in 0..<g.o {
                    let d = Double(dz.values[((b * g.oh + i) * g.ow + j) * g.o + o])
                    db[o] += d
                    for u in 0..<g.kh {
                        let yy = i * g.sh + u * g.dh - g.padTop
                        guard yy >= 0 && yy < g.h else { continue }
                        for v in 0..<g.kw {
                            let xx = j * g.sw + v * g.dw - g.padLeft
                            guard xx >= 0 && xx < g.w else { continue }
                            for ch in 0..<g.c {
                                let xi = ((b * g.h + yy) * g.w + xx) * g.c + ch
                                let ki = ((u * g.kw + v) * g.c + ch) * g.o + o
                                dx[xi] += d * Double(kernel[ki])
                                dk[ki] += d * Double(x.values[xi])
                            }
                        }
                    }
                }
            }
        }
    }
    return (Tensor(shape: x.shape, values: dx.map { Float($0) }), dk.map { Float($0) }, db.map { Float($0) })
}

// MARK: The Keras kind

/// Keras `Conv2D` (also read as `Convolution2D`). `groups` = 1 runs as Conv2DLayer; `groups` = the
/// number of input channels (ConvNeXt's depthwise convolutions, kernel (KH, KW, 1, O)) as
/// DepthwiseConv2D with multiplier O / C — the same kernel layout; any other group count that
/// divides both the channels and the filters (RegNet's) as GroupedConv2DLayer.
package struct Conv2DConfig: SingleInputOp, Equatable {
    package var filters: Int
    package var kernelSize: (h: Int, w: Int)
    package var strides: (h: Int, w: Int)
    package var padding: Padding
    package var dilation: (h: Int, w: Int)
    package var useBias: Bool
    package var activation: Activation
    package var groups = 1

    package init(filters: Int, kernelSize: (h: Int, w: Int), strides: (h: Int, w: Int) = (1, 1),
                padding: Padding = .valid, dilation: (h: Int, w: Int) = (1, 1),
                useBias: Bool = true, activation: Activation = .linear, groups: Int = 1) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides
        self.padding = padding; self.dilation = dilation; self.useBias = useBias
        self.activation = activation; self.groups = groups
    }

    package static func == (a: Conv2DConfig, b: Conv2DConfig) -> Bool {
        a.filters == b.filters && a.kernelSize == b.kernelSize && a.strides == b.strides
            && a.padding == b.padding && a.dilation == b.dilation && a.useBias == b.useBias
            && a.activation == b.activation && a.groups == b.groups
    }

    package static var kerasClassNames: [String] { ["Conv2D"] }
    package static var kerasAliases: [String] { ["Convolution2D"] }

    package init(keras k: KerasLayerConfig) throws {
        let groups = try k.size(k["groups"] ?? 1, "groups")
        self.init(filters: try k.int("filters"),
                  kernelSize: try k.pair("kernel_size"),
                  strides: try k.pair("strides", default: 1),
                  padding: try k.padding(),
                  dilation: try k.pair("dilation_rate", default: 1),
                  useBias: k.bool("use_bias", default: true),
                  activation: try k.activation(), groups: groups)
        guard filters % groups == 0 else { throw k.fail("layer '\(k.name)': \(filters) filters in \(groups) groups (Keras refuses it too)") }
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["filters"] = filters
        c["kernel_size"] = [kernelSize.h, kernelSize.w]
        c["strides"] = [strides.h, strides.w]
        c["padding"] = padding.rawValue
        c["data_format"] = "channels_last"
        c["dilation_rate"] = [dilation.h, dilation.w]
        c["groups"] = groups
        c["activation"] = activation.rawValue
        c["use_bias"] = useBias
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (h, w, c) = try spatialInput(input, layer: layer)
        guard c % groups == 0 else {
            throw XferError.badInput(layer, "Conv2D in \(groups) groups of \(c) input channels: the groups must divide the channels (Keras refuses it too)",
                                     hint: "check the model's input shape (--input-shape) or the layer's groups")
        }
        let oh = windowOutputSize(input: h, kernel: kernelSize.h, stride: strides.h, dilation: dilation.h, padding: padding)
        let ow = windowOutputSize(input: w, kernel: kernelSize.w, stride: strides.w, dilation: dilation.w, padding: padding)
        guard oh > 0, ow > 0 else {
            throw XferError.badInput(layer, "input \(shapeText(input)) is too small for a \(kernelSize.h)×\(kernelSize.w) convolution",
                                     hint: "check --input-shape")
        }
        return [oh, ow, filters]
    }

    package func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        var w: [ExpectedWeight] = [(.kernel, [kernelSize.h, kernelSize.w, (input.last ?? 0) / groups, filters], true)]
        if useBias { w.append((.bias, [filters], true)) }
        return w
    }

    package var hasWeights: Bool { true }
    package var isFeature: Bool { true }

    package func forwardFLOPs(input: [Int]) -> Double {
        guard let out = try? outputShape(input: input, layer: ""), out.count == 3, let cin = input.last else { return 0 }
        return 2 * Double(out[0] * out[1] * filters) * Double(kernelSize.h * kernelSize.w * cin / groups)
    }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        if groups > 1, inputShape.count == 3, groups != inputShape[2] {
            _ = try outputShape(input: inputShape, layer: spec.name)
            return try GroupedConv2DLayer(spec: spec, config: self, inputShape: inputShape)
        }
        if groups > 1 {
            // groups = channels: a depthwise convolution whose (KH, KW, 1, O) kernel is
            // DepthwiseConv2D's (KH, KW, C, O/C) in memory.
            _ = try outputShape(input: inputShape, layer: spec.name)
            let c = inputShape[2]
            let depthwise = DepthwiseConv2DConfig(kernelSize: kernelSize, strides: strides, padding: padding,
                                                  depthMultiplier: filters / c, dilation: dilation, useBias: useBias, activation: activation)
            let kernel = try spec.values(.kernel, shape: [kernelSize.h, kernelSize.w, 1, filters])
            let bias = useBias ? try spec.values(.bias, shape: [filters]) : nil
            try spec.onlyWeights(useBias ? [.kernel, .bias] : [.kernel])
            return try DepthwiseConv2DLayer(name: spec.name, config: depthwise, inputShape: inputShape, kernel: kernel, bias: bias,
                                            kernelRole: .kernel)
        }
        return try Conv2DLayer(spec: spec, config: self, inputShape: inputShape)
    }
}
