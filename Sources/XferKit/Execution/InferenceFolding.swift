// Folding for inference passes (Network, `predict`): a BatchNormalization that only normalises
// a convolution's output is folded into that convolution's weights, and an activation that only
// reads the result into the convolution's fused epilogue, so the pair or triple runs as one
// layer (one pass over the output instead of three, the epilogue inside oneDNN's kernel).
//
//   conv (linear) → BatchNormalization (moving statistics) [→ ReLU / ReLU6 / Activation]
//   kernel'[…, o] = kernel[…, o] · s[o],  bias'[o] = bias[o] · s[o] + t[o]
//   with s = γ / √(moving_variance + ε), t = β − moving_mean · s, BatchNormalization's own affine map.
//
// And a ZeroPadding2D whose only reader is a convolution becomes that convolution's padding
// (ZeroPadding2D → Conv2D/DepthwiseConv2D `valid`, before every strided convolution of ResNet,
// MobileNetV2 and EfficientNet): every core reads outside the input as zeros, so the result is
// the same, bit for bit, without the padded copy.
//
// And a residual connection's Add, when one of its two inputs is a Conv2D's output (its
// BatchNormalization folded) that nothing else reads, runs inside that convolution as oneDNN's sum
// post-op, with the activation after the Add (ResNet's `conv*_block*_add` → `_out` ReLU,
// MobileNetV2's linear `block_*_add`):
//
//   y = act(conv(x) + bias + shortcut)     one pass over y instead of three (conv, Add, ReLU)
//
// The Add's node runs `FusedResidualConvolution` on (shortcut, x): the convolution's own node
// passes its input x through as an identity, so x is held until the Add runs.
//
// Only where nothing else reads the convolution's output (nor the normalised one, when the
// activation is folded too), it is not the model's output, and every layer of the chain is the
// Network's own copy: the checkpoint's weights and the training network are untouched. A folded
// layer's node runs as an identity. Numbers: the scale is applied to the weights before the sum
// instead of after it, a few 1e-7 relative; the families hold Keras's predictions to 1e-4
// (checkpoints/check_families.py) and ForwardParityTests every fixture.

extension GraphExecutor {
    /// Folds every chain the header describes; returns how many BatchNormalization and
    /// ZeroPadding2D layers, and residual Adds, it folded.
    @discardableResult
    func foldForInference() -> (batchNormalizations: Int, paddings: Int, residuals: Int) {
        let nodes = graph.nodes
        var readers = [Int](repeating: 0, count: graph.valueShapes.count)
        var reader = [Int](repeating: -1, count: graph.valueShapes.count)
        for (i, n) in nodes.enumerated() {
            for v in n.inputs {
                readers[v] += 1
                reader[v] = i
            }
        }
        readers[graph.output] += 1
        /// The one layer reading value `v`, if exactly one layer does.
        func soleReader(_ v: Int) -> (Int, Layer)? {
            guard readers[v] == 1, reader[v] >= 0, case .layer(let l) = kernels[reader[v]] else { return nil }
            return (reader[v], l)
        }
        var paddings = 0
        for i in nodes.indices {
            guard case .layer(let layer) = kernels[i], let pad = layer as? ZeroPadding2DLayer,
                  let (_, next) = soleReader(nodes[i].output), let conv = next as? FoldableConvolution else { continue }
            conv.absorbPadding(pad.padding)
            kernels[i] = .layer(InputLayer(name: pad.name, inputShape: pad.inputShape))
            paddings += 1
        }
        var folded = 0
        for i in nodes.indices {
            guard case .layer(let layer) = kernels[i], let conv = layer as? FoldableConvolution,
                  conv.foldableActivation == .linear,
                  let (j, next) = soleReader(nodes[i].output), let bn = next as? BatchNormalizationLayer,
                  !bn.training, bn.channels == conv.outputChannels else { continue }
            bn.updateAffine()
            conv.fold(scale: bn.scale, shift: bn.shift)
            kernels[j] = .layer(InputLayer(name: bn.name, inputShape: bn.inputShape))
            folded += 1
            guard let (k, after) = soleReader(nodes[j].output), let activation = fusedActivation(after),
                  DirectConvolution.fusable(activation) else { continue }
            conv.foldableActivation = activation
            kernels[k] = .layer(InputLayer(name: after.name, inputShape: after.inputShape))
        }
        return (folded, paddings, foldResiduals(readers: readers, soleReader: soleReader))
    }

    /// The residual fold of the header, after the BatchNormalizations are folded.
    private func foldResiduals(readers: [Int], soleReader: (Int) -> (Int, Layer)?) -> Int {
        let nodes = graph.nodes
        var producer = [Int](repeating: -1, count: graph.valueShapes.count)
        for (i, n) in nodes.enumerated() { producer[n.output] = i }
        /// The Conv2D node whose output reaches value `v` through identities only (folded nodes,
        /// Identity, a Dropout at inference: EfficientNet's before its Add), each value on the
        /// way read by nothing else: those pass the convolution's input on unchanged.
        func convolution(reaching v: Int) -> (Int, Conv2DLayer)? {
            var v = v
            while readers[v] == 1, v != graph.output, producer[v] >= 0, case .layer(let l) = kernels[producer[v]] {
                if let conv = l as? Conv2DLayer { return (producer[v], conv) }
                let identity = l is InputLayer || l is IdentityLayer || (l as? DropoutLayer)?.training == false
                guard identity, nodes[producer[v]].inputs.count == 1 else { return nil }
                v = nodes[producer[v]].inputs[0]
            }
            return nil
        }
        var fused = 0
        for j in nodes.indices {
            guard case .merge(let add as AddLayer) = kernels[j], add.inputShapes.count == 2,
                  add.inputShapes[0] == add.inputShapes[1], nodes[j].inputs[0] != nodes[j].inputs[1] else { continue }
            // The later convolution: the shortcut's own convolution (ResNet's conv*_block1_0) comes first.
            let candidates = (0..<2).compactMap { side in convolution(reaching: nodes[j].inputs[side]).map { (side, $0.0, $0.1) } }
            guard let (side, i, conv) = candidates.max(by: { $0.1 < $1.1 }), conv.fusesResidual(then: .linear) else { continue }
            var activation = Activation.linear
            var after: Int?
            if nodes[j].output != graph.output, let (k, next) = soleReader(nodes[j].output), let a = fusedActivation(next),
               conv.fusesResidual(then: a) {
                activation = a
                after = k
            }
            kernels[i] = .layer(InputLayer(name: conv.name, inputShape: conv.inputShape))
            kernels[j] = .merge(FusedResidualConvolution(add: add, convolution: conv, side: side, activation: activation))
            if let k = after, case .layer(let l) = kernels[k] { kernels[k] = .layer(InputLayer(name: l.name, inputShape: l.inputShape)) }
            fused += 1
        }
        return fused
    }

    /// The element-wise activation a layer applies, when it is one the convolutions fuse.
    private func fusedActivation(_ layer: Layer) -> Activation? {
        if let a = layer as? ActivationLayer { return a.activation }
        if let r = layer as? ReLULayer, r.config.negativeSlope == 0, r.config.threshold == 0 {
            switch r.config.maxValue {
            case nil: return .relu
            case 6?: return .relu6
            default: return nil
            }
        }
        return nil
    }
}

/// A residual Add (inference only) whose input `side` is a Conv2D's output, run as that
/// convolution with the other input added in its epilogue, then `activation` (the header).
final class FusedResidualConvolution: MergeLayer {
    let name: String
    /// The Add's input shapes; the graph feeds input `side` as the convolution's input instead.
    let inputShapes: [[Int]]
    let outputShape: [Int]
    let convolution: Conv2DLayer
    let side: Int
    let activation: Activation

    init(add: AddLayer, convolution: Conv2DLayer, side: Int, activation: Activation) {
        name = add.name; inputShapes = add.inputShapes; outputShape = add.outputShape
        self.convolution = convolution; self.side = side; self.activation = activation
    }

    /// What the graph executor runs: the convolution's input and the residual, each consumed.
    func forward(_ x: consuming Tensor, residual: consuming Tensor, _ context: ForwardContext) -> Tensor {
        convolution.forward(x, adding: residual, then: activation, context)
    }

    func forward(_ inputs: [Tensor], _ context: ForwardContext) -> Tensor {
        forward(inputs[side], residual: inputs[1 - side], context)
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradients: [Bool]) -> [Tensor?] {
        preconditionFailure("\(name): a folded residual runs in inference passes only")
    }
}

/// A convolution a BatchNormalization can be folded into.
protocol FoldableConvolution: AnyObject {
    var outputChannels: Int { get }
    /// The activation of its epilogue (set to fold one in).
    var foldableActivation: Activation { get set }
    /// kernel[…, o] ·= scale[o], bias[o] = bias[o]·scale[o] + shift[o] (bias 0 when it had none).
    func fold(scale: [Float], shift: [Float])
    /// Reads its input without `pad`'s zeros around it, which become its own padding.
    func absorbPadding(_ pad: ZeroPadding2DConfig)
}

extension ConvGeometry {
    /// `g` on the input without `pad`'s zeros: the same output, those zeros as padding (the bottom
    /// and right padding follow from the output size, the input and the top and left padding).
    init(_ g: ConvGeometry, absorbing pad: ZeroPadding2DConfig) {
        h = g.h - pad.top - pad.bottom; w = g.w - pad.left - pad.right; c = g.c
        kh = g.kh; kw = g.kw; o = g.o
        sh = g.sh; sw = g.sw; dh = g.dh; dw = g.dw
        padTop = g.padTop + pad.top; padLeft = g.padLeft + pad.left
        oh = g.oh; ow = g.ow
    }
}

/// The kernel-and-bias convolutions keep the output channel as their kernel's innermost index:
/// Conv2D's (KH, KW, C, O), the grouped (KH, KW, C/G, O), DepthwiseConv2D's (KH, KW, C, M), whose
/// output channel c·M + m is its last two axes flattened. So one fold serves all three.
extension FoldableConvolution where Self: KernelBiasLayer {
    func fold(scale: [Float], shift: [Float]) {
        let o = outputChannels
        kernel.withUnsafeMutableBufferPointer { k in
            for p in 0..<(k.count / o) { for c in 0..<o { k[p * o + c] *= scale[c] } }
        }
        let b = bias ?? [Float](repeating: 0, count: o)
        bias = (0..<o).map { b[$0] * scale[$0] + shift[$0] }
    }
}

extension Conv2DLayer: FoldableConvolution {
    func absorbPadding(_ pad: ZeroPadding2DConfig) {
        geometry = ConvGeometry(geometry, absorbing: pad)
        inputShape = [geometry.h, geometry.w, geometry.c]
    }

    var outputChannels: Int { geometry.o }
    var foldableActivation: Activation {
        get { config.activation }
        set { config.activation = newValue }
    }
}

extension DepthwiseConv2DLayer: FoldableConvolution {
    func absorbPadding(_ pad: ZeroPadding2DConfig) {
        geometry = DepthwiseGeometry(conv: ConvGeometry(geometry.conv, absorbing: pad), multiplier: geometry.multiplier)
        inputShape = [geometry.conv.h, geometry.conv.w, geometry.conv.c]
    }

    var outputChannels: Int { geometry.conv.o }
    var foldableActivation: Activation {
        get { config.activation }
        set { config.activation = newValue }
    }
}

extension GroupedConv2DLayer: FoldableConvolution {
    func absorbPadding(_ pad: ZeroPadding2DConfig) {
        // One group's geometry: only the spatial sizes and padding change.
        geometry = ConvGeometry(geometry, absorbing: pad)
        inputShape = [geometry.h, geometry.w, geometry.c * groups]
    }

    var outputChannels: Int { config.filters }
    var foldableActivation: Activation {
        get { config.activation }
        set { config.activation = newValue }
    }
}
