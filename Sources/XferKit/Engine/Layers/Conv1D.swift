// Conv1D on a sequence (`channels_last`): (N, T, C) → (N, T′, filters), the kernel
// (K, C, filters) as Keras stores it, strides, dilation, `valid`/`same` padding and an
// activation. It runs as Conv2D with a 1×K kernel on the image (1, T, C) (SequenceAsImage.swift):
// the (K, C, F) kernel is the (1, K, C, F) one in memory, and TensorFlow's Conv1D is that very
// Conv2D (`tf.nn.conv1d` expands the steps into a width). So forward, backward and the naive
// oracle are Conv2D's. `causal` padding and `groups` > 1 are refused by name.
//
// The Keras kind, `Conv1DConfig`: its config as Keras reads and writes it, its output shape and
// weights, and the engine layer it builds (Ops/LayerOp.swift).

/// Keras `Conv1D`.
package struct Conv1DConfig: SingleInputOp, Equatable {
    package var filters: Int
    package var kernelSize: Int
    package var stride: Int
    package var padding: Padding
    package var dilation: Int
    package var useBias: Bool
    package var activation: Activation

    package init(filters: Int, kernelSize: Int, stride: Int = 1, padding: Padding = .valid, dilation: Int = 1,
                 useBias: Bool = true, activation: Activation = .linear) {
        self.filters = filters; self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
        self.dilation = dilation; self.useBias = useBias; self.activation = activation
    }

    package static var kerasClassNames: [String] { ["Conv1D"] }
    package static var kerasAliases: [String] { ["Convolution1D"] }

    package init(keras k: KerasLayerConfig) throws {
        /// A 1-D size: a number or a list of one (Keras 3 writes `[3]`).
        func single(_ key: String, default fallback: Int) throws -> Int {
            switch k[key] {
            case nil: return fallback
            case let l as [Any]:
                guard l.count == 1 else { throw k.fail("layer '\(k.name)': '\(key)' of a Conv1D must be one number, not \(l.count)") }
                return try k.size(l[0], key)
            case let v: return try k.size(v, key)
            }
        }
        if (k["padding"] as? String)?.lowercased() == "causal" { throw k.unsupported("causal padding is not supported (valid or same)") }
        if let f = k["data_format"] as? String, f != "channels_last" { throw k.unsupported("data_format '\(f)' (channels_last only)") }
        if try k.size(k["groups"] ?? 1, "groups") != 1 { throw k.unsupported("grouped Conv1D (groups > 1) is not supported") }
        self.init(filters: try k.int("filters"), kernelSize: try single("kernel_size", default: 0),
                  stride: try single("strides", default: 1), padding: try k.padding(),
                  dilation: try single("dilation_rate", default: 1),
                  useBias: k.bool("use_bias", default: true), activation: try k.activation())
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["filters"] = filters
        c["kernel_size"] = [kernelSize]
        c["strides"] = [stride]
        c["padding"] = padding.rawValue
        c["data_format"] = "channels_last"
        c["dilation_rate"] = [dilation]
        c["groups"] = 1
        c["activation"] = activation.rawValue
        c["use_bias"] = useBias
    }

    /// The Conv2D this layer runs as, on (1, T, C).
    var asConv2D: Conv2DConfig {
        Conv2DConfig(filters: filters, kernelSize: (1, kernelSize), strides: (1, stride), padding: padding,
                     dilation: (1, dilation), useBias: useBias, activation: activation)
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        _ = try sequenceInput(input, layer: layer, kind: "Conv1D")
        return Array(try asConv2D.outputShape(input: [1] + input, layer: layer).dropFirst())
    }

    package func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        var w: [ExpectedWeight] = [(.kernel, [kernelSize, input.last ?? 0, filters], true)]
        if useBias { w.append((.bias, [filters], true)) }
        return w
    }

    package var hasWeights: Bool { true }
    package var isFeature: Bool { true }

    package func forwardFLOPs(input: [Int]) -> Double { asConv2D.forwardFLOPs(input: [1] + input) }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        let (_, c) = try sequenceInput(inputShape, layer: spec.name, kind: "Conv1D")
        _ = try spec.values(.kernel, shape: [kernelSize, c, filters])
        if useBias { _ = try spec.values(.bias, shape: [filters]) }
        try spec.onlyWeights(useBias ? [.kernel, .bias] : [.kernel])
        var image = spec
        image.weights = spec.weights.map { w in
            var w = w
            if w.role == .kernel { w.shape = [1] + w.shape }
            return w
        }
        let inner = try Conv2DLayer(spec: image, config: asConv2D, inputShape: [1] + inputShape)
        return SequenceAsImageLayer(inner, inputShape: inputShape)
    }
}
