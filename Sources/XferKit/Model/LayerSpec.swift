// The model description every part of xfer shares: what a Keras model *is*
// (layer kinds, their configs, their weights), independent of the file it came
// from and of the engine that runs it.
//
// Shapes never include the batch dimension. Activations are NHWC
// (Keras `channels_last`); kernels keep Keras's layouts:
//   Conv2D kernel (KH, KW, C_in, O), bias (O)
//   Dense kernel (in, units), bias (units)
//   BatchNormalization gamma, beta, moving_mean, moving_variance, each (C)

/// Keras `padding`.
public enum Padding: String, Sendable, Codable {
    case valid, same
}

/// Keras activation functions that xfer runs (`activation=` on Conv2D/Dense, or an `Activation` layer).
public enum Activation: String, Sendable, Codable, CaseIterable {
    case linear, relu, relu6, sigmoid, tanh, softmax, elu, selu, softplus, softsign, silu, gelu
    /// Keras spells `silu` also `swish`.
    public init?(kerasName: String) {
        if kerasName == "swish" { self = .silu; return }
        self.init(rawValue: kerasName)
    }
}

public struct Conv2DConfig: Sendable, Equatable {
    public var filters: Int
    public var kernelSize: (h: Int, w: Int)
    public var strides: (h: Int, w: Int)
    public var padding: Padding
    public var dilation: (h: Int, w: Int)
    public var useBias: Bool
    public var activation: Activation

    public init(filters: Int, kernelSize: (h: Int, w: Int), strides: (h: Int, w: Int) = (1, 1),
                padding: Padding = .valid, dilation: (h: Int, w: Int) = (1, 1),
                useBias: Bool = true, activation: Activation = .linear) {
        self.filters = filters; self.kernelSize = kernelSize; self.strides = strides
        self.padding = padding; self.dilation = dilation; self.useBias = useBias
        self.activation = activation
    }

    public static func == (a: Conv2DConfig, b: Conv2DConfig) -> Bool {
        a.filters == b.filters && a.kernelSize == b.kernelSize && a.strides == b.strides
            && a.padding == b.padding && a.dilation == b.dilation && a.useBias == b.useBias
            && a.activation == b.activation
    }
}

public struct Pool2DConfig: Sendable, Equatable {
    public var poolSize: (h: Int, w: Int)
    public var strides: (h: Int, w: Int)
    public var padding: Padding

    public init(poolSize: (h: Int, w: Int) = (2, 2), strides: (h: Int, w: Int)? = nil, padding: Padding = .valid) {
        self.poolSize = poolSize; self.strides = strides ?? poolSize; self.padding = padding
    }

    public static func == (a: Pool2DConfig, b: Pool2DConfig) -> Bool {
        a.poolSize == b.poolSize && a.strides == b.strides && a.padding == b.padding
    }
}

public struct DenseConfig: Sendable, Equatable {
    public var units: Int
    public var useBias: Bool
    public var activation: Activation
    public init(units: Int, useBias: Bool = true, activation: Activation = .linear) {
        self.units = units; self.useBias = useBias; self.activation = activation
    }
}

public struct BatchNormConfig: Sendable, Equatable {
    public var momentum: Float
    public var epsilon: Float
    public var center: Bool
    public var scale: Bool
    /// The normalised axis as Keras records it: −1, or an index counting the batch axis
    /// (tf-keras writes `[3]` after images, `[1]` after a Dense layer). Only the last axis runs.
    public var axis: Int
    public init(momentum: Float = 0.99, epsilon: Float = 1e-3, center: Bool = true, scale: Bool = true, axis: Int = -1) {
        self.momentum = momentum; self.epsilon = epsilon; self.center = center; self.scale = scale; self.axis = axis
    }
}

/// Keras `ReLU` layer: `max_value`, `negative_slope`, `threshold`.
public struct ReLUConfig: Sendable, Equatable {
    public var maxValue: Float?
    public var negativeSlope: Float
    public var threshold: Float
    public init(maxValue: Float? = nil, negativeSlope: Float = 0, threshold: Float = 0) {
        self.maxValue = maxValue; self.negativeSlope = negativeSlope; self.threshold = threshold
    }
}

public struct ZeroPadding2DConfig: Sendable, Equatable {
    public var top: Int, bottom: Int, left: Int, right: Int
    public init(top: Int, bottom: Int, left: Int, right: Int) {
        self.top = top; self.bottom = bottom; self.left = left; self.right = right
    }
}

public struct DropoutConfig: Sendable, Equatable {
    public var rate: Float
    public var seed: Int?
    public init(rate: Float, seed: Int? = nil) { self.rate = rate; self.seed = seed }
}

/// Keras's merge layers: one output from several inputs (MergeLayer, Engine/Layers/).
public enum MergeOp: Sendable, Equatable {
    case add, subtract, multiply, average, maximum, minimum
    /// Keras `Concatenate(axis=)`, the axis counting the batch axis (−1: the last).
    case concatenate(axis: Int)

    /// The Keras class name.
    public var className: String {
        switch self {
        case .add: return "Add"
        case .subtract: return "Subtract"
        case .multiply: return "Multiply"
        case .average: return "Average"
        case .maximum: return "Maximum"
        case .minimum: return "Minimum"
        case .concatenate: return "Concatenate"
        }
    }
}

/// What a layer computes. `.model` is a nested Sequential/Functional model used as one layer.
public enum LayerKind: Sendable {
    case input
    case conv2D(Conv2DConfig)
    case maxPooling2D(Pool2DConfig)
    case averagePooling2D(Pool2DConfig)
    case globalAveragePooling2D(keepdims: Bool)
    case globalMaxPooling2D(keepdims: Bool)
    case flatten
    case dense(DenseConfig)
    case dropout(DropoutConfig)
    case batchNormalization(BatchNormConfig)
    case activation(Activation)
    case relu(ReLUConfig)
    case zeroPadding2D(ZeroPadding2DConfig)
    /// Keras `Rescaling`: x · scale + offset.
    case rescaling(scale: Float, offset: Float)
    case merge(MergeOp)
    case model(ModelSpec)
}

/// A tensor of a Functional model: output `tensor` of call `node` of the layer named `layer`
/// (Keras's inbound-node triple, `keras_history` in Keras 3).
public struct TensorRef: Sendable, Hashable {
    public var layer: String
    public var node: Int
    public var tensor: Int
    public init(layer: String, node: Int = 0, tensor: Int = 0) {
        self.layer = layer; self.node = node; self.tensor = tensor
    }
}

/// One stored tensor of a layer, in Keras's layout.
public struct WeightSpec: Sendable {
    /// Role inside the layer: `kernel`, `bias`, `gamma`, `beta`, `moving_mean`, `moving_variance`.
    public var role: String
    /// Name as stored in the file (`weight_names` entry or `vars/<i>` path); informative only.
    public var storedName: String
    public var shape: [Int]
    public var values: [Float]
    /// False for BatchNormalization's moving statistics, whatever the layer's flag.
    public var isTrainableKind: Bool

    public init(role: String, storedName: String = "", shape: [Int], values: [Float], isTrainableKind: Bool = true) {
        self.role = role; self.storedName = storedName; self.shape = shape
        self.values = values; self.isTrainableKind = isTrainableKind
    }

    public var count: Int { shape.reduce(1, *) }
}

/// One layer of a model, as Keras's `model.layers` lists it.
public struct LayerSpec: Sendable {
    public var name: String
    /// Keras class name as the file spells it (`Conv2D`, `Functional`, ...).
    public var className: String
    public var kind: LayerKind
    /// Keras `layer.trainable`. For a nested model, applies on top of its layers' own flags.
    public var trainable: Bool
    /// In legacy order: trainable-kind weights first as Keras creates them (kernel, bias / gamma, beta),
    /// then moving statistics. Empty for weightless layers and for `.model` (its layers hold them).
    public var weights: [WeightSpec]
    /// For a layer fed by a nested model call with `training=False` (Keras's fine-tuning recipe):
    /// everything inside runs in inference mode.
    public var callTrainingFalse: Bool
    /// In a Functional model, the inputs of each call of this layer (Keras `inbound_nodes`; a
    /// shared layer has several calls). Empty for an InputLayer and for a Sequential model's
    /// layers, each of which takes the previous layer's output.
    public var calls: [[TensorRef]]

    public init(name: String, className: String, kind: LayerKind, trainable: Bool = true,
                weights: [WeightSpec] = [], callTrainingFalse: Bool = false, calls: [[TensorRef]] = []) {
        self.name = name; self.className = className; self.kind = kind; self.trainable = trainable
        self.weights = weights; self.callTrainingFalse = callTrainingFalse; self.calls = calls
    }

    public func weight(_ role: String) -> WeightSpec? { weights.first { $0.role == role } }

    /// This layer with `activation` taken off (a Dense layer's or an Activation layer's), so it
    /// outputs logits; nil when the layer does not end in that activation.
    public func withoutActivation(_ activation: Activation) -> LayerSpec? {
        var l = self
        switch kind {
        case .dense(var d) where d.activation == activation:
            d.activation = .linear; l.kind = .dense(d)
        case .activation(let a) where a == activation:
            l.kind = .activation(.linear)
        default:
            return nil
        }
        return l
    }
}

/// A Keras model: Sequential (a chain of layers), or Functional (a graph: each layer's `calls`
/// name the tensors it takes; `output` is the model's output). Nested models are layers.
/// `ModelGraph` opens it up into the nodes the engine runs.
public struct ModelSpec: Sendable {
    public var name: String
    /// `Sequential` or `Functional` (old files: `Model`).
    public var className: String
    /// (H, W, C) of one input sample.
    public var inputShape: [Int]
    /// In Keras `model.layers` order. A Functional model lists its InputLayer; a Sequential does not.
    public var layers: [LayerSpec]
    public var trainable: Bool
    /// A Functional model's output tensor (Keras `output_layers`); nil: the last layer's output,
    /// and every layer takes the previous one's (a Sequential model, or a model built as a chain).
    public var output: TensorRef?

    public init(name: String, className: String, inputShape: [Int], layers: [LayerSpec], trainable: Bool = true,
                output: TensorRef? = nil) {
        self.name = name; self.className = className; self.inputShape = inputShape
        self.layers = layers; self.trainable = trainable; self.output = output
    }

    /// Whether the layers are wired as a graph (`calls`, `output`) rather than as a chain.
    public var isGraph: Bool { output != nil }
}
