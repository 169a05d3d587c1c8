// The 1-D layers (Conv1D, GlobalAveragePooling1D, GlobalMaxPooling1D) on a sequence (T, C) run
// as their 2-D kernels on the image (1, T, C): a (N, T, C) tensor and a (N, 1, T, C) one hold
// the same values in the same order, and a 1-D window of k steps is a 1×k window. So the 1-D
// kinds reuse the 2-D forward and backward passes (and their naive oracles) unchanged; this
// adapter only renames the shapes on the way in and out.

/// A 2-D engine layer run on sequences: input (T, C) as (1, T, C), output reshaped back.
package final class SequenceAsImageLayer: TrainableLayer {
    /// The 2-D layer, built for the input (1, T, C).
    let inner: any TrainableLayer
    package let name: String
    package let inputShape: [Int]
    package let outputShape: [Int]

    /// Wraps `inner` (built for `[1] + inputShape`); its output (1, T′, C′) becomes (T′, C′)
    /// and a (C′) output stays as it is.
    init(_ inner: any TrainableLayer, inputShape: [Int]) {
        precondition(inner.inputShape == [1] + inputShape)
        self.inner = inner; self.name = inner.name; self.inputShape = inputShape
        let out = inner.outputShape
        outputShape = out.count == 3 && out[0] == 1 ? Array(out.dropFirst()) : out
    }

    package var training: Bool {
        get { inner.training }
        set { inner.training = newValue }
    }

    package var trainable: Bool {
        get { inner.trainable }
        set { inner.trainable = newValue }
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        let n = x.shape[0]
        return inner.forward(x.reshaped([n] + inner.inputShape), context).reshaped([n] + outputShape)
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        let n = dy.shape[0]
        return inner.backward(dy.reshaped([n] + inner.outputShape), context, needInputGradient: needInputGradient)?
            .reshaped([n] + inputShape)
    }

    package func zeroGradients() { inner.zeroGradients() }

    package func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        inner.withParameters(body)
    }

    package func currentWeights() -> [WeightRole: [Float]] { inner.currentWeights() }
    package func restoreWeights(_ weights: [WeightRole: [Float]]) { inner.restoreWeights(weights) }
}

/// The (T, C) of a sequence input, or an error naming `layer`.
func sequenceInput(_ input: [Int], layer: String, kind: String) throws -> (steps: Int, channels: Int) {
    guard input.count == 2 else {
        throw XferError.badInput(layer, "\(kind) expects a sequence input (steps, channels), got \(shapeText(input))")
    }
    return (input[0], input[1])
}

/// The 1-D global poolings: one Keras config (`keepdims`, `data_format`), the 2-D pooling of the
/// same name on the image (1, T, C) as the engine layer.
protocol GlobalPooling1DKind: SingleInputOp {
    var keepdims: Bool { get }
    init(keepdims: Bool)
    /// The Keras class name, for messages.
    static var kind: String { get }
    /// The 2-D global pooling layer on (1, T, C).
    static func imageLayer(name: String, keepdims: Bool, inputShape: [Int]) throws -> any TrainableLayer
}

extension GlobalPooling1DKind {
    package static var kerasClassNames: [String] { [kind] }

    package init(keras k: KerasLayerConfig) throws {
        if let f = k["data_format"] as? String, f != "channels_last" { throw k.unsupported("data_format '\(f)' (channels_last only)") }
        self.init(keepdims: k.bool("keepdims", default: false))
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["data_format"] = "channels_last"
        c["keepdims"] = keepdims
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        let (_, c) = try sequenceInput(input, layer: layer, kind: Self.kind)
        return keepdims ? [1, c] : [c]
    }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        _ = try sequenceInput(inputShape, layer: spec.name, kind: Self.kind)
        return SequenceAsImageLayer(try Self.imageLayer(name: spec.name, keepdims: keepdims, inputShape: [1] + inputShape),
                                    inputShape: inputShape)
    }
}
