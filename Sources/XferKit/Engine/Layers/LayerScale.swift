// LayerScale: ConvNeXt's per-channel scale of a residual branch, `x · γ` with γ (projection_dim)
// trainable, as keras.applications registers it (`LayerScale`, Keras 3 and tf-keras).
// Backward: dx = dy · γ, dγ += Σ dy · x over the positions.
//
// The Keras kind, `LayerScaleConfig` (end of file).

/// ConvNeXt's `LayerScale`.
final class LayerScaleLayer: TrainableLayer {
    var training = false
    var trainable = false
    let name: String
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }
    var gamma: [Float]
    var savedInput: Tensor?
    private(set) var dGamma: [Float] = []

    init(name: String, inputShape: [Int], gamma: [Float]) {
        self.name = name; self.inputShape = inputShape; self.gamma = gamma
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = context.output(x.shape)
        let c = gamma.count
        x.values.withUnsafeBufferPointer { px in
            y.values.withUnsafeMutableBufferPointer { py in
                for i in 0..<px.count { py[i] = px[i] * gamma[i % c] }
            }
        }
        savedInput = context.release(x)
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        let c = gamma.count
        if trainable, let x = savedInput {
            if dGamma.isEmpty { dGamma = [Float](repeating: 0, count: c) }
            for i in 0..<dy.count { dGamma[i % c] += dy.values[i] * x.values[i] }
        }
        guard needInputGradient else { return nil }
        var dx = dy
        dx.values.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] *= gamma[i % c] } }
        return dx
    }

    func zeroGradients() { dGamma = [Float](repeating: 0, count: gamma.count) }

    func withParameters(_ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        guard trainable else { return }
        if dGamma.isEmpty { dGamma = [Float](repeating: 0, count: gamma.count) }
        dGamma.withUnsafeBufferPointer { g in gamma.withUnsafeMutableBufferPointer { body(.gamma, $0, g) } }
    }

    func currentWeights() -> [WeightRole: [Float]] { [.gamma: gamma] }
}

// MARK: The Keras kind

/// keras.applications' `LayerScale(init_values, projection_dim)`.
struct LayerScaleConfig: SingleInputOp, Equatable {
    var initValues: Double
    var projectionDim: Int

    static var kerasClassNames: [String] { ["LayerScale"] }

    init(initValues: Double, projectionDim: Int) { self.initValues = initValues; self.projectionDim = projectionDim }

    init(keras k: KerasLayerConfig) throws {
        self.init(initValues: try k.double("init_values", default: 1e-6), projectionDim: try k.int("projection_dim"))
    }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["init_values"] = initValues
        c["projection_dim"] = projectionDim
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        guard input.last == projectionDim else {
            throw XferError.badInput(layer, "LayerScale of \(projectionDim) channels on an input \(shapeText(input))")
        }
        return input
    }

    func expectedWeights(input: [Int]) -> [ExpectedWeight] { [(.gamma, [projectionDim], true)] }
    var hasWeights: Bool { true }
    var finishesBlock: Bool { true }
    var keras3Registration: (module: String, name: String)? { ("keras.src.applications.convnext", "LayerScale") }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        let gamma = try spec.values(.gamma, shape: [projectionDim])
        try spec.onlyWeights([.gamma])
        return LayerScaleLayer(name: spec.name, inputShape: inputShape, gamma: gamma)
    }
}
