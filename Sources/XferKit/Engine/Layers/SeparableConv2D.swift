// SeparableConv2D: a depthwise convolution (depth_multiplier M, no bias) followed by a 1×1
// convolution over its C·M channels, then bias and activation, as TensorFlow's
// `separable_conv2d` computes it:
//
//   t = depthwise(x, depthwise_kernel (KH, KW, C, M))          (N, OH, OW, C·M)
//   y = act(t · pointwise_kernel (1, 1, C·M, O) + bias (O))    (N, OH, OW, O)
//
// The two halves are the kernels of DepthwiseConv2D.swift and Conv2D.swift's pointwise GEMM
// (no im2col). Backward runs them back to front: from dz, dPointwise = tᵀ·dz and
// dt = dz·pointwiseᵀ (Conv2D's backward on t), then DepthwiseConv2D's backward from dt gives
// dDepthwise and dx. The forward keeps t when training needs it.
//
// The oracle in tests is the composition of the two naive definitions
// (`depthwiseForwardNaive`, `conv2DForwardNaive`) and of their backward passes.
//
// The Keras kind, `SeparableConv2DConfig` (end of file).

/// A Keras `SeparableConv2D` layer.
final class SeparableConv2DLayer: TrainableLayer {
    let name: String
    let inputShape: [Int]
    let outputShape: [Int]
    let config: SeparableConv2DConfig
    let depthwise: DepthwiseGeometry
    /// The 1×1 convolution over the depthwise output.
    let pointwise: ConvGeometry
    /// (KH, KW, C, M) and (1, 1, C·M, O).
    var depthwiseKernel: [Float]
    var pointwiseKernel: [Float]
    /// (O), nil when `use_bias=False`.
    var bias: [Float]?
    var savedInput: Tensor?
    /// The depthwise output t, kept for backward.
    var savedDepthwise: Tensor?
    var savedActivation: Tensor?
    var training = false
    var trainable = false
    private(set) var dDepthwise: [Float] = []
    private(set) var dPointwise: [Float] = []
    private(set) var dBias: [Float] = []

    init(spec: LayerSpec, config: SeparableConv2DConfig, inputShape: [Int]) throws {
        try requireRank(inputShape, 3, layer: spec.name, kind: "SeparableConv2D")
        guard let d = DepthwiseGeometry(input: inputShape, kernelSize: config.kernelSize, strides: config.strides,
                                        padding: config.padding, dilation: config.dilation,
                                        multiplier: config.depthMultiplier),
              let p = ConvGeometry(input: [d.conv.oh, d.conv.ow, d.conv.o], Conv2DConfig(filters: config.filters, kernelSize: (1, 1)))
        else {
            throw XferError.badInput("layer '\(spec.name)'", "input \(inputShape) is smaller than the \(config.kernelSize) kernel with `valid` padding")
        }
        let shapes = config.weightShapes(channels: inputShape[2])
        depthwiseKernel = try spec.values(.depthwiseKernel, shape: shapes.depthwise)
        pointwiseKernel = try spec.values(.pointwiseKernel, shape: shapes.pointwise)
        bias = config.useBias ? try spec.values(.bias, shape: [config.filters]) : nil
        try spec.onlyWeights(config.useBias ? [.depthwiseKernel, .pointwiseKernel, .bias] : [.depthwiseKernel, .pointwiseKernel])
        name = spec.name; self.config = config; self.inputShape = inputShape
        depthwise = d; pointwise = p
        outputShape = [p.oh, p.ow, p.o]
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        var t = context.output([n, depthwise.conv.oh, depthwise.conv.ow, depthwise.conv.o])
        var y = context.output([n] + outputShape)
        let activation = config.activation
        let keepPreActivation = context.keepForBackward && activationBackwardNeedsInput(activation)
        x.values.withUnsafeBufferPointer { px in
            depthwiseKernel.withUnsafeBufferPointer { pk in
                t.values.withUnsafeMutableBufferPointer { pt in
                    depthwiseForward(px.baseAddress!, batch: n, depthwise, kernel: pk.baseAddress!, bias: nil, .linear,
                                     into: pt.baseAddress!)
                }
            }
        }
        t.values.withUnsafeBufferPointer { pt in
            pointwiseKernel.withUnsafeBufferPointer { pk in
                y.values.withUnsafeMutableBufferPointer { py in
                    withOptionalArray(bias) { pb in
                        conv2DForward(pt.baseAddress!, batch: n, pointwise, kernel: pk.baseAddress!, bias: pb,
                                      keepPreActivation ? .linear : activation, into: py.baseAddress!, workspace: context.workspace)
                    }
                }
            }
        }
        savedInput = context.release(x)
        savedDepthwise = context.release(t)
        savedActivation = keptForActivationGradient(&y, activation, preActivationKept: keepPreActivation, context)
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard trainable || needInputGradient else { return nil }
        guard let x = savedInput, let t = savedDepthwise else {
            preconditionFailure("layer '\(name)': backward without a forward that kept its input (keepForBackward)")
        }
        let n = x.shape[0]
        let dz = preActivationGradient(dy, saved: savedActivation, config.activation, context)
        if trainable {
            allocateGradients()
            if bias != nil { addBiasGradient(dz, into: &dBias) }
        }
        // dt is needed for the depthwise kernel's gradient or for dx.
        var dt = context.output(t.shape)
        t.values.withUnsafeBufferPointer { pt in
            pointwiseKernel.withUnsafeBufferPointer { pk in
                dz.values.withUnsafeBufferPointer { pz in
                    withStorage(&dPointwise, if: trainable) { pdk in
                        dt.values.withUnsafeMutableBufferPointer { pdt in
                            conv2DBackward(pt.baseAddress!, batch: n, pointwise, kernel: pk.baseAddress!, dz: pz.baseAddress!,
                                           dKernel: pdk, dx: pdt.baseAddress!, workspace: context.workspace)
                        }
                    }
                }
            }
        }
        var dx = needInputGradient ? context.output([n] + inputShape).values : []
        x.values.withUnsafeBufferPointer { px in
            depthwiseKernel.withUnsafeBufferPointer { pk in
                dt.values.withUnsafeBufferPointer { pdt in
                    withStorage(&dDepthwise, if: trainable) { pdk in
                        withStorage(&dx, if: needInputGradient) { pdx in
                            depthwiseBackward(px.baseAddress!, batch: n, depthwise, kernel: pk.baseAddress!,
                                              dz: pdt.baseAddress!, dKernel: pdk, dx: pdx)
                        }
                    }
                }
            }
        }
        context.pool.recycle(dt)
        if config.activation != .linear { context.pool.recycle(dz) }
        return needInputGradient ? Tensor(shape: [n] + inputShape, values: dx) : nil
    }

    private func allocateGradients() {
        if dDepthwise.isEmpty { dDepthwise = [Float](repeating: 0, count: depthwiseKernel.count) }
        if dPointwise.isEmpty { dPointwise = [Float](repeating: 0, count: pointwiseKernel.count) }
        if let bias, dBias.isEmpty { dBias = [Float](repeating: 0, count: bias.count) }
    }

    func zeroGradients() {
        if dDepthwise.isEmpty {
            if trainable { allocateGradients() }
            return
        }
        dDepthwise.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        dPointwise.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        dBias.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        guard trainable else { return }
        allocateGradients()
        dDepthwise.withUnsafeBufferPointer { g in depthwiseKernel.withUnsafeMutableBufferPointer { body(.depthwiseKernel, $0, g) } }
        dPointwise.withUnsafeBufferPointer { g in pointwiseKernel.withUnsafeMutableBufferPointer { body(.pointwiseKernel, $0, g) } }
        if bias != nil {
            dBias.withUnsafeBufferPointer { g in bias!.withUnsafeMutableBufferPointer { body(.bias, $0, g) } }
        }
    }

    func currentWeights() -> [WeightRole: [Float]] {
        var weights: [WeightRole: [Float]] = [.depthwiseKernel: depthwiseKernel, .pointwiseKernel: pointwiseKernel]
        if let bias { weights[.bias] = bias }
        return weights
    }
}

// MARK: The Keras kind

/// Keras `SeparableConv2D` (also read as `SeparableConvolution2D`), channels_last.
struct SeparableConv2DConfig: SingleInputOp, Equatable {
    var filters: Int
    var kernelSize: (h: Int, w: Int)
    var strides: (h: Int, w: Int) = (1, 1)
    var padding: Padding = .valid
    var depthMultiplier = 1
    var dilation: (h: Int, w: Int) = (1, 1)
    var useBias = true
    var activation: Activation = .linear

    static func == (a: Self, b: Self) -> Bool {
        a.filters == b.filters && a.kernelSize == b.kernelSize && a.strides == b.strides && a.padding == b.padding
            && a.depthMultiplier == b.depthMultiplier && a.dilation == b.dilation
            && a.useBias == b.useBias && a.activation == b.activation
    }

    static var kerasClassNames: [String] { ["SeparableConv2D"] }
    static var kerasAliases: [String] { ["SeparableConvolution2D"] }

    init(filters: Int, kernelSize: (h: Int, w: Int), strides: (h: Int, w: Int) = (1, 1), padding: Padding = .valid,
         depthMultiplier: Int = 1, dilation: (h: Int, w: Int) = (1, 1), useBias: Bool = true, activation: Activation = .linear) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides; self.padding = padding
        self.depthMultiplier = depthMultiplier; self.dilation = dilation; self.useBias = useBias; self.activation = activation
    }

    init(keras k: KerasLayerConfig) throws {
        try k.requireChannelsLast()
        filters = try k.int("filters")
        kernelSize = try k.pair("kernel_size")
        strides = try k.pair("strides", default: 1)
        padding = try k.padding()
        depthMultiplier = try k.size(k["depth_multiplier"] ?? 1, "depth_multiplier")
        dilation = try k.pair("dilation_rate", default: 1)
        useBias = k.bool("use_bias", default: true)
        activation = try k.activation()
        try checkStridesAndDilation(strides, dilation, k)
    }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["filters"] = filters
        c["kernel_size"] = [kernelSize.h, kernelSize.w]
        c["strides"] = [strides.h, strides.w]
        c["padding"] = padding.rawValue
        c["data_format"] = "channels_last"
        c["dilation_rate"] = [dilation.h, dilation.w]
        c["depth_multiplier"] = depthMultiplier
        c["activation"] = activation.rawValue
        c["use_bias"] = useBias
    }

    func weightShapes(channels c: Int) -> (depthwise: [Int], pointwise: [Int]) {
        ([kernelSize.h, kernelSize.w, c, depthMultiplier], [1, 1, c * depthMultiplier, filters])
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (h, w, _) = try spatialInput(input, layer: layer)
        let oh = windowOutputSize(input: h, kernel: kernelSize.h, stride: strides.h, dilation: dilation.h, padding: padding)
        let ow = windowOutputSize(input: w, kernel: kernelSize.w, stride: strides.w, dilation: dilation.w, padding: padding)
        guard oh > 0, ow > 0 else {
            throw XferError.badInput(layer, "input \(shapeText(input)) is too small for a \(kernelSize.h)×\(kernelSize.w) separable convolution",
                                     hint: "check --input-shape")
        }
        return [oh, ow, filters]
    }

    func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        let s = weightShapes(channels: input.last ?? 0)
        var w: [ExpectedWeight] = [(.depthwiseKernel, s.depthwise, true), (.pointwiseKernel, s.pointwise, true)]
        if useBias { w.append((.bias, [filters], true)) }
        return w
    }

    var hasWeights: Bool { true }
    var isFeature: Bool { true }

    func forwardFLOPs(input: [Int]) -> Double {
        guard let out = try? outputShape(input: input, layer: ""), let c = input.last else { return 0 }
        let pixels = Double(out[0] * out[1])
        return 2 * pixels * Double(c * depthMultiplier) * Double(kernelSize.h * kernelSize.w + filters)
    }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        try SeparableConv2DLayer(spec: spec, config: self, inputShape: inputShape)
    }
}
