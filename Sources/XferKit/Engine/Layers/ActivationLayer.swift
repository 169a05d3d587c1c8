// Activation: one of Keras's activation functions (Activations.swift), softmax over
// the last axis. Runs in place on its input. Backward: dx = dy · f′, f′ from the
// output (and from the input for silu and gelu, which then keep it).
//
// The Keras kind, `ActivationConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Activation` layer.
public final class ActivationLayer: TrainableLayer {
    public var training = false
    public var trainable = false
    /// (N, …): the last output, and input when f′ needs it; kept only for backward.
    var savedOutput: Tensor?
    var savedInput: Tensor?
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    let activation: Activation

    init(name: String, activation: Activation, inputShape: [Int]) {
        self.name = name; self.activation = activation; self.inputShape = inputShape
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        if context.keepForBackward && activationBackwardNeedsInput(activation) { savedInput = copy x }
        var y = x
        activate(&y, activation)
        if context.keepForBackward { savedOutput = y }
        return y
    }

    public func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient, let y = savedOutput else { return nil }
        var dx = dy
        let cols = inputShape.last ?? 1
        dx.values.withUnsafeMutableBufferPointer { pd in
            y.values.withUnsafeBufferPointer { py in
                withOptionalValues(savedInput) { px in
                    activationBackward(pd.baseAddress!, output: py.baseAddress!, input: px,
                                       rows: dy.count / max(cols, 1), cols: cols, activation)
                }
            }
        }
        savedOutput = nil; savedInput = nil
        return dx
    }
}

// MARK: The Keras kind

/// Keras `Activation`, and `Softmax` (over the last axis) read as `Activation("softmax")`.
public struct ActivationConfig: SingleInputOp, Equatable {
    public var activation: Activation
    public init(_ activation: Activation) { self.activation = activation }

    public static var kerasClassNames: [String] { ["Activation", "Softmax"] }

    public init(keras k: KerasLayerConfig) throws {
        if k.className == "Softmax" {
            let axis = k["axis"] as? Int ?? (k["axis"] as? [Int]).flatMap { $0.count == 1 ? $0[0] : nil } ?? -1
            guard axis == -1 else { throw k.unsupported("softmax over axis \(axis) is not supported (the last axis only)") }
            self.init(.softmax)
        } else {
            self.init(try k.activation())
        }
    }

    public func writeKeras(_ c: inout [String: Any], className: String) {
        if className == "Softmax" { c["axis"] = -1 } else { c["activation"] = activation.rawValue }
    }

    public func outputShape(input: [Int], layer: String) throws -> [Int] { input }
    public var finishesBlock: Bool { true }

    public func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        ActivationLayer(name: spec.name, activation: activation, inputShape: inputShape)
    }
}
