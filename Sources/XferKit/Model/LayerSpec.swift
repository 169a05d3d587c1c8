// The model description every part of xfer shares: what a Keras model *is*
// (layer kinds, their configs, their weights), independent of the file it came
// from and of the engine that runs it. Each kind's config is its op, defined with its
// engine layer (Engine/Layers/; the list: Ops/Registry.swift).
//
// Shapes never include the batch dimension. Activations are NHWC
// (Keras `channels_last`); kernels keep Keras's layouts:
//   Conv2D kernel (KH, KW, C_in, O), bias (O)
//   Dense kernel (in, units), bias (units)
//   BatchNormalization gamma, beta, moving_mean, moving_variance, each (C)

/// Keras `padding`.
package enum Padding: String, Sendable, Codable {
    case valid, same
}

/// Keras activation functions that xfer runs (`activation=` on Conv2D/Dense, or an `Activation` layer).
///
/// ```swift
/// let head: [HeadLayer] = [.flatten, .dense(128, activation: .relu)]
/// ```
public enum Activation: String, Sendable, Codable, CaseIterable {
    /// no activation (logits)
    case linear
    /// max(x, 0)
    case relu
    /// min(max(x, 0), 6)
    case relu6
    /// 1 / (1 + e^−x)
    case sigmoid
    /// tanh(x)
    case tanh
    /// a probability distribution over the last axis
    case softmax
    /// Keras's `elu`
    case elu
    /// Keras's `selu`
    case selu
    /// log(1 + e^x)
    case softplus
    /// x / (1 + |x|)
    case softsign
    /// x · sigmoid(x), also `swish`
    case silu
    /// Keras's `gelu` (exact, erf)
    case gelu
    case hardSigmoid = "hard_sigmoid", hardSilu = "hard_silu"
    /// Keras spells `silu` also `swish`, and `hard_silu` also `hard_swish`.
    package init?(kerasName: String) {
        if kerasName == "swish" { self = .silu; return }
        if kerasName == "hard_swish" { self = .hardSilu; return }
        self.init(rawValue: kerasName)
    }
}

/// What a layer computes: an InputLayer, a nested Sequential/Functional model used as one
/// layer, or one of the kinds of Ops/Registry.swift, whose op (its config) knows everything
/// about it. Code that needs one kind asks `op as? DenseConfig`.
package enum LayerKind: Sendable {
    case input
    case op(any LayerOp)
    case model(ModelSpec)

    /// The op of a layer kind; nil for an InputLayer and a nested model.
    package var op: (any LayerOp)? {
        if case .op(let o) = self { return o }
        return nil
    }
}

// Shorthands for building a spec in code (the head, inferred VGG models, tests).
extension LayerKind {
    package static func conv2D(_ c: Conv2DConfig) -> LayerKind { .op(c) }
    package static func maxPooling2D(_ p: Pool2DConfig) -> LayerKind { .op(MaxPooling2DConfig(p)) }
    package static func averagePooling2D(_ p: Pool2DConfig) -> LayerKind { .op(AveragePooling2DConfig(p)) }
    package static func globalAveragePooling2D(keepdims: Bool) -> LayerKind { .op(GlobalAveragePooling2DConfig(keepdims: keepdims)) }
    package static func globalMaxPooling2D(keepdims: Bool) -> LayerKind { .op(GlobalMaxPooling2DConfig(keepdims: keepdims)) }
    package static var flatten: LayerKind { .op(FlattenConfig()) }
    package static func dense(_ d: DenseConfig) -> LayerKind { .op(d) }
    package static func dropout(_ d: DropoutConfig) -> LayerKind { .op(d) }
    package static func batchNormalization(_ b: BatchNormConfig) -> LayerKind { .op(b) }
    package static func activation(_ a: Activation) -> LayerKind { .op(ActivationConfig(a)) }
    package static func relu(_ r: ReLUConfig) -> LayerKind { .op(r) }
    package static func zeroPadding2D(_ p: ZeroPadding2DConfig) -> LayerKind { .op(p) }
    /// Keras `Rescaling`: x · scale + offset.
    package static func rescaling(scale: Float, offset: Float) -> LayerKind { .op(RescalingConfig(scale: scale, offset: offset)) }
    package static func merge(_ m: MergeOp) -> LayerKind { .op(m) }
}

/// A tensor of a Functional model: output `tensor` of call `node` of the layer named `layer`
/// (Keras's inbound-node triple, `keras_history` in Keras 3).
package struct TensorRef: Sendable, Hashable {
    package var layer: String
    package var node: Int
    package var tensor: Int
    package init(layer: String, node: Int = 0, tensor: Int = 0) {
        self.layer = layer; self.node = node; self.tensor = tensor
    }
}

/// What a weight is to its layer; the raw value is Keras's name (`block1_conv1/kernel:0`).
package enum WeightRole: String, Sendable, CaseIterable, CustomStringConvertible {
    case kernel
    case bias
    case gamma
    case beta
    case movingMean = "moving_mean"
    case movingVariance = "moving_variance"
    /// DepthwiseConv2D's and SeparableConv2D's per-channel kernel (KH, KW, C, M).
    case depthwiseKernel = "depthwise_kernel"
    /// SeparableConv2D's 1×1 kernel (1, 1, C·M, O).
    case pointwiseKernel = "pointwise_kernel"
    /// Normalization's state: per-feature mean and variance, and the number of samples seen.
    case mean, variance, count

    package var description: String { rawValue }
}

/// One stored tensor of a layer, in Keras's layout.
package struct WeightSpec: Sendable {
    /// Role inside the layer.
    package var role: WeightRole
    /// Name as stored in the file (`weight_names` entry or `vars/<i>` path); informative only.
    package var storedName: String
    package var shape: [Int]
    package var values: [Float]
    /// False for BatchNormalization's moving statistics, whatever the layer's flag.
    package var isTrainableKind: Bool

    package init(role: WeightRole, storedName: String = "", shape: [Int], values: [Float], isTrainableKind: Bool = true) {
        self.role = role; self.storedName = storedName; self.shape = shape
        self.values = values; self.isTrainableKind = isTrainableKind
    }

    package var count: Int { shape.reduce(1, *) }
}

/// One layer of a model, as Keras's `model.layers` lists it.
package struct LayerSpec: Sendable {
    package var name: String
    /// Keras class name as the file spells it (`Conv2D`, `Functional`, ...).
    package var className: String
    package var kind: LayerKind
    /// Keras `layer.trainable`. For a nested model, applies on top of its layers' own flags.
    package var trainable: Bool
    /// In legacy order: trainable-kind weights first as Keras creates them (kernel, bias / gamma, beta),
    /// then moving statistics. Empty for weightless layers and for `.model` (its layers hold them).
    package var weights: [WeightSpec]
    /// A call with `training=False` (Keras's fine-tuning recipe): a nested model's layers, or the
    /// layer itself, always run in inference mode.
    package var callTrainingFalse: Bool
    /// In a Functional model, the inputs of each call of this layer (Keras `inbound_nodes`; a
    /// shared layer has several calls). Empty for an InputLayer and for a Sequential model's
    /// layers, each of which takes the previous layer's output.
    package var calls: [[TensorRef]]

    package init(name: String, className: String, kind: LayerKind, trainable: Bool = true,
                weights: [WeightSpec] = [], callTrainingFalse: Bool = false, calls: [[TensorRef]] = []) {
        self.name = name; self.className = className; self.kind = kind; self.trainable = trainable
        self.weights = weights; self.callTrainingFalse = callTrainingFalse; self.calls = calls
    }

    /// A layer of kind `op`, of the op's Keras class.
    package init(name: String, op: any LayerOp, trainable: Bool = true, weights: [WeightSpec] = []) {
        self.init(name: name, className: op.kerasClassName, kind: .op(op), trainable: trainable, weights: weights)
    }

    package func weight(_ role: WeightRole) -> WeightSpec? { weights.first { $0.role == role } }

    /// The op of this layer's kind (nil for an InputLayer and a nested model).
    package var op: (any LayerOp)? { kind.op }

    /// This layer with `activation` taken off (a Dense layer's or an Activation layer's), so it
    /// outputs logits; nil when the layer does not end in that activation.
    package func withoutActivation(_ activation: Activation) -> LayerSpec? {
        var l = self
        if var d = op as? DenseConfig, d.activation == activation {
            d.activation = .linear; l.kind = .op(d)
        } else if let a = op as? ActivationConfig, a.activation == activation {
            l.kind = .activation(.linear)
        } else {
            return nil
        }
        return l
    }
}

/// A Keras model: Sequential (a chain of layers), or Functional (a graph: each layer's `calls`
/// name the tensors it takes; `output` is the model's output). Nested models are layers.
/// `ModelGraph` opens it up into the nodes the engine runs.
package struct ModelSpec: Sendable {
    package var name: String
    /// `Sequential` or `Functional` (old files: `Model`).
    package var className: String
    /// (H, W, C) of one input sample.
    package var inputShape: [Int]
    /// In Keras `model.layers` order. A Functional model lists its InputLayer; a Sequential does not.
    package var layers: [LayerSpec]
    package var trainable: Bool
    /// A Functional model's output tensor (Keras `output_layers`); nil: the last layer's output,
    /// and every layer takes the previous one's (a Sequential model, or a model built as a chain).
    package var output: TensorRef?
    /// The Keras version that wrote the model (the file's `keras_version`), when it says: it
    /// decides details Keras 2 and 3 compute differently (BatchNormalization's moving variance).
    package var kerasVersion: String?

    package init(name: String, className: String, inputShape: [Int], layers: [LayerSpec], trainable: Bool = true,
                output: TensorRef? = nil, kerasVersion: String? = nil) {
        self.name = name; self.className = className; self.inputShape = inputShape
        self.layers = layers; self.trainable = trainable; self.output = output; self.kerasVersion = kerasVersion
    }

    /// Whether the layers are wired as a graph (`calls`, `output`) rather than as a chain.
    package var isGraph: Bool { output != nil }
}
