// What a layer needs for training, beside its forward pass (`Layer`):
//
// - a mode: Keras's `training` argument as this layer sees it. BatchNormalization
//   uses batch statistics and updates its moving averages only when training (and a
//   frozen BN layer is never training, as in Keras); Dropout is active only when
//   training.
// - `backward`: from dy (N, outputShape…) it ADDS the weight gradients into the
//   layer's gradient buffers (when the layer is trainable) and returns dx
//   (N, inputShape…) when asked. It uses what the last forward kept
//   (`ForwardContext.keepForBackward`).
// - its trainable parameters with their gradients, in Keras's order
//   (kernel, bias / gamma, beta), for the optimizer.

package protocol TrainableLayer: Layer {
    /// Keras's `training` flag for the next forward passes.
    var training: Bool { get set }
    /// Whether the layer's weights train (gradients are accumulated and handed to the optimizer).
    var trainable: Bool { get set }
    /// Backward pass of the last forward. Adds into the weight gradients when `trainable`.
    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor?
    /// Sets every weight gradient to zero.
    func zeroGradients()
    /// Calls `body` for each trainable-kind weight (never BN moving statistics) with its values and gradient.
    func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void)
    /// Every weight by role (moving statistics included), as they are now: for saving.
    func currentWeights() -> [WeightRole: [Float]]
    /// Sets weights by role (as `currentWeights` gives them).
    func restoreWeights(_ weights: [WeightRole: [Float]])
}

/// A layer whose weights are one kernel and an optional bias (Conv2D, DepthwiseConv2D, grouped
/// Conv2D), with gradients of the same shapes: allocated when it first trains, and handed to the
/// optimizer only while it is trainable (Keras: a frozen layer has no trainable weights).
package protocol KernelBiasLayer: TrainableLayer {
    var kernel: [Float] { get set }
    var bias: [Float]? { get set }
    var dKernel: [Float] { get set }
    var dBias: [Float] { get set }
    /// The kernel's role: `.kernel`, or `.depthwiseKernel` for a DepthwiseConv2D.
    var kernelRole: WeightRole { get }
}

extension KernelBiasLayer {
    package var kernelRole: WeightRole { .kernel }

    func allocateGradients() {
        if dKernel.isEmpty { dKernel = [Float](repeating: 0, count: kernel.count) }
        if let bias, dBias.isEmpty { dBias = [Float](repeating: 0, count: bias.count) }
    }

    package func zeroGradients() {
        if dKernel.isEmpty {
            if trainable { allocateGradients() }
            return
        }
        dKernel.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        dBias.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// The kernel, then the bias, when the layer is trainable.
    package func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        guard trainable else { return }
        allocateGradients()
        let role = kernelRole
        dKernel.withUnsafeBufferPointer { g in kernel.withUnsafeMutableBufferPointer { body(role, $0, g) } }
        if bias != nil {
            dBias.withUnsafeBufferPointer { g in bias!.withUnsafeMutableBufferPointer { body(.bias, $0, g) } }
        }
    }

    package func currentWeights() -> [WeightRole: [Float]] {
        var weights: [WeightRole: [Float]] = [kernelRole: kernel]
        if let bias { weights[.bias] = bias }
        return weights
    }
}

/// Weightless layers: nothing to train, no mode of their own.
extension TrainableLayer {
    package func zeroGradients() {}
    package func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {}
    package func currentWeights() -> [WeightRole: [Float]] { [:] }

    /// Through `withParameters`, so only the weights it gives: the trainable kinds (a layer gives
    /// them only while trainable). BatchNormalization overrides it to restore its moving
    /// statistics too.
    package func restoreWeights(_ weights: [WeightRole: [Float]]) {
        withParameters { role, value, _ in
            guard let v = weights[role], v.count == value.count else { return }
            _ = value.update(fromContentsOf: v)
        }
    }
}

/// A fresh zero tensor for an input gradient.
@inline(__always)
func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }

/// Runs `body` with a pointer to `t`'s values, or nil when there is no tensor.
@inline(__always)
func withOptionalValues<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let t else { return body(nil) }
    return t.values.withUnsafeBufferPointer { body($0.baseAddress) }
}
