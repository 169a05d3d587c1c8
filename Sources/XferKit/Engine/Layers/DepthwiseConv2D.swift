// DepthwiseConv2D: each input channel c convolved with its own M = depth_multiplier filters
// (TensorFlow's `depthwise_conv2d`, cross-correlation, no kernel flip), output channel c·M + m:
//
//   y[n,i,j,c·M+m] = act(b[c·M+m] + Σ_{u,v} x_pad[n, i·sh + u·dh, j·sw + v·dw, c] · W[u,v,c,m])
//
// with `same`/`valid` padding as Conv2D pads (Engine/Padding.swift), kernel (KH, KW, C, M) as
// Keras stores `depthwise_kernel`. There is no reduction over channels, so no GEMM: the fast
// path (`depthwiseForward`) walks output pixels, and for each tap (u, v) adds x's channel vector
// times the tap's weight vector — both contiguous in NHWC, so the inner loop vectorises. Rows
// (n, i) of the output are the tasks on the pool.
//
// Backward, from dz = dy·act'(…) (N, OH, OW, C·M):
//   dBias[k]     = Σ_{n,i,j} dz[n,i,j,k]
//   dW[u,v,c,m]  = Σ_{n,i,j} dz[n,i,j,c·M+m] · x_pad[n, i·sh+u·dh, j·sw+v·dw, c]
//   dx[n,y,x,c]  = Σ over the (i, j, u, v) that read it of Σ_m dz[n,i,j,c·M+m] · W[u,v,c,m]
// Samples are cut into a fixed number of runs, each writing its samples' dx and its own dW
// partial, summed in run order: the result does not depend on which thread ran what.
//
// The inference forward runs on oneDNN's depthwise convolution instead where it can
// (Engine/DirectConvolution.swift); this loop stays the reference and runs `--conv im2col`.
//
// `depthwiseForwardNaive` and `depthwiseBackwardNaive` are the loop-by-loop definitions in
// Double, the oracles in tests. SeparableConv2D (SeparableConv2D.swift) runs these kernels too.
//
// The Keras kind, `DepthwiseConv2DConfig` (end of file).

/// The sizes of one depthwise convolution: the convolution's geometry with `o` = C·M.
struct DepthwiseGeometry: Equatable {
    let conv: ConvGeometry
    let multiplier: Int

    init(conv: ConvGeometry, multiplier: Int) {
        self.conv = conv
        self.multiplier = multiplier
    }

    init?(input: [Int], kernelSize: (h: Int, w: Int), strides: (h: Int, w: Int), padding: Padding,
          dilation: (h: Int, w: Int), multiplier: Int) {
        let shape = Conv2DConfig(filters: input[2] * multiplier, kernelSize: kernelSize, strides: strides,
                                 padding: padding, dilation: dilation)
        guard let g = ConvGeometry(input: input, shape) else { return nil }
        conv = g
        self.multiplier = multiplier
    }
}

/// A Keras `DepthwiseConv2D` layer.
final class DepthwiseConv2DLayer: KernelBiasLayer {
    let name: String
    /// Input shape, activation and geometry may change before the first pass (Execution/InferenceFolding.swift).
    var inputShape: [Int]
    let outputShape: [Int]
    var config: DepthwiseConv2DConfig
    var geometry: DepthwiseGeometry
    /// `depthwise_kernel`, or `kernel` for a Conv2D with groups = channels.
    let kernelRole: WeightRole
    /// (KH, KW, C, M).
    var kernel: [Float] {
        // The oneDNN path keeps the kernel in its own layout; a new version reorders it again.
        didSet { kernelVersion &+= 1 }
    }
    private(set) var kernelVersion = 0
    /// The oneDNN primitives of inference passes, made on first use (Engine/DirectConvolution.swift).
    var direct: DirectConvolution?
    /// (C·M), nil when `use_bias=False`.
    var bias: [Float]?
    var savedInput: Tensor?
    /// The output (or for silu/gelu the pre-activation), kept for backward when the activation has one.
    var savedActivation: Tensor?
    var training = false
    var trainable = false
    var dKernel: [Float] = []
    var dBias: [Float] = []

    init(name: String, config: DepthwiseConv2DConfig, inputShape: [Int], kernel: [Float], bias: [Float]?,
         kernelRole: WeightRole = .depthwiseKernel) throws {
        try requireRank(inputShape, 3, layer: name, kind: "DepthwiseConv2D")
        guard let g = DepthwiseGeometry(input: inputShape, kernelSize: config.kernelSize, strides: config.strides,
                                        padding: config.padding, dilation: config.dilation,
                                        multiplier: config.depthMultiplier) else {
            throw XferError.badInput("layer '\(name)'", "input \(inputShape) is smaller than the \(config.kernelSize) kernel with `valid` padding")
        }
        precondition(kernel.count == g.conv.kh * g.conv.kw * g.conv.o && (bias?.count ?? g.conv.o) == g.conv.o)
        self.name = name; self.config = config; self.inputShape = inputShape
        self.geometry = g; self.kernel = kernel; self.bias = bias; self.kernelRole = kernelRole
        self.outputShape = [g.conv.oh, g.conv.ow, g.conv.o]
    }

    convenience init(spec: LayerSpec, config: DepthwiseConv2DConfig, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: spec.name, kind: "DepthwiseConv2D")
        let kernel = try spec.values(.depthwiseKernel, shape: config.kernelShape(channels: inputShape[2]))
        let units = inputShape[2] * config.depthMultiplier
        let bias = config.useBias ? try spec.values(.bias, shape: [units]) : nil
        try spec.onlyWeights(config.useBias ? [.depthwiseKernel, .bias] : [.depthwiseKernel])
        try self.init(name: spec.name, config: config, inputShape: inputShape, kernel: kernel, bias: bias)
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var y = context.output([n] + outputShape)
        let activation = config.activation
        let keepPreActivation = context.keepForBackward && activationBackwardNeedsInput(activation)
        x.values.withUnsafeBufferPointer { px in
            kernel.withUnsafeBufferPointer { pk in
                y.values.withUnsafeMutableBufferPointer { py in
                    withOptionalArray(bias) { pb in
                        let act = keepPreActivation ? Activation.linear : activation
                        if act == activation, DirectConvolution.wanted(context),
                           directConvolution().forward(px.baseAddress!, batch: n, kernel: pk.baseAddress!, bias: pb,
                                                       version: kernelVersion, workspace: context.workspace,
                                                       into: py.baseAddress!) {
                            let rest = act == direct!.fusedActivation ? Activation.linear : act
                            parallelBiasActivate(py.baseAddress!, rows: n * geometry.conv.oh * geometry.conv.ow,
                                                 cols: geometry.conv.o, bias: nil, rest)
                        } else {
                            depthwiseForward(px.baseAddress!, batch: n, geometry, kernel: pk.baseAddress!, bias: pb,
                                             act, into: py.baseAddress!)
                        }
                    }
                }
            }
        }
        savedInput = context.release(x)
        savedActivation = keptForActivationGradient(&y, activation, preActivationKept: keepPreActivation, context)
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard trainable || needInputGradient else { return nil }
        guard let x = savedInput else {
            preconditionFailure("layer '\(name)': backward without a forward that kept its input (keepForBackward)")
        }
        let n = x.shape[0]
        let dz = preActivationGradient(dy, saved: savedActivation, config.activation, context)
        if trainable {
            allocateGradients()
            if bias != nil { addBiasGradient(dz, into: &dBias) }
        }
        var dx = needInputGradient ? context.output([n] + inputShape).values : []
        x.values.withUnsafeBufferPointer { px in
            kernel.withUnsafeBufferPointer { pk in
                dz.values.withUnsafeBufferPointer { pz in
                    withStorage(&dKernel, if: trainable) { pdk in
                        withStorage(&dx, if: needInputGradient) { pdx in
                            depthwiseBackward(px.baseAddress!, batch: n, geometry, kernel: pk.baseAddress!,
                                              dz: pz.baseAddress!, dKernel: pdk, dx: pdx)
                        }
                    }
                }
            }
        }
        if config.activation != .linear { context.pool.recycle(dz) }
        return needInputGradient ? Tensor(shape: [n] + inputShape, values: dx) : nil
    }

    private func directConvolution() -> DirectConvolution {
        if let direct { return direct }
        let made = DirectConvolution(geometry.conv, groups: geometry.conv.c, fusingBias: bias != nil,
                                     activation: config.activation)
        direct = made
        return made
    }
}

/// `body` with a pointer to `array`'s storage, or nil when there is no array.
@inline(__always)
func withOptionalArray<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// y (N, OH, OW, C·M) = act(depthwise(x (N, H, W, C), kernel (KH, KW, C, M)) + bias (C·M)).
func depthwiseForward(_ x: UnsafePointer<Float>, batch: Int, _ d: DepthwiseGeometry, kernel: UnsafePointer<Float>,
                      bias: UnsafePointer<Float>?, _ activation: Activation, into y: UnsafeMutablePointer<Float>) {
    let g = d.conv, m = d.multiplier, c = g.c, cm = g.o
    let rows = batch * g.oh
    let parts = min(rows, ThreadPool.shared.threadCount * 8)
    parallelFor(parts) { part, _ in
        for row in chunk(part, of: parts, total: rows) {
            let n = row / g.oh, i = row - n * g.oh
            let image = x + n * g.h * g.w * c
            let outRow = y + row * g.ow * cm
            for j in 0..<g.ow {
                let out = outRow + j * cm
                if let bias { out.update(from: bias, count: cm) } else { out.update(repeating: 0, count: cm) }
                for u in 0..<g.kh {
                    let yy = i * g.sh + u * g.dh - g.padTop
                    guard yy >= 0 && yy < g.h else { continue }
                    for v in 0..<g.kw {
                        let xx = j * g.sw + v * g.dw - g.padLeft
                        guard xx >= 0 && xx < g.w else { continue }
                        let xp = image + (yy * g.w + xx) * c
                        let wp = kernel + (u * g.kw + v) * cm
                        if m == 1 {
                            for k in 0..<c { out[k] += xp[k] * wp[k] }
                        } else {
                            for k in 0..<c {
                                let xv = xp[k]
                                for t in 0..<m { out[k * m + t] += xv * wp[k * m + t] }
                            }
                        }
                    }
                }
            }
            activate(outRow, rows: g.ow, cols: cm, activation)
        }
    }
}

/// From dz (N, OH, OW, C·M), the gradient at the pre-activation: adds into dKernel (KH, KW, C, M)
/// when given, and writes dx (N, H, W, C) when given.
func depthwiseBackward(_ x: UnsafePointer<Float>, batch: Int, _ d: DepthwiseGeometry, kernel: UnsafePointer<Float>,
                       dz: UnsafePointer<Float>, dKernel: UnsafeMutablePointer<Float>?, dx: UnsafeMutablePointer<Float>?) {
    guard dKernel != nil || dx != nil else { return }
    let g = d.conv, m = d.multiplier, c = g.c, cm = g.o
    let kernelCount = g.kh * g.kw * cm
    let imageFloats = g.h * g.w * c
    let groups = max(1, min(ThreadPool.shared.threadCount, batch))
    let partialFloats = dKernel == nil ? 0 : kernelCount
    let partials = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, groups * partialFloats))
    defer { partials.deallocate() }
    partials.update(repeating: 0)
    parallelFor(groups) { group, _ in
        let partial = partials.baseAddress! + group * partialFloats
        for n in chunk(group, of: groups, total: batch) {
            let image = x + n * imageFloats
            let dImage = dx.map { $0 + n * imageFloats }
            dImage?.update(repeating: 0, count: imageFloats)
            for i in 0..<g.oh {
                for j in 0..<g.ow {
                    let dzp = dz + ((n * g.oh + i) * g.ow + j) * cm
                    for u in 0..<g.kh {
                        let yy = i * g.sh + u * g.dh - g.padTop
                        guard yy >= 0 && yy < g.h else { continue }
                        for v in 0..<g.kw {
                            let xx = j * g.sw + v * g.dw - g.padLeft
                            guard xx >= 0 && xx < g.w else { continue }
                            let offset = (yy * g.w + xx) * c
                            let tap = (u * g.kw + v) * cm
                            if partialFloats > 0 {
                                let xp = image + offset, pk = partial + tap
                                if m == 1 {
                                    for k in 0..<c { pk[k] += dzp[k] * xp[k] }
                                } else {
                                    for k in 0..<c {
                                        for t in 0..<m { pk[k * m + t] += dzp[k * m + t] * xp[k] }
                                    }
                                }
                            }
                            if let dImage {
                                let dxp = dImage + offset, wp = kernel + tap
                                if m == 1 {
                                    for k in 0..<c { dxp[k] += dzp[k] * wp[k] }
                                } else {
                                    for k in 0..<c {
                                        var s: Float = 0
                                        for t in 0..<m { s += dzp[k * m + t] * wp[k * m + t] }
                                        dxp[k] += s
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    guard let dKernel else { return }
    for group in 0..<groups {
        let src = partials.baseAddress! + group * partialFloats
        for i in 0..<kernelCount { dKernel[i] += src[i] }
    }
}

/// The definition, loop by loop, in Double: the test oracle. x (N, H, W, C) → (N, OH, OW, C·M), before the activation.
func depthwiseForwardNaive(_ x: Tensor, _ d: DepthwiseGeometry, kernel: [Float], bias: [Float]?) -> Tensor {
    let g = d.conv, n = x.shape[0]
    var y = [Float](repeating: 0, count: n * g.oh * g.ow * g.o)
    for b in 0..<n {
        for i in 0..<g.oh {
            for j in 0..<g.ow {
                for ch in 0..<g.c {
                    for t in 0..<d.multiplier {
                        let k = ch * d.multiplier + t
                        var s = Double(bias?[k] ?? 0)
                        for u in 0..<g.kh {
                            let yy = i * g.sh + u * g.dh - g.padTop
                            guard yy >= 0 && yy < g.h else { continue }
                            for v in 0..<g.kw {
                                let xx = j * g.sw + v * g.dw - g.padLeft
                                guard xx >= 0 && xx < g.w else { continue }
                                s += Double(x.values[((b * g.h + yy) * g.w + xx) * g.c + ch])
                                    * Double(kernel[(u * g.kw + v) * g.o + k])
                            }
                        }
                        y[((b * g.oh + i) * g.ow + j) * g.o + k] = Float(s)
                    }
                }
            }
        }
    }
    return Tensor(shape: [n, g.oh, g.ow, g.o], values: y)
}

/// The gradients of z = depthwise(x, kernel) + bias, loop by loop in Double: the test oracle.
func depthwiseBackwardNaive(_ x: Tensor, _ d: DepthwiseGeometry, kernel: [Float], dz: Tensor)
    -> (dx: Tensor, dKernel: [Float], dBias: [Float]) {
    let g = d.conv, n = x.shape[0]
    var dx = [Double](repeating: 0, count: x.count)
    var dk = [Double](repeating: 0, count: kernel.count)
    var db = [Double](repeating: 0, count: g.o)
    for b in 0..<n {
        for i in 0..<g.oh {
            for j in 0..<g.ow {
                for k in 0..<g.o {
                    let ch = k / d.multiplier
                    let dv = Double(dz.values[((b * g.oh + i) * g.ow + j) * g.o + k])
                    db[k] += dv
                    for u in 0..<g.kh {
                        let yy = i * g.sh + u * g.dh - g.padTop
                        guard yy >= 0 && yy < g.h else { continue }
                        for v in 0..<g.kw {
                            let xx = j * g.sw + v * g.dw - g.padLeft
                            guard xx >= 0 && xx < g.w else { continue }
                            let xi = ((b * g.h + yy) * g.w + xx) * g.c + ch
                            let ki = (u * g.kw + v) * g.o + k
                            dx[xi] += dv * Double(kernel[ki])
                            dk[ki] += dv * Double(x.values[xi])
                        }
                    }
                }
            }
        }
    }
    return (Tensor(shape: x.shape, values: dx.map { Float($0) }), dk.map { Float($0) }, db.map { Float($0) })
}

// MARK: The Keras kind

/// Keras `DepthwiseConv2D` (channels_last).
struct DepthwiseConv2DConfig: SingleInputOp, Equatable {
    var kernelSize: (h: Int, w: Int)
    var strides: (h: Int, w: Int) = (1, 1)
    var padding: Padding = .valid
    var depthMultiplier = 1
    var dilation: (h: Int, w: Int) = (1, 1)
    var useBias = true
    var activation: Activation = .linear

    static func == (a: Self, b: Self) -> Bool {
        a.kernelSize == b.kernelSize && a.strides == b.strides && a.padding == b.padding
            && a.depthMultiplier == b.depthMultiplier && a.dilation == b.dilation
            && a.useBias == b.useBias && a.activation == b.activation
    }

    static var kerasClassNames: [String] { ["DepthwiseConv2D"] }

    init(kernelSize: (h: Int, w: Int), strides: (h: Int, w: Int) = (1, 1), padding: Padding = .valid,
         depthMultiplier: Int = 1, dilation: (h: Int, w: Int) = (1, 1), useBias: Bool = true, activation: Activation = .linear) {
        self.kernelSize = kernelSize; self.strides = strides; self.padding = padding
        self.depthMultiplier = depthMultiplier; self.dilation = dilation; self.useBias = useBias; self.activation = activation
    }

    init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        self.init(kernelSize: try k.pair("kernel_size"),
                  strides: try k.pair("strides", default: 1),
                  padding: try k.padding(),
                  depthMultiplier: try k.size(k["depth_multiplier"] ?? 1, "depth_multiplier"),
                  dilation: try k.pair("dilation_rate", default: 1),
                  useBias: k.bool("use_bias", default: true),
                  activation: try k.activation())
        try checkStridesAndDilation(strides, dilation, k)
    }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["kernel_size"] = [kernelSize.h, kernelSize.w]
        c["strides"] = [strides.h, strides.w]
        c["padding"] = padding.rawValue
        c["depth_multiplier"] = depthMultiplier
        c["data_format"] = "channels_last"
        c["dilation_rate"] = [dilation.h, dilation.w]
        c["activation"] = activation.rawValue
        c["use_bias"] = useBias
    }

    func kernelShape(channels: Int) -> [Int] { [kernelSize.h, kernelSize.w, channels, depthMultiplier] }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (h, w, c) = try spatialInput(input, layer: layer)
        let oh = windowOutputSize(input: h, kernel: kernelSize.h, stride: strides.h, dilation: dilation.h, padding: padding)
        let ow = windowOutputSize(input: w, kernel: kernelSize.w, stride: strides.w, dilation: dilation.w, padding: padding)
        guard oh > 0, ow > 0 else {
            throw XferError.badInput(layer, "input \(shapeText(input)) is too small for a \(kernelSize.h)×\(kernelSize.w) depthwise convolution",
                                     hint: "check --input-shape")
        }
        return [oh, ow, c * depthMultiplier]
    }

    func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        let c = input.last ?? 0
        var w: [ExpectedWeight] = [(.depthwiseKernel, kernelShape(channels: c), true)]
        if useBias { w.append((.bias, [c * depthMultiplier], true)) }
        return w
    }

    var hasWeights: Bool { true }
    var isFeature: Bool { true }

    func forwardFLOPs(input: [Int]) -> Double {
        guard let out = try? outputShape(input: input, layer: "") else { return 0 }
        return 2 * Double(out[0] * out[1] * out[2]) * Double(kernelSize.h * kernelSize.w)
    }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try DepthwiseConv2DLayer(spec: spec, config: self, inputShape: inputShape)
    }
}

/// Keras refuses strides and dilation both above 1; so does xfer, naming the layer.
func checkStridesAndDilation(_ strides: (h: Int, w: Int), _ dilation: (h: Int, w: Int), _ k: KerasLayerConfig) throws {
    if (strides.h > 1 || strides.w > 1) && (dilation.h > 1 || dilation.w > 1) {
        throw k.fail("layer '\(k.name)' (\(k.className)): strides \(strides) and dilation \(dilation) both above 1 (Keras refuses it too)")
    }
}
