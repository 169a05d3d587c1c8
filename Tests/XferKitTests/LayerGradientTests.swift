// Finite-difference checks (checkGradient in BackwardTests.swift: central differences
// of the float32 forward, the loss Σ r·y summed in Double, kinks skipped) for the layers
// not covered there: Dense (every activation), Activation, ReLU (all its forms),
// GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D, Flatten and Dropout.

import XCTest
@testable import XferKit

final class LayerGradientTests: XCTestCase {
    var rng = XferKit.SeededRandom(seed: 42)

    func random(_ n: Int, _ scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.uniform(-scale, scale) } }

    /// Input gradient of a weightless layer, checked by finite differences.
    func checkInputGradient(_ layer: TrainableLayer, shape: [Int], label: String, scale: Float = 1,
                            signature: @escaping ([Float]) -> [Int32] = { _ in [] }) {
        let x = Tensor(shape: shape, values: random(shape.reduce(1, *), scale))
        let context = ForwardContext(keepForBackward: true)
        let y = layer.forward(x, context)
        let r = random(y.count)
        let dx = layer.backward(Tensor(shape: y.shape, values: r), context, needInputGradient: true)!
        let check = checkGradient(label, point: x.values, analytic: dx.values, step: 1e-3) { p in
            let ctx = ForwardContext()
            let out = layer.forward(Tensor(shape: shape, values: p), ctx)
            return (weightedSum(r, out), signature(p))
        }
        print("\(label): \(check)")
    }

    func testDenseEveryActivation() throws {
        for act in Activation.allCases {
            let inputs = 5, units = 4, n = 3
            let layer = try DenseLayer(name: "d", config: DenseConfig(units: units, activation: act), inputShape: [inputs],
                                       kernel: random(inputs * units), bias: random(units))
            layer.trainable = true
            let x = Tensor(shape: [n, inputs], values: random(n * inputs, 2))
            let ctx = ForwardContext(keepForBackward: true)
            let y = layer.forward(x, ctx)
            let r = random(y.count)
            let dx = layer.backward(Tensor(shape: y.shape, values: r), ctx, needInputGradient: true)!
            var grads: [String: [Float]] = [:]
            layer.withParameters { role, _, g in grads[role.rawValue] = Array(g) }
            // The pre-activation's side of each kink (relu, relu6 at 0 and 6; selu's slope jumps at 0).
            let kinky = [Activation.relu, .relu6, .selu].contains(act)
            func kinksAt(_ xs: [Float], _ kernel: [Float], _ bias: [Float]) -> [Int32] {
                guard kinky else { return [] }
                var pre = [Float](repeating: 0, count: n * units)
                for i in 0..<n { for j in 0..<units { var s = bias[j]; for k in 0..<inputs { s += xs[i * inputs + k] * kernel[k * units + j] }; pre[i * units + j] = s } }
                return pre.map { ($0 > 0 ? 1 : 0) + ($0 > 6 ? 2 : 0) }
            }
            let kinks: ([Float]) -> [Int32] = { p in kinksAt(p, layer.kernel, layer.bias!) }
            _ = checkGradient("dense \(act) dx", point: x.values, analytic: dx.values, step: 1e-3) { p in
                (weightedSum(r, layer.forward(Tensor(shape: x.shape, values: p), ForwardContext())), kinks(p))
            }
            let kernel = layer.kernel
            _ = checkGradient("dense \(act) dKernel", point: kernel, analytic: grads["kernel"]!, step: 1e-3) { p in
                layer.kernel = p
                defer { layer.kernel = kernel }
                return (weightedSum(r, layer.forward(x, ForwardContext())), kinksAt(x.values, p, layer.bias!))
            }
            let bias = layer.bias!
            _ = checkGradient("dense \(act) dBias", point: bias, analytic: grads["bias"]!, step: 1e-3) { p in
                layer.bias = p
                defer { layer.bias = bias }
                return (weightedSum(r, layer.forward(x, ForwardContext())), kinksAt(x.values, layer.kernel, p))
            }
        }
    }

    func testActivationLayerEveryActivation() {
        for act in Activation.allCases {
            let layer = ActivationLayer(name: "a", activation: act, inputShape: [3, 4])
            checkInputGradient(layer, shape: [2, 3, 4], label: "activation \(act)", scale: 3) { p in
                [.relu, .relu6, .selu].contains(act) ? p.map { ($0 > 0 ? 1 : 0) + ($0 > 6 ? 2 : 0) } : []
            }
        }
    }

    func testReLUForms() {
        let forms = [ReLUConfig(), ReLUConfig(maxValue: 1), ReLUConfig(negativeSlope: 0.1),
                     ReLUConfig(threshold: 0.3), ReLUConfig(maxValue: 1.5, negativeSlope: 0.2, threshold: -0.5)]
        for c in forms {
            let layer = ReLULayer(name: "r", config: c, inputShape: [6])
            checkInputGradient(layer, shape: [3, 6], label: "relu \(c)", scale: 2) { p in
                p.map { x in Int32((x > c.threshold ? 1 : 0) + (x > 0 ? 2 : 0) + (x > (c.maxValue ?? .infinity) ? 4 : 0)) }
            }
        }
    }

    func testGlobalPoolingAndShapeLayers() throws {
        checkInputGradient(RescalingLayer(name: "rescaling", scale: 1 / 127.5, offset: -1, inputShape: [3, 4, 2]), shape: [2, 3, 4, 2], label: "rescaling")
        checkInputGradient(try GlobalAveragePooling2DLayer(name: "gap", keepdims: false, inputShape: [3, 4, 2]), shape: [2, 3, 4, 2], label: "gap")
        checkInputGradient(try GlobalAveragePooling2DLayer(name: "gap", keepdims: true, inputShape: [3, 4, 2]), shape: [2, 3, 4, 2], label: "gap keepdims")
        let gmp = try GlobalMaxPooling2DLayer(name: "gmp", keepdims: false, inputShape: [3, 3, 2])
        checkInputGradient(gmp, shape: [2, 3, 3, 2], label: "gmp") { p in
            // The winner of each (sample, channel).
            (0..<4).map { sc in
                let b = sc / 2, ch = sc % 2
                let vals = (0..<9).map { p[(b * 9 + $0) * 2 + ch] }
                return Int32(vals.indices.max { vals[$0] < vals[$1] }!)
            }
        }
        checkInputGradient(try ZeroPadding2DLayer(name: "zp", config: ZeroPadding2DConfig(top: 1, bottom: 2, left: 0, right: 1), inputShape: [3, 2, 2]),
                           shape: [2, 3, 2, 2], label: "zero padding")
        checkInputGradient(FlattenLayer(name: "f", inputShape: [2, 2, 3]), shape: [2, 2, 2, 3], label: "flatten")
    }

    func testGlobalMaxPoolingSharesTiesAsTensorFlow() throws {
        let layer = try GlobalMaxPooling2DLayer(name: "gmp", keepdims: false, inputShape: [2, 2, 1])
        let ctx = ForwardContext(keepForBackward: true)
        _ = layer.forward(Tensor(shape: [1, 2, 2, 1], values: [3, 1, 3, 2]), ctx)
        let dx = layer.backward(Tensor(shape: [1, 1], values: [1]), ctx, needInputGradient: true)!
        XCTAssertEqual(dx.values, [0.5, 0, 0.5, 0])
    }

    func testDropoutTrainingMask() throws {
        let layer = try DropoutLayer(name: "drop", config: DropoutConfig(rate: 0.25), inputShape: [1000])
        layer.training = true
        layer.random = XferKit.SeededRandom(seed: 9)
        let ctx = ForwardContext(keepForBackward: true)
        let y = layer.forward(Tensor(shape: [1, 1000], repeating: 1), ctx)
        let kept = y.values.filter { $0 != 0 }
        XCTAssertTrue(kept.allSatisfy { abs($0 - 1 / 0.75) < 1e-6 }, "kept values are scaled by 1/(1−rate)")
        XCTAssertEqual(Double(kept.count) / 1000, 0.75, accuracy: 0.05)
        let dx = layer.backward(Tensor(shape: [1, 1000], repeating: 1), ctx, needInputGradient: true)!
        XCTAssertEqual(dx.values, y.values, "backward multiplies by the same mask")
        layer.training = false
        XCTAssertEqual(layer.forward(Tensor(shape: [1, 3], values: [1, 2, 3]), ForwardContext()).values, [1, 2, 3])
    }

    /// noise_shape (None, 1, 1, C), SpatialDropout2D and StochasticDepth: one draw shared along
    /// the axes of 1 (a whole channel map, a whole sample), scaled by 1/(1 − rate).
    func testSharedDropoutMasks() throws {
        let input = [6, 5, 4]
        let spatial = try XCTUnwrap(SpatialDropout2DConfig(rate: 0.5).makeLayer(LayerSpec(name: "s", op: SpatialDropout2DConfig(rate: 0.5)), inputShape: input) as? DropoutLayer)
        let depth = try XCTUnwrap(StochasticDepthConfig(rate: 0.5).makeLayer(LayerSpec(name: "d", op: StochasticDepthConfig(rate: 0.5)), inputShape: input) as? DropoutLayer)
        let noise = try DropoutLayer(name: "n", config: DropoutConfig(rate: 0.5, noiseShape: [nil, 1, 1, nil]), inputShape: input)
        for (layer, perSample) in [(spatial, false), (depth, true), (noise, false)] {
            layer.training = true
            layer.random = XferKit.SeededRandom(seed: 4)
            let n = 16
            let y = layer.forward(Tensor(shape: [n] + input, repeating: 1), ForwardContext(keepForBackward: true))
            XCTAssertTrue(y.values.allSatisfy { $0 == 0 || $0 == 2 }, layer.name)
            for b in 0..<n {
                for c in 0..<4 {
                    let map = (0..<30).map { y.values[(b * 30 + $0) * 4 + c] }
                    XCTAssertEqual(Set(map).count, 1, "\(layer.name): one draw per sample and channel")
                }
                let sample = y.values[(b * 120)..<((b + 1) * 120)]
                if perSample { XCTAssertEqual(Set(sample).count, 1, "one draw per sample") }
            }
            let kept = Set(y.values).contains(2) && Set(y.values).contains(0)
            XCTAssertTrue(kept, "\(layer.name): some kept, some dropped")
        }
    }
}
