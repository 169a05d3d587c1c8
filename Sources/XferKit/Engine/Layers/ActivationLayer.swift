// Activation: one of Keras's activation functions (Activations.swift), softmax over
// the last axis. Runs in place on its input. Backward: dx = dy · f′, f′ from the
// output (and from the input for silu and gelu, which then keep it).
//
// The Keras kind, `ActivationConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Activation` layer.
package final class ActivationLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    /// (N, …): the last output, and input when f′ needs it; kept only for backward.
    var savedOutput: Tensor?
    var savedInput: Tensor?
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }
    let activation: Activation

    init(name: String, activation: Activation, inputShape: [Int]) {
        self.name = name; self.activation = activation; self.inputShape = inputShape
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        if context.keepForBackward && activationBackwardNeedsInput(activation) { savedInput = copy x }
        var y = x
        activate(&y, activation)
        if context.keepForBackward { savedOutput = y }
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
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
package struct ActivationConfig: SingleInputOp, Equatable {
    package var activation: Activation
    package init(_ activation: Activation) { self.activation = activation }

    package static var kerasClassNames: [String] { ["Activation", "Softmax"] }

    package init(keras k: KerasLayerConfig) throws {
        if k.className == "Softmax" {
            let axis = k["axis"] as? Int ?? (k["axis"] as? [Int]).flatMap { $0.count == 1 ? $0[0] : nil } ?? -1
            guard axis == -1 else { throw k.unsupported("softmax over axis \(axis) is not supported (the last axis only)") }
            self.init(.softmax)
        } else {
            self.init(try k.activation())
        }
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        if className == "Softmax" { c["axis"] = -1 } else { c["activation"] = activation.rawValue }
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] { input }
    package var finishesBlock: Bool { true }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        ActivationLayer(name: spec.name, activation: activation, inputShape: inputShape)
    }
}
