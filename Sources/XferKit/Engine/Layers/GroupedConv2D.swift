// Grouped Conv2D: Keras `Conv2D` with 1 < groups < input channels (RegNet's group convolutions).
// TensorFlow's definition: the C input channels are G consecutive slices of C/G, the O filters
// G consecutive slices of O/G, and group g convolves input slice g with kernel columns
// g·O/G ..< (g+1)·O/G of the one (KH, KW, C/G, O) kernel Keras stores:
//
//   y[n,i,j,o] = act(b[o] + Σ_{u,v,c<C/G} x_pad[n, i·sh + u·dh, j·sw + v·dw, g·C/G + c] · W[u,v,c,o]),
//   g = o / (O/G)
//
// groups = 1 is Conv2DLayer, groups = C DepthwiseConv2DLayer (Conv2DConfig.makeLayer decides).
//
// Fast path: each group is an ordinary convolution of C/G channels into O/G filters, run by
// Conv2D's im2col + SGEMM kernels (`conv2DForward` / `conv2DBackward`, threaded inside). The
// input's channel slices are gathered group-major into (G, N·H·W, C/G), the kernel's column
// slices into (G, KH·KW·C/G, O/G); each group's output (N·OH·OW, O/G) is scattered back into
// its channel slice of y. Bias is added per group, the activation on the whole output (softmax
// reads every channel). Backward gathers dz the same way, runs each group's backward and
// scatters dx and dKernel back, so the layer's weights and gradients stay in Keras's layout
// (`withParameters`, the optimizers and the writers see a Conv2D's kernel and bias).
// Inference passes (`DirectConvolution.wanted`: predict, frozen layers, the feature cache) run
// on oneDNN's grouped direct convolution instead, on the NHWC tensors as they are, the bias and
// the activations it fuses in its epilogue; where it has no JIT kernel for the shape, or under
// `--conv im2col`, they run by groups as above. Winograd is not used here.
//
// `groupedConv2DForwardNaive` / `groupedConv2DBackwardNaive` are the definition loop by loop in
// Double, the oracles of the tests.

/// A Keras `Conv2D` with 1 < `groups` < input channels.
final class GroupedConv2DLayer: KernelBiasLayer {
    let name: String
    /// Changes once, before the first pass, when a ZeroPadding2D before it is folded into its
    /// padding (Execution/InferenceFolding.swift).
    var inputShape: [Int]
    let outputShape: [Int]
    /// Its activation may change once, before the first pass, when a BatchNormalization and the
    /// activation after it are folded in (Execution/InferenceFolding.swift).
    var config: Conv2DConfig
    let groups: Int
    /// One group's convolution: C/G channels in, O/G filters.
    var geometry: ConvGeometry
    /// (KH, KW, C/G, O), Keras's layout.
    var kernel: [Float] {
        // The oneDNN path keeps the kernel in its own layout; a new version reorders it again.
        didSet { kernelVersion &+= 1 }
    }
    private(set) var kernelVersion = 0
    /// The oneDNN primitives of inference passes (Engine/DirectConvolution.swift).
    private(set) var direct: DirectConvolution?
    /// (O), nil when `use_bias=False`.
    var bias: [Float]?
    /// (N, H, W, C): the last input, kept only when the context asks.
    var savedInput: Tensor?
    /// (N, OH, OW, O): the output, or for silu/gelu the pre-activation, kept only when the context asks.
    var savedActivation: Tensor?

    var training = false
    var trainable = false
    /// Keras's layout, like the weights; allocated when the layer first trains.
    var dKernel: [Float] = []
    var dBias: [Float] = []

    init(name: String, config: Conv2DConfig, inputShape: [Int], kernel: [Float], bias: [Float]?) throws {
        try requireRank(inputShape, 3, layer: name, kind: "Conv2D")
        let g = config.groups, c = inputShape[2]
        guard g > 1, c % g == 0, config.filters % g == 0 else {
            throw XferError.badInput("layer '\(name)'", "Conv2D in \(g) groups of \(c) channels and \(config.filters) filters: both must divide evenly (Keras refuses it too)")
        }
        guard config.filters > 0, config.kernelSize.h > 0, config.kernelSize.w > 0,
              config.strides.h > 0, config.strides.w > 0, config.dilation.h > 0, config.dilation.w > 0 else {
            throw XferError.badInput("layer '\(name)'", "Conv2D with a zero size: filters \(config.filters), kernel \(config.kernelSize), strides \(config.strides), dilation \(config.dilation)")
        }
        if (config.strides.h > 1 || config.strides.w > 1) && (config.dilation.h > 1 || config.dilation.w > 1) {
            throw XferError.badInput("layer '\(name)'", "Conv2D with both strides \(config.strides) and dilation \(config.dilation) above 1 (Keras rejects it too)")
        }
        var one = config
        one.filters = config.filters / g
        guard let geometry = ConvGeometry(input: [inputShape[0], inputShape[1], c / g], one) else {
            throw XferError.badInput("layer '\(name)'", "input \(inputShape) is smaller than the \(config.kernelSize) kernel with dilation \(config.dilation) and `valid` padding")
        }
        precondition(kernel.count == geometry.k * config.filters && (bias?.count ?? config.filters) == config.filters)
        self.name = name; self.config = config; self.groups = g; self.inputShape = inputShape
        self.geometry = geometry; self.kernel = kernel; self.bias = bias
        self.outputShape = [geometry.oh, geometry.ow, config.filters]
    }

    convenience init(spec: LayerSpec, config: Conv2DConfig, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: spec.name, kind: "Conv2D")
        let kernelShape = [config.kernelSize.h, config.kernelSize.w, inputShape[2] / max(config.groups, 1), config.filters]
        let kernel = try spec.values(.kernel, shape: kernelShape)
        let bias = config.useBias ? try spec.values(.bias, shape: [config.filters]) : nil
        try spec.onlyWeights(config.useBias ? [.kernel, .bias] : [.kernel])
        try self.init(name: spec.name, config: config, inputShape: inputShape, kernel: kernel, bias: bias)
    }

    /// Input pixels and output pixels of a batch of `n`.
    private func pixels(_ n: Int) -> (input: Int, output: Int) {
        (n * geometry.h * geometry.w, n * geometry.oh * geometry.ow)
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        let activation = config.activation
        if DirectConvolution.wanted(context) {
            let done = x.values.withUnsafeBufferPointer { px in
                kernel.withUnsafeBufferPointer { pk in
                    y.values.withUnsafeMutableBufferPointer { py in
                        withOptionalArray(bias) { pb in
                            directConvolution().forward(px.baseAddress!, batch: n, kernel: pk.baseAddress!, bias: pb,
                                                        version: kernelVersion, workspace: context.workspace,
                                                        into: py.baseAddress!)
                        }
                    }
                }
            }
            if done {
                // What oneDNN did not fuse; nothing is kept, the pass keeps nothing for a backward.
                let rest = activation == direct!.fusedActivation ? Activation.linear : activation
                activate(&y, rest)
                savedInput = context.release(x)
                savedActivation = nil
                return y
            }
        }
        forwardByGroups(x, into: &y, context)
        // silu/gelu derivatives need the pre-activation: keep it, then activate.
        let keepPreActivation = context.keepForBackward && activationBackwardNeedsInput(activation)
        if !keepPreActivation { activate(&y, activation) }
        savedInput = context.release(x)
        savedActivation = keptForActivationGradient(&y, activation, preActivationKept: keepPreActivation, context)
        return y
    }

    /// y = the convolution plus the bias, before the activation: each group on Conv2D's kernels.
    private func forwardByGroups(_ x: borrowing Tensor, into y: inout Tensor, _ context: ForwardContext) {
        let n = x.shape[0], g = geometry, groups = self.groups
        let (inPixels, outPixels) = pixels(n)
        var xs = context.pool.tensor([groups * inPixels * g.c], fitted: false)
        var ys = context.pool.tensor([groups * outPixels * g.o], fitted: false)
        let kg = groupSlices(kernel, rows: g.k)
        x.values.withUnsafeBufferPointer { px in
            xs.values.withUnsafeMutableBufferPointer { pxs in
                gatherGroups(px.baseAddress!, rows: inPixels, groups: groups, width: g.c, into: pxs.baseAddress!)
            }
        }
        xs.values.withUnsafeBufferPointer { pxs in
            kg.withUnsafeBufferPointer { pk in
                ys.values.withUnsafeMutableBufferPointer { pys in
                    let pb = bias?.withUnsafeBufferPointer { $0.baseAddress! }
                    for group in 0..<groups {
                        conv2DForward(pxs.baseAddress! + group * inPixels * g.c, batch: n, g,
                                      kernel: pk.baseAddress! + group * g.k * g.o, bias: pb.map { $0 + group * g.o },
                                      .linear, into: pys.baseAddress! + group * outPixels * g.o, workspace: context.workspace)
                    }
                }
            }
        }
        ys.values.withUnsafeBufferPointer { pys in
            y.values.withUnsafeMutableBufferPointer { py in
                scatterGroups(pys.baseAddress!, rows: outPixels, groups: groups, width: g.o, into: py.baseAddress!, adding: false)
            }
        }
        context.pool.recycle(xs)
        context.pool.recycle(ys)
    }

    /// The oneDNN primitives of inference passes, made on first use with the layer's final geometry
    /// (after any folding): all C channels in, all O filters out, in `groups` groups.
    private func directConvolution() -> DirectConvolution {
        if let direct { return direct }
        let made = DirectConvolution(ConvGeometry(geometry, timesGroups: groups), groups: groups,
                                     fusingBias: bias != nil, activation: config.activation)
        direct = made
        return made
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard trainable || needInputGradient else { return nil }
        guard let x = savedInput else {
            preconditionFailure("layer '\(name)': backward without a forward that kept its input (keepForBackward)")
        }
        let n = x.shape[0], g = geometry, groups = self.groups
        precondition(dy.shape == [n] + outputShape, "layer '\(name)': dy has shape \(dy.shape), expected \([n] + outputShape)")
        let (inPixels, outPixels) = pixels(n)
        // (N, OH, OW, O): the gradient at the pre-activation.
        let dz = preActivationGradient(dy, saved: savedActivation, config.activation, context)
        if trainable {
            allocateGradients()
            if bias != nil { addBiasGradient(dz, into: &dBias) }
        }
        var xs = context.pool.tensor([groups * inPixels * g.c], fitted: false)
        var dzs = context.pool.tensor([groups * outPixels * g.o], fitted: false)
        var dxs = needInputGradient ? context.pool.tensor([groups * inPixels * g.c], fitted: false).values : []
        var dkg = trainable ? [Float](repeating: 0, count: kernel.count) : []
        let kg = groupSlices(kernel, rows: g.k)
        x.values.withUnsafeBufferPointer { px in
            xs.values.withUnsafeMutableBufferPointer { pxs in
                gatherGroups(px.baseAddress!, rows: inPixels, groups: groups, width: g.c, into: pxs.baseAddress!)
            }
        }
        dz.values.withUnsafeBufferPointer { pz in
            dzs.values.withUnsafeMutableBufferPointer { pzs in
                gatherGroups(pz.baseAddress!, rows: outPixels, groups: groups, width: g.o, into: pzs.baseAddress!)
            }
        }
        if config.activation != .linear { context.pool.recycle(dz) }
        xs.values.withUnsafeBufferPointer { pxs in
            dzs.values.withUnsafeBufferPointer { pzs in
                kg.withUnsafeBufferPointer { pk in
                    withStorage(&dkg, if: trainable) { pdk in
                        withStorage(&dxs, if: needInputGradient) { pdx in
                            for group in 0..<groups {
                                conv2DBackward(pxs.baseAddress! + group * inPixels * g.c, batch: n, g,
                                               kernel: pk.baseAddress! + group * g.k * g.o,
                                               dz: pzs.baseAddress! + group * outPixels * g.o,
                                               dKernel: pdk.map { $0 + group * g.k * g.o },
                                               dx: pdx.map { $0 + group * inPixels * g.c }, workspace: context.workspace)
                            }
                        }
                    }
                }
            }
        }
        context.pool.recycle(xs)
        context.pool.recycle(dzs)
        if trainable {
            dkg.withUnsafeBufferPointer { src in
                dKernel.withUnsafeMutableBufferPointer { dst in
                    scatterGroups(src.baseAddress!, rows: g.k, groups: groups, width: g.o, into: dst.baseAddress!, adding: true)
                }
            }
        }
        guard needInputGradient else { return nil }
        var dx = context.output([n] + inputShape)
        dxs.withUnsafeBufferPointer { src in
            dx.values.withUnsafeMutableBufferPointer { dst in
                scatterGroups(src.baseAddress!, rows: inPixels, groups: groups, width: g.c, into: dst.baseAddress!, adding: false)
            }
        }
        context.pool.recycle(Tensor(shape: [dxs.count], values: dxs))
        return dx
    }

    /// (G, rows, width) from `matrix` (rows, G·width): the kernel's column slices, group-major.
    private func groupSlices(_ matrix: [Float], rows: Int) -> [Float] {
        let width = config.filters / groups
        return [Float](unsafeUninitializedCapacity: matrix.count) { dst, count in
            matrix.withUnsafeBufferPointer { src in
                gatherGroups(src.baseAddress!, rows: rows, groups: groups, width: width, into: dst.baseAddress!)
            }
            count = matrix.count
        }
    }
}

/// dst (G, rows, width) ← src (rows, G·width): each row's G channel slices, group-major.
func gatherGroups(_ src: UnsafePointer<Float>, rows: Int, groups: Int, width: Int, into dst: UnsafeMutablePointer<Float>) {
    let stride = groups * width
    let parts = max(1, min(ThreadPool.shared.threadCount * 4, rows * stride / 16384))
    parallelFor(parts) { part, _ in
        for r in chunk(part, of: parts, total: rows) {
            let row = src + r * stride
            for g in 0..<groups {
                (dst + (g * rows + r) * width).update(from: row + g * width, count: width)
            }
        }
    }
}

/// dst (rows, G·width) ← src (G, rows, width), written or (`adding`) added: `gatherGroups` undone.
func scatterGroups(_ src: UnsafePointer<Float>, rows: Int, groups: Int, width: Int,
                   into dst: UnsafeMutablePointer<Float>, adding: Bool) {
    let stride = groups * width
    let parts = max(1, min(ThreadPool.shared.threadCount * 4, rows * stride / 16384))
    parallelFor(parts) { part, _ in
        for r in chunk(part, of: parts, total: rows) {
            let row = dst + r * stride
            for g in 0..<groups {
                let s = src + (g * rows + r) * width, d = row + g * width
                if adding {
                    for t in 0..<width { d[t] += s[t] }
                } else {
                    d.update(from: s, count: width)
                }
            }
        }
    }
}

/// The definition, loop by loop in Double: the test oracle. `g` is one group's geometry
/// (C/G channels, O/G filters); x (N, H, W, C), kernel (KH, KW, C/G, O), bias (O) → (N, OH, OW, O).
func groupedConv2DForwardNaive(_ x: Tensor, _ g: ConvGeometry, groups: Int, kernel: [Float], bias: [Float]?,
                               _ activation: Activation) -> Tensor {
    let n = x.shape[0], c = g.c * groups, o = g.o * groups
    var y = Tensor(shape: [n, g.oh, g.ow, o])
    for b in 0..<n {
        for i in 0..<g.oh {
            for j in 0..<g.ow {
                for f in 0..<o {
                    let first = f / g.o * g.c  // the group's first input channel
                    var sum = Double(bias?[f] ?? 0)
                    for u in 0..<g.kh {
                        let yy = i * g.sh + u * g.dh - g.padTop
                        guard yy >= 0 && yy < g.h else { continue }
                        for v in 0..<g.kw {
                            let xx = j * g.sw + v * g.dw - g.padLeft
                            guard xx >= 0 && xx < g.w else { continue }
                            for ch in 0..<g.c {
                                let xv = x.values[((b * g.h + yy) * g.w + xx) * c + first + ch]
                                let kv = kernel[((u * g.kw + v) * g.c + ch) * o + f]
                                sum += Double(xv) * Double(kv)
                            }
                        }
                    }
                    y.values[((b * g.oh + i) * g.ow + j) * o + f] = Float(sum)
                }
            }
        }
    }
    activate(&y, activation)
    return y
}

/// The gradients of z = groupedConv(x, kernel) + bias, loop by loop in Double: the test oracle.
/// From dz (N, OH, OW, O): dx (N, H, W, C), dKernel (KH, KW, C/G, O), dBias (O).
func groupedConv2DBackwardNaive(_ x: Tensor, _ g: ConvGeometry, groups: Int, kernel: [Float], dz: Tensor)
    -> (dx: Tensor, dKernel: [Float], dBias: [Float]) {
    let n = x.shape[0], c = g.c * groups, o = g.o * groups
    var dx = [Double](repeating: 0, count: x.count)
    var dk = [Double](repeating: 0, count: kernel.count)
    var db = [Double](repeating: 0, count: o)
    for b in 0..<n {
        for i in 0..<g.oh {
            for j in 0..<g.ow {
                for f in 0..<o {
                    let first = f / g.o * g.c
                    let d = Double(dz.values[((b * g.oh + i) * g.ow + j) * o + f])
                    db[f] += d
                    for u in 0..<g.kh {
                        let yy = i * g.sh + u * g.dh - g.padTop
                        guard yy >= 0 && yy < g.h else { continue }
                        for v in 0..<g.kw {
                            let xx = j * g.sw + v * g.dw - g.padLeft
                            guard xx >= 0 && xx < g.w else { continue }
                            for ch in 0..<g.c {
                                let xi = ((b * g.h + yy) * g.w + xx) * c + first + ch
                                let ki = ((u * g.kw + v) * g.c + ch) * o + f
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

extension ConvGeometry {
    /// The whole layer's geometry from one group's `g`: `groups` times its channels and filters.
    init(_ g: ConvGeometry, timesGroups groups: Int) {
        h = g.h; w = g.w; c = g.c * groups
        kh = g.kh; kw = g.kw; o = g.o * groups
        sh = g.sh; sw = g.sw; dh = g.dh; dw = g.dw
        padTop = g.padTop; padLeft = g.padLeft
        oh = g.oh; ow = g.ow
    }
}
