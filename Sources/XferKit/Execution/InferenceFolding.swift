// Folding for inference passes (Network, `predict`): a BatchNormalization that only normalises
// a convolution's output is folded into that convolution's weights, and an activation that only
// reads the result into the convolution's fused epilogue, so the pair or triple runs as one
// layer (one pass over the output instead of three, the epilogue inside oneDNN's kernel).
//
//   conv (linear) → BatchNormalization (moving statistics) [→ ReLU / ReLU6 / Activation]
//   kernel'[…, o] = kernel[…, o] · s[o],  bias'[o] = bias[o] · s[o] + t[o]
//   with s = γ / √(moving_variance + ε), t = β − moving_mean · s, BatchNormalization's own affine map.
//
// Only where nothing else reads the convolution's output (nor the normalised one, when the
// activation is folded too), it is not the model's output, and every layer of the chain is the
// Network's own copy: the checkpoint's weights and the training network are untouched. A folded
// layer's node runs as an identity. Numbers: the scale is applied to the weights before the sum
// instead of after it, a few 1e-7 relative; the families hold Keras's predictions to 1e-4
// (checkpoints/check_families.py) and ForwardParityTests every fixture.

extension GraphExecutor {
    /// Folds every chain the header describes; returns how many BatchNormalization layers it folded.
    @discardableResult
    func foldForInference() -> Int {
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
        return folded
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

/// A convolution a BatchNormalization can be folded into.
protocol FoldableConvolution: AnyObject {
    var outputChannels: Int { get }
    /// The activation of its epilogue (set to fold one in).
    var foldableActivation: Activation { get set }
    /// kernel[…, o] ·= scale[o], bias[o] = bias[o]·scale[o] + shift[o] (bias 0 when it had none).
    func fold(scale: [Float], shift: [Float])
}

extension Conv2DLayer: FoldableConvolution {
    var outputChannels: Int { geometry.o }
    var foldableActivation: Activation {
        get { config.activation }
        set { config.activation = newValue }
    }
    func fold(scale: [Float], shift: [Float]) {
        let o = geometry.o
        kernel.withUnsafeMutableBufferPointer { k in
            for p in 0..<(k.count / o) { for c in 0..<o { k[p * o + c] *= scale[c] } }
        }
        let b = bias ?? [Float](repeating: 0, count: o)
        bias = (0..<o).map { b[$0] * scale[$0] + shift[$0] }
    }
}

extension DepthwiseConv2DLayer: FoldableConvolution {
    var outputChannels: Int { geometry.conv.o }
    var foldableActivation: Activation {
        get { config.activation }
        set { config.activation = newValue }
    }
    func fold(scale: [Float], shift: [Float]) {
        // (KH, KW, C, M): output channel c·M + m is the last two axes flattened.
        let o = geometry.conv.o
        kernel.withUnsafeMutableBufferPointer { k in
            for p in 0..<(k.count / o) { for c in 0..<o { k[p * o + c] *= scale[c] } }
        }
        let b = bias ?? [Float](repeating: 0, count: o)
        bias = (0..<o).map { b[$0] * scale[$0] + shift[$0] }
    }
}
