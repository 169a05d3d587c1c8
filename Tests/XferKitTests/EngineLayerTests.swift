// The non-convolution layers: pooling edge cases worked out by hand from TensorFlow's
// rules, activations against their formulas in Double, Keras's ReLU options,
// BatchNormalization, Dense against the naive GEMM, and the shape-only layers.

import Foundation
import XCTest
@testable import XferKit

final class EngineLayerTests: XCTestCase {
    let context = ForwardContext()

    /// (1, 3, 3, 1) holding `values` row by row.
    func image3x3(_ values: [Float]) -> Tensor { Tensor(shape: [1, 3, 3, 1], values: values) }

    func pool(_ kind: String, _ x: Tensor, size: Int, stride: Int, _ padding: Padding) throws -> Tensor {
        let config = Pool2DConfig(poolSize: (size, size), strides: (stride, stride), padding: padding)
        let shape = Array(x.shape.dropFirst())
        let layer: Layer = kind == "max"
            ? try MaxPooling2DLayer(name: "p", config: config, inputShape: shape)
            : try AveragePooling2DLayer(name: "p", config: config, inputShape: shape)
        let y = layer.forward(x, context)
        XCTAssertEqual(Array(y.shape.dropFirst()), layer.outputShape)
        return y
    }

    // MARK: pooling

    func testMaxPoolingSameIgnoresPadding() throws {
        // 3×3, pool 2, stride 2, same: out 2×2, pad total 1, all of it bottom/right.
        let up = try pool("max", image3x3([1, 2, 3, 4, 5, 6, 7, 8, 9]), size: 2, stride: 2, .same)
        XCTAssertEqual(up.shape, [1, 2, 2, 1]); XCTAssertEqual(up.values, [5, 6, 8, 9])
        // All negative: a padded zero must never win.
        let down = try pool("max", image3x3([-1, -2, -3, -4, -5, -6, -7, -8, -9]), size: 2, stride: 2, .same)
        XCTAssertEqual(down.values, [-1, -3, -7, -9])
        // Pool 3, stride 1, same: pad 1 on each side; corner windows see 2×2 real values.
        let wide = try pool("max", image3x3([-1, -2, -3, -4, -5, -6, -7, -8, -9]), size: 3, stride: 1, .same)
        XCTAssertEqual(wide.values, [-1, -1, -2, -1, -1, -2, -4, -4, -5])
    }

    func testMaxPoolingValidDropsTheOddEdge() throws {
        // 3×3, pool 2, stride 2, valid: floor((3 − 2)/2) + 1 = 1; the last row/column is dropped.
        let y = try pool("max", image3x3([1, 2, 3, 4, 5, 6, 7, 8, 9]), size: 2, stride: 2, .valid)
        XCTAssertEqual(y.shape, [1, 1, 1, 1]); XCTAssertEqual(y.values, [5])
    }

    func testAveragePoolingSameDividesByRealElements() throws {
        let x = image3x3([1, 2, 3, 4, 5, 6, 7, 8, 9])
        let y = try pool("avg", x, size: 2, stride: 2, .same)
        // Windows {1,2,4,5}, {3,6}, {7,8}, {9}.
        XCTAssertEqual(y.values, [3, 4.5, 7.5, 9])
        let z = try pool("avg", x, size: 3, stride: 1, .same)
        // Top-left window {1,2,4,5}; top-middle {1,2,3,4,5,6}; centre all nine.
        XCTAssertEqual(z.values[0], 3); XCTAssertEqual(z.values[1], 3.5); XCTAssertEqual(z.values[4], 5)
        let v = try pool("avg", x, size: 2, stride: 1, .valid)
        XCTAssertEqual(v.values, [3, 4, 6, 7])
    }

    /// Pooling with several channels and samples, against loops over the padded window.
    func testPoolingMatchesReferenceOnRandomShapes() throws {
        var rng = SeededRandom(seed: 3)
        for (h, w, c, k, s, padding) in [(7, 5, 3, 3, 2, Padding.same), (6, 6, 2, 2, 2, .same),
                                         (8, 7, 4, 3, 1, .valid), (5, 9, 1, 2, 3, .same)] {
            let x = rng.tensor([2, h, w, c])
            for kind in ["max", "avg"] {
                let y = try pool(kind, x, size: k, stride: s, padding)
                let oh = y.shape[1], ow = y.shape[2]
                let padTop = padding == .same ? max((oh - 1) * s + k - h, 0) / 2 : 0
                let padLeft = padding == .same ? max((ow - 1) * s + k - w, 0) / 2 : 0
                for n in 0..<2 {
                    for i in 0..<oh {
                        for j in 0..<ow {
                            for ch in 0..<c {
                                var real: [Float] = []
                                for u in 0..<k {
                                    for v in 0..<k {
                                        let yy = i * s + u - padTop, xx = j * s + v - padLeft
                                        if yy >= 0 && yy < h && xx >= 0 && xx < w {
                                            real.append(x.values[((n * h + yy) * w + xx) * c + ch])
                                        }
                                    }
                                }
                                let expected = kind == "max" ? real.max()! : real.reduce(0, +) / Float(real.count)
                                let got = y.values[((n * oh + i) * ow + j) * c + ch]
                                XCTAssertEqual(got, expected, accuracy: 1e-6, "\(kind) \(h)x\(w) k\(k) s\(s) \(padding)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testGlobalPoolingKeepdims() throws {
        let x = Tensor(shape: [2, 2, 2, 2], values: [1, -1, 2, -2, 3, -3, 4, -4,
                                                     5, 0, 6, 0, 7, 0, 8, 9])
        let avg = try GlobalAveragePooling2DLayer(name: "g", keepdims: false, inputShape: [2, 2, 2])
        let y = avg.forward(x, context)
        XCTAssertEqual(y.shape, [2, 2]); XCTAssertEqual(y.values, [2.5, -2.5, 6.5, 2.25])
        let maxKeep = try GlobalMaxPooling2DLayer(name: "g", keepdims: true, inputShape: [2, 2, 2])
        let z = maxKeep.forward(x, context)
        XCTAssertEqual(z.shape, [2, 1, 1, 2]); XCTAssertEqual(z.values, [4, -1, 8, 9])
    }

    // MARK: activations

    func testSoftmaxRowsSumToOneAndSurviveLargeLogits() {
        var rng = SeededRandom(seed: 4)
        var x = Tensor(shape: [5, 7], values: rng.floats(35).map { $0 * 30 })
        x.values[0] = 1000; x.values[1] = 1001  // would overflow a naive exp
        let logits = x
        activate(&x, .softmax)
        for r in 0..<5 {
            let row = x.values[r * 7 ..< r * 7 + 7]
            XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
            let l = logits.values[r * 7 ..< r * 7 + 7].map(Double.init)
            let m = l.max()!
            let denominator = l.map { Foundation.exp($0 - m) }.reduce(0, +)
            for (j, v) in row.enumerated() {
                XCTAssertEqual(Double(v), Foundation.exp(l[j] - m) / denominator, accuracy: 1e-6)
            }
        }
    }

    func testEveryActivationMatchesItsFormula() {
        let xs: [Float] = [-20, -3, -1, -0.5, 0, 0.25, 1, 2.5, 7, 20]
        func reference(_ a: Activation, _ x: Double) -> Double {
            let sigmoid = 1 / (1 + Foundation.exp(-x))
            switch a {
            case .linear: return x
            case .relu: return max(x, 0)
            case .relu6: return min(max(x, 0), 6)
            case .sigmoid: return sigmoid
            case .tanh: return Foundation.tanh(x)
            case .elu: return x > 0 ? x : Foundation.exp(x) - 1
            case .selu: return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (Foundation.exp(x) - 1))
            case .softplus: return Foundation.log(1 + Foundation.exp(x))
            case .softsign: return x / (1 + abs(x))
            case .silu: return x * sigmoid
            case .gelu: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
            case .hardSigmoid: return min(max(x + 3, 0), 6) / 6
            case .hardSilu: return x * min(max(x + 3, 0), 6) / 6
            case .softmax: fatalError()
            }
        }
        for a in Activation.allCases where a != .softmax {
            var t = Tensor(shape: [2, 5], values: xs)
            activate(&t, a)
            for (x, y) in zip(xs, t.values) {
                let r = reference(a, Double(x))
                XCTAssertEqual(Double(y), r, accuracy: 1e-5 * max(1, abs(r)), "\(a)(\(x))")
            }
        }
    }

    func testReLUOptionsFollowKeras() {
        let xs: [Float] = [-3, -1, -0.5, 0, 0.5, 1, 2, 8]
        func run(_ c: ReLUConfig) -> [Float] {
            ReLULayer(name: "r", config: c, inputShape: [8]).forward(Tensor(shape: [1, 8], values: xs), context).values
        }
        XCTAssertEqual(run(ReLUConfig()), [0, 0, 0, 0, 0.5, 1, 2, 8])
        XCTAssertEqual(run(ReLUConfig(maxValue: 6)), [0, 0, 0, 0, 0.5, 1, 2, 6])
        // Leaky: x > 0 ? x : slope·x.
        for (got, want) in zip(run(ReLUConfig(negativeSlope: 0.1)), [-0.3, -0.1, -0.05, 0, 0.5, 1, 2, 8] as [Float]) {
            XCTAssertEqual(got, want, accuracy: 1e-6)
        }
        // Threshold: x > t ? x : 0.
        XCTAssertEqual(run(ReLUConfig(threshold: 1)), [0, 0, 0, 0, 0, 0, 2, 8])
        // Threshold and slope: x > t ? x : slope·(x − t).
        let ts = run(ReLUConfig(negativeSlope: 0.5, threshold: 1))
        for (got, want) in zip(ts, [-2, -1, -0.75, -0.5, -0.25, 0, 2, 8] as [Float]) { XCTAssertEqual(got, want, accuracy: 1e-6) }
        // Max value and slope: clip(x, 0, max) − slope·max(−x, 0).
        let ms = run(ReLUConfig(maxValue: 1.5, negativeSlope: 0.5))
        for (got, want) in zip(ms, [-1.5, -0.5, -0.25, 0, 0.5, 1, 1.5, 1.5] as [Float]) { XCTAssertEqual(got, want, accuracy: 1e-6) }
        // Negative threshold without max: values between t and 0 pass unchanged.
        XCTAssertEqual(run(ReLUConfig(threshold: -0.75)), [0, 0, -0.5, 0, 0.5, 1, 2, 8])
    }

    // MARK: BatchNormalization, Dense

    func testBatchNormalizationUsesMovingStatistics() throws {
        var rng = SeededRandom(seed: 5)
        let c = 3
        let gamma = rng.floats(c), beta = rng.floats(c), mean = rng.floats(c)
        let variance = rng.floats(c).map { abs($0) + 0.1 }
        let x = rng.tensor([2, 2, 2, c])
        for (scale, center) in [(true, true), (false, true), (true, false), (false, false)] {
            let config = BatchNormConfig(epsilon: 1e-3, center: center, scale: scale)
            let layer = try BatchNormalizationLayer(name: "bn", config: config, inputShape: [2, 2, c],
                                                    gamma: scale ? gamma : nil, beta: center ? beta : nil,
                                                    movingMean: mean, movingVariance: variance)
            let y = layer.forward(x, context)
            for i in 0..<x.count {
                let ch = i % c
                let g = scale ? Double(gamma[ch]) : 1, b = center ? Double(beta[ch]) : 0
                let want = g * (Double(x.values[i]) - Double(mean[ch])) / (Double(variance[ch]) + 1e-3).squareRoot() + b
                XCTAssertEqual(Double(y.values[i]), want, accuracy: 1e-5)
            }
        }
    }

    func testDenseMatchesNaiveGEMMOnAnyLeadingShape() throws {
        var rng = SeededRandom(seed: 6)
        // (batch, per-sample shape, units): a batch of one with many units splits columns.
        for (batch, shape, units, act) in [(1, [70], 300, Activation.relu), (5, [33], 7, .softmax),
                                           (3, [2, 4, 9], 5, .linear), (130, [16], 70, .tanh)] {
            let inputs = shape.last!
            let kernel = rng.floats(inputs * units), bias = rng.floats(units)
            let layer = try DenseLayer(name: "d", config: DenseConfig(units: units, activation: act),
                                       inputShape: shape, kernel: kernel, bias: bias)
            let x = rng.tensor([batch] + shape)
            let y = layer.forward(x, context)
            XCTAssertEqual(y.shape, [batch] + shape.dropLast() + [units])
            let rows = x.count / inputs
            var want = [Float](repeating: 0, count: rows * units)
            GEMM.naiveSgemm(m: rows, n: units, k: inputs, a: x.values, lda: inputs, b: kernel, ldb: units, c: &want, ldc: units)
            for r in 0..<rows { for j in 0..<units { want[r * units + j] += bias[j] } }
            want.withUnsafeMutableBufferPointer { activate($0.baseAddress!, rows: rows, cols: units, act) }
            let err = zip(y.values, want).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(err, 1e-4, "batch \(batch) shape \(shape) units \(units) \(act)")
        }
    }

    // MARK: shape layers

    func testFlattenZeroPaddingDropoutInput() throws {
        let x = Tensor(shape: [1, 2, 2, 2], values: [1, 2, 3, 4, 5, 6, 7, 8])
        let flat = FlattenLayer(name: "f", inputShape: [2, 2, 2]).forward(x, context)
        XCTAssertEqual(flat.shape, [1, 8]); XCTAssertEqual(flat.values, x.values)
        XCTAssertEqual(try DropoutLayer(name: "d", config: DropoutConfig(rate: 0.5), inputShape: [2, 2, 2]).forward(x, context), x)
        XCTAssertEqual(InputLayer(name: "i", inputShape: [2, 2, 2]).forward(x, context), x)

        let pad = try ZeroPadding2DLayer(name: "z", config: ZeroPadding2DConfig(top: 1, bottom: 0, left: 0, right: 2),
                                         inputShape: [2, 2, 2])
        XCTAssertEqual(pad.outputShape, [3, 4, 2])
        let y = pad.forward(x, context)
        XCTAssertEqual(y.values, [0, 0, 0, 0, 0, 0, 0, 0,
                                  1, 2, 3, 4, 0, 0, 0, 0,
                                  5, 6, 7, 8, 0, 0, 0, 0])
    }
}
