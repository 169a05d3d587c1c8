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
