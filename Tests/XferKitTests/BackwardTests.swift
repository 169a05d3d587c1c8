// Backward passes of Conv2D, MaxPooling2D, AveragePooling2D and BatchNormalization,
// checked two ways on tiny shapes:
//
// - finite differences: for the loss L = Σ r·y (r random, so dL/dy = r), the central
//   difference (L(p + h) − L(p − h)) / 2h of the float32 forward, against the float32
//   backward, coordinate by coordinate; relative error ≤ 1e-2 of max(|numeric|,
//   |analytic|, 1). Where the step crosses a kink (a ReLU switching, a max-pool window
//   changing its winner), the coordinate is skipped, as Caffe's checker does. L is summed
//   in Double; outputs the step does not touch come out bit-identical and cancel.
// - the naive loops (Double sums), at 1e-4.

import XCTest
@testable import XferKit

/// The outcome of one finite-difference check.
struct GradientCheck: CustomStringConvertible {
    var maxAbsError: Double = 0, maxRelError: Double = 0
    var checked = 0, skipped = 0
    var description: String {
        "checked \(checked), skipped \(skipped), max abs error \(maxAbsError), max rel error \(maxRelError)"
    }
}

/// Σ r·y in Double.
func weightedSum(_ r: [Float], _ y: Tensor) -> Double {
    precondition(r.count == y.count)
    var s = 0.0
    for i in 0..<r.count { s += Double(r[i]) * Double(y.values[i]) }
    return s
}

/// Compares `analytic` with central differences of `evaluate` around `point`, one
/// coordinate at a time. `evaluate` returns the loss and a signature of the piecewise
/// structure (ReLU masks, argmax); a coordinate whose step changes it is skipped.
func checkGradient(_ label: String, point: [Float], analytic: [Float], step: Float = 1e-2,
                   tolerance: Double = 1e-2, file: StaticString = #filePath, line: UInt = #line,
                   _ evaluate: ([Float]) -> (loss: Double, signature: [Int32])) -> GradientCheck {
    precondition(point.count == analytic.count, "\(label): \(point.count) values, \(analytic.count) gradients")
    var result = GradientCheck()
    let center = evaluate(point).signature
    var p = point
    for i in 0..<point.count {
        let plus = point[i] + step, minus = point[i] - step
        p[i] = plus
        let up = evaluate(p)
        p[i] = minus
        let down = evaluate(p)
        p[i] = point[i]
        if up.signature != center || down.signature != center {
            result.skipped += 1
            continue
        }
        let numeric = (up.loss - down.loss) / (Double(plus) - Double(minus))
        let error = abs(numeric - Double(analytic[i]))
        let scale = max(abs(numeric), abs(Double(analytic[i])), 1)
        result.maxAbsError = max(result.maxAbsError, error)
        result.maxRelError = max(result.maxRelError, error / scale)
        result.checked += 1
        if error > tolerance * scale {
            XCTFail("\(label)[\(i)]: analytic \(analytic[i]), numeric \(numeric)", file: file, line: line)
        }
    }
    XCTAssertGreaterThan(result.checked, 0, "\(label): every coordinate was skipped", file: file, line: line)
    return result
}

/// Largest |a − b|.
func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

final class BackwardTests: XCTestCase {
    /// Every check's errors, printed at the end of each test (the numbers in the report).
    private var log: [String] = []

    override func tearDown() {
        for line in log { print("  \(name) \(line)") }
        log = []
        super.tearDown()
    }

    private func record(_ label: String, _ check: GradientCheck) { log.append("\(label): \(check)") }

    // MARK: Conv2D

    struct ConvCase {
        var batch: Int, h: Int, w: Int, c: Int, o: Int
        var k: (Int, Int), s: (Int, Int) = (1, 1), d: (Int, Int) = (1, 1)
        var padding: Padding
        var activation: Activation = .linear
        var useBias = true
    }

    static let convCases: [ConvCase] = [
        ConvCase(batch: 1, h: 5, w: 6, c: 2, o: 3, k: (3, 3), padding: .same, activation: .relu),
        ConvCase(batch: 3, h: 5, w: 6, c: 2, o: 3, k: (3, 3), padding: .same),
        ConvCase(batch: 3, h: 7, w: 7, c: 2, o: 3, k: (3, 3), s: (2, 2), padding: .valid),
        ConvCase(batch: 1, h: 8, w: 7, c: 3, o: 2, k: (3, 3), s: (2, 2), padding: .valid, activation: .relu),
        ConvCase(batch: 3, h: 4, w: 5, c: 3, o: 4, k: (1, 1), padding: .valid, useBias: false),
        ConvCase(batch: 1, h: 5, w: 3, c: 4, o: 2, k: (1, 1), padding: .same, activation: .relu),
        ConvCase(batch: 1, h: 9, w: 8, c: 2, o: 2, k: (5, 5), d: (2, 2), padding: .same, activation: .tanh),
        ConvCase(batch: 3, h: 9, w: 10, c: 1, o: 2, k: (5, 5), d: (2, 2), padding: .valid),
        ConvCase(batch: 3, h: 5, w: 7, c: 2, o: 3, k: (3, 3), s: (2, 2), padding: .same, activation: .relu),
        ConvCase(batch: 2, h: 5, w: 5, c: 3, o: 2, k: (1, 1), s: (2, 2), padding: .same),
        ConvCase(batch: 1, h: 6, w: 5, c: 2, o: 3, k: (2, 3), s: (1, 2), padding: .same),
    ]

    private func makeConv(_ t: ConvCase, _ rng: inout SeededRandom) throws -> Conv2DLayer {
        let config = Conv2DConfig(filters: t.o, kernelSize: (t.k.0, t.k.1), strides: (t.s.0, t.s.1),
                                  padding: t.padding, dilation: (t.d.0, t.d.1), useBias: t.useBias,
                                  activation: t.activation)
        let layer = try Conv2DLayer(name: "conv", config: config, inputShape: [t.h, t.w, t.c],
                                    kernel: rng.floats(t.k.0 * t.k.1 * t.c * t.o),
                                    bias: t.useBias ? rng.floats(t.o) : nil)
        layer.trainable = true
        return layer
    }

    /// The layer's backward for dL/dy = r: (dx, dKernel, dBias).
    private func convGradients(_ layer: Conv2DLayer, _ x: Tensor, _ r: [Float],
                               context: ForwardContext = ForwardContext(keepForBackward: true))
        -> (dx: Tensor, dKernel: [Float], dBias: [Float]) {
        context.keepForBackward = true
        let y = layer.forward(x, context)
        layer.zeroGradients()
        let dx = layer.backward(Tensor(shape: y.shape, values: r), context, needInputGradient: true)!
        return (dx, layer.dKernel, layer.dBias)
    }

    /// Loss of one forward, and for activations whose derivative has a corner at 0 (relu,
    /// relu6 also at 6, selu, elu, softsign) which side of it each output is on.
    private func convLoss(_ layer: Conv2DLayer, _ x: Tensor, _ r: [Float]) -> (loss: Double, signature: [Int32]) {
        let y = layer.forward(x, ForwardContext())
        let kinked: Set<Activation> = [.relu, .relu6, .selu, .elu, .softsign]
        return (weightedSum(r, y),
                kinked.contains(layer.config.activation) ? y.values.map { $0 > 0 ? ($0 < 6 ? 1 : 2) : 0 } : [])
    }

    func testConvolutionGradientsMatchFiniteDifferences() throws {
        var rng = SeededRandom(seed: 101)
        for (index, t) in Self.convCases.enumerated() {
            let layer = try makeConv(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let r = rng.floats(layer.outputShape.reduce(t.batch, *))
            let (dx, dKernel, dBias) = convGradients(layer, x, r)
            let label = "case \(index) \(t.k) s\(t.s) d\(t.d) \(t.padding) \(t.activation) N\(t.batch)"

            record("\(label) dx", checkGradient("\(label) dx", point: x.values, analytic: dx.values) { p in
                convLoss(layer, Tensor(shape: x.shape, values: p), r)
            })
            let kernel = layer.kernel
            record("\(label) dKernel", checkGradient("\(label) dKernel", point: kernel, analytic: dKernel) { p in
                layer.kernel = p
                defer { layer.kernel = kernel }
                return convLoss(layer, x, r)
            })
            if let bias = layer.bias {
                record("\(label) dBias", checkGradient("\(label) dBias", point: bias, analytic: dBias) { p in
                    layer.bias = p
                    defer { layer.bias = bias }
                    return convLoss(layer, x, r)
                })
            }
        }
    }

    /// dz = r·act'(y) for the activations the oracle cases use.
    private func referenceDz(_ r: [Float], _ y: Tensor, _ activation: Activation) -> Tensor {
        let dz: [Float] = zip(r, y.values).map { g, v in
            switch activation {
            case .linear: return g
            case .relu: return v > 0 ? g : 0
            case .tanh: return g * (1 - v * v)
            default: preconditionFailure("no reference for \(activation)")
            }
        }
        return Tensor(shape: y.shape, values: dz)
    }

    func testConvolutionBackwardMatchesDirectLoops() throws {
        var rng = SeededRandom(seed: 102)
        var worst: (dx: Float, dKernel: Float, dBias: Float) = (0, 0, 0)
        for (index, t) in Self.convCases.enumerated() {
            let layer = try makeConv(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let r = rng.floats(layer.outputShape.reduce(t.batch, *))
            let (dx, dKernel, dBias) = convGradients(layer, x, r)
            let y = conv2DForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias, t.activation)
            let want = conv2DBackwardNaive(x, layer.geometry, kernel: layer.kernel, dz: referenceDz(r, y, t.activation))
            let e = (dx.maxAbsDifference(want.dx), maxDifference(dKernel, want.dKernel),
                     t.useBias ? maxDifference(dBias, want.dBias) : 0)
            XCTAssertLessThanOrEqual(e.0, 1e-4, "case \(index) dx")
            XCTAssertLessThanOrEqual(e.1, 1e-4, "case \(index) dKernel")
            XCTAssertLessThanOrEqual(e.2, 1e-4, "case \(index) dBias")
            worst = (max(worst.dx, e.0), max(worst.dKernel, e.1), max(worst.dBias, e.2))
        }
        log.append("max |fast − naive|: dx \(worst.dx), dKernel \(worst.dKernel), dBias \(worst.dBias)")
    }

    /// Tiles of a few rows, several per sample, on more threads than cores, with and
    /// without the input gradient (the tasks are cut differently): same gradients.
    func testConvolutionBackwardTilingAndThreads() throws {
        let saved = ThreadPool.shared.threadCount
        defer { ThreadPool.shared.threadCount = saved }
        var rng = SeededRandom(seed: 103)
        for t in [ConvCase(batch: 3, h: 6, w: 6, c: 2, o: 3, k: (3, 3), padding: .same, activation: .relu),
                  ConvCase(batch: 5, h: 5, w: 4, c: 3, o: 2, k: (3, 3), s: (2, 2), padding: .same),
                  ConvCase(batch: 2, h: 4, w: 4, c: 3, o: 2, k: (1, 1), padding: .same)] {
            let layer = try makeConv(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let r = rng.floats(layer.outputShape.reduce(t.batch, *))
            let y = conv2DForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias, t.activation)
            let want = conv2DBackwardNaive(x, layer.geometry, kernel: layer.kernel, dz: referenceDz(r, y, t.activation))
            for threads in [1, 3] {
                ThreadPool.shared.threadCount = threads
                let tiny = ForwardContext(workspace: Workspace(floatsPerWorker: layer.geometry.k * 5))
                let got = convGradients(layer, x, r, context: tiny)
                XCTAssertLessThanOrEqual(got.dx.maxAbsDifference(want.dx), 1e-4, "\(t) threads \(threads)")
                XCTAssertLessThanOrEqual(maxDifference(got.dKernel, want.dKernel), 1e-4, "\(t) threads \(threads)")
                // Weights only: any tiles, no dx.
                _ = layer.forward(x, tiny)
                layer.zeroGradients()
                XCTAssertNil(layer.backward(Tensor(shape: y.shape, values: r), tiny, needInputGradient: false))
                XCTAssertLessThanOrEqual(maxDifference(layer.dKernel, want.dKernel), 1e-4, "\(t) threads \(threads), weights only")
                XCTAssertLessThanOrEqual(maxDifference(layer.dBias, want.dBias), 1e-4, "\(t) threads \(threads), weights only")
            }
        }
    }

    /// Every fused activation's derivative (from the output, or the input for silu/gelu).
    func testConvolutionActivationGradients() throws {
        var rng = SeededRandom(seed: 104)
        for activation in Activation.allCases {
            let t = ConvCase(batch: 2, h: 3, w: 4, c: 2, o: 3, k: (3, 3), padding: .same, activation: activation)
            let layer = try makeConv(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let r = rng.floats(layer.outputShape.reduce(t.batch, *))
            let (dx, dKernel, _) = convGradients(layer, x, r)
            record("\(activation) dx", checkGradient("\(activation) dx", point: x.values, analytic: dx.values) { p in
                convLoss(layer, Tensor(shape: x.shape, values: p), r)
            })
            let kernel = layer.kernel
            record("\(activation) dKernel", checkGradient("\(activation) dKernel", point: kernel, analytic: dKernel) { p in
                layer.kernel = p
                defer { layer.kernel = kernel }
                return convLoss(layer, x, r)
            })
        }
    }

    /// Gradients add up over backward calls until zeroed; a frozen layer has none.
    func testConvolutionGradientsAccumulateAndFreeze() throws {
        var rng = SeededRandom(seed: 105)
        let layer = try makeConv(ConvCase(batch: 2, h: 4, w: 4, c: 2, o: 2, k: (3, 3), padding: .same), &rng)
        let x = rng.tensor([2, 4, 4, 2]), r = rng.floats(2 * 4 * 4 * 2)
        let once = convGradients(layer, x, r)
        _ = layer.backward(Tensor(shape: [2, 4, 4, 2], values: r), ForwardContext(), needInputGradient: false)
        XCTAssertLessThanOrEqual(maxDifference(layer.dKernel, once.dKernel.map { 2 * $0 }), 1e-5)
        var roles: [WeightRole] = []
        layer.withParameters { role, value, gradient in
            roles.append(role)
            XCTAssertEqual(value.count, gradient.count)
        }
        XCTAssertEqual(roles, [.kernel, .bias])
        XCTAssertEqual(Set(layer.currentWeights().keys), [.kernel, .bias])

        layer.trainable = false
        roles = []
        layer.withParameters { role, _, _ in roles.append(role) }
        XCTAssertEqual(roles, [])
        let context = ForwardContext(keepForBackward: true)
        _ = layer.forward(x, context)
        XCTAssertNil(layer.backward(Tensor(shape: [2, 4, 4, 2], values: r), context, needInputGradient: false))
        let dx = layer.backward(Tensor(shape: [2, 4, 4, 2], values: r), context, needInputGradient: true)!
        XCTAssertLessThanOrEqual(dx.maxAbsDifference(once.dx), 1e-6)
    }

    // MARK: Pooling

    /// The first maximum of each window in row-major order, its dy scattered there: the oracle.
    private func maxPoolBackwardNaive(_ x: Tensor, _ g: PoolGeometry, dy: [Float]) -> [Float] {
        var dx = [Float](repeating: 0, count: x.count)
        for n in 0..<x.shape[0] {
            for i in 0..<g.oh {
                for j in 0..<g.ow {
                    for ch in 0..<g.c {
                        var best = -Float.infinity, at = -1
                        for u in 0..<g.kh {
                            for v in 0..<g.kw {
                                let yy = i * g.sh - g.padTop + u, xx = j * g.sw - g.padLeft + v
                                guard yy >= 0, yy < g.h, xx >= 0, xx < g.w else { continue }
                                let k = ((n * g.h + yy) * g.w + xx) * g.c + ch
                                if at < 0 || x.values[k] > best { best = x.values[k]; at = k }
                            }
                        }
                        dx[at] += dy[((n * g.oh + i) * g.ow + j) * g.c + ch]
                    }
                }
            }
        }
        return dx
    }

    static let poolCases: [(input: [Int], config: Pool2DConfig)] = [
        ([2, 5, 5, 2], Pool2DConfig(poolSize: (2, 2), padding: .valid)),
        ([2, 5, 6, 3], Pool2DConfig(poolSize: (3, 3), strides: (2, 2), padding: .same)),
        ([1, 7, 7, 2], Pool2DConfig(poolSize: (3, 3), strides: (2, 2), padding: .valid)),
        ([3, 4, 5, 1], Pool2DConfig(poolSize: (2, 2), strides: (1, 1), padding: .same)),
        ([1, 6, 4, 2], Pool2DConfig(poolSize: (2, 3), strides: (2, 1), padding: .same)),
    ]

    /// Inputs of a few distinct integers make ties everywhere.
    func testMaxPoolingRoutesToTheFirstOfTiedMaxima() throws {
        var rng = SeededRandom(seed: 201)
        for (shape, config) in Self.poolCases {
            let layer = try MaxPooling2DLayer(name: "p", config: config, inputShape: Array(shape.dropFirst()))
            let x = Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in Float(rng.int(0...2)) })
            let context = ForwardContext(keepForBackward: true)
            let y = layer.forward(x, context)
            let dy = rng.floats(y.count)
            let dx = layer.backward(Tensor(shape: y.shape, values: dy), context, needInputGradient: true)!
            let want = maxPoolBackwardNaive(x, layer.geometry, dy: dy)
            XCTAssertLessThanOrEqual(maxDifference(dx.values, want), 1e-6, "\(shape) \(config)")
        }
    }

    func testMaxPoolingTiesByHand() throws {
        // 5×5, 3×3 windows, stride 2 (overlapping): windows at rows/cols {0, 2}.
        let config = Pool2DConfig(poolSize: (3, 3), strides: (2, 2), padding: .valid)
        let layer = try MaxPooling2DLayer(name: "p", config: config, inputShape: [5, 5, 1])
        var x = [Float](repeating: 0, count: 25)
        x[0 * 5 + 1] = 5; x[1 * 5 + 0] = 5      // window (0,0): a tie, (0,1) comes first
        x[2 * 5 + 2] = 4                        // shared by all four windows; wins (0,1), (1,0), (1,1)
        x[0 * 5 + 3] = 4                        // window (0,1): ties with (2,2), comes first
        let context = ForwardContext(keepForBackward: true)
        let y = layer.forward(Tensor(shape: [1, 5, 5, 1], values: x), context)
        XCTAssertEqual(y.values, [5, 4, 4, 4])
        let dx = layer.backward(Tensor(shape: [1, 2, 2, 1], values: [1, 10, 100, 1000]), context, needInputGradient: true)!
        var want = [Float](repeating: 0, count: 25)
        want[0 * 5 + 1] = 1
        want[0 * 5 + 3] = 10
        want[2 * 5 + 2] = 100 + 1000            // overlapping windows accumulate
        XCTAssertEqual(dx.values, want)

        // `same` padding on negative values: the padding never wins.
        let same = try MaxPooling2DLayer(name: "q", config: Pool2DConfig(poolSize: (2, 2), padding: .same),
                                         inputShape: [3, 3, 1])
        let neg = Tensor(shape: [1, 3, 3, 1], values: [-1, -1, -1, -1, -1, -1, -1, -1, -1])
        let c2 = ForwardContext(keepForBackward: true)
        XCTAssertEqual(same.forward(neg, c2).values, [-1, -1, -1, -1])
        let d2 = same.backward(Tensor(shape: [1, 2, 2, 1], values: [1, 2, 3, 4]), c2, needInputGradient: true)!
        XCTAssertEqual(d2.values, [1, 0, 2, 0, 0, 0, 3, 0, 4])
    }

    func testMaxPoolingGradientMatchesFiniteDifferences() throws {
        var rng = SeededRandom(seed: 202)
        for (shape, config) in Self.poolCases {
            let layer = try MaxPooling2DLayer(name: "p", config: config, inputShape: Array(shape.dropFirst()))
            let x = rng.tensor(shape)
            let context = ForwardContext(keepForBackward: true)
            let y = layer.forward(x, context)
            let r = rng.floats(y.count)
            let dx = layer.backward(Tensor(shape: y.shape, values: r), context, needInputGradient: true)!
            record("max \(shape)", checkGradient("max pool \(shape) \(config)", point: x.values, analytic: dx.values, step: 1e-3) { p in
                let c = ForwardContext(keepForBackward: true)
                let y = layer.forward(Tensor(shape: shape, values: p), c)
                return (weightedSum(r, y), layer.argmax)
            })
        }
    }

    func testAveragePoolingGradient() throws {
        var rng = SeededRandom(seed: 203)
        for (shape, config) in Self.poolCases {
            let layer = try AveragePooling2DLayer(name: "a", config: config, inputShape: Array(shape.dropFirst()))
            let x = rng.tensor(shape)
            let context = ForwardContext(keepForBackward: true)
            let y = layer.forward(x, context)
            let r = rng.floats(y.count)
            let dx = layer.backward(Tensor(shape: y.shape, values: r), context, needInputGradient: true)!
            record("avg \(shape)", checkGradient("avg pool \(shape) \(config)", point: x.values, analytic: dx.values) { p in
                (weightedSum(r, layer.forward(Tensor(shape: shape, values: p), ForwardContext())), [])
            })
            // Oracle: each window's dy split over its real elements (`same` counts no padding).
            let g = layer.geometry
            var want = [Float](repeating: 0, count: x.count)
            for n in 0..<shape[0] {
                for i in 0..<g.oh {
                    for j in 0..<g.ow {
                        let (rows, cols) = g.window(i, j)
                        for yy in rows {
                            for xx in cols {
                                for ch in 0..<g.c {
                                    want[((n * g.h + yy) * g.w + xx) * g.c + ch] +=
                                        r[((n * g.oh + i) * g.ow + j) * g.c + ch] / Float(rows.count * cols.count)
                                }
                            }
                        }
                    }
                }
            }
            XCTAssertLessThanOrEqual(maxDifference(dx.values, want), 1e-6, "\(shape) \(config)")
        }
        // `same` corner windows divide by their real elements only: 3×3 input, 2×2 pool.
        let layer = try AveragePooling2DLayer(name: "a", config: Pool2DConfig(poolSize: (2, 2), padding: .same),
                                              inputShape: [3, 3, 1])
        let dx = layer.backward(Tensor(shape: [1, 2, 2, 1], values: [4, 4, 4, 4]), ForwardContext(), needInputGradient: true)!
        XCTAssertEqual(dx.values, [1, 1, 2, 1, 1, 2, 2, 2, 4])
    }

    // MARK: BatchNormalization

    private func makeBatchNorm(_ shape: [Int], scale: Bool = true, center: Bool = true, momentum: Float = 0.9,
                               _ rng: inout SeededRandom) throws -> BatchNormalizationLayer {
        let c = shape.last!
        let layer = try BatchNormalizationLayer(
            name: "bn", config: BatchNormConfig(momentum: momentum, epsilon: 1e-3, center: center, scale: scale),
            inputShape: shape, gamma: scale ? rng.floats(c).map { $0 + 1.5 } : nil,
            beta: center ? rng.floats(c) : nil, movingMean: rng.floats(c),
            movingVariance: rng.floats(c).map { abs($0) + 0.5 })
        layer.trainable = true
        return layer
    }

    private func checkBatchNorm(_ layer: BatchNormalizationLayer, _ x: Tensor, _ rng: inout SeededRandom, label: String) {
        let context = ForwardContext(keepForBackward: true)
        let y = layer.forward(x, context)
        let r = rng.floats(y.count)
        layer.zeroGradients()
        let dx = layer.backward(Tensor(shape: y.shape, values: r), context, needInputGradient: true)!
        let loss = { (x: Tensor) in weightedSum(r, layer.forward(x, ForwardContext())) }
        record("\(label) dx", checkGradient("\(label) dx", point: x.values, analytic: dx.values) { p in
            (loss(Tensor(shape: x.shape, values: p)), [])
        })
        var roles: [WeightRole] = []
        layer.withParameters { role, _, _ in roles.append(role) }
        XCTAssertEqual(roles, (layer.gamma != nil ? [.gamma] : []) + (layer.beta != nil ? [.beta] : []), label)
        if let gamma = layer.gamma {
            record("\(label) dGamma", checkGradient("\(label) dGamma", point: gamma, analytic: layer.dGamma) { p in
                layer.gamma = p
                defer { layer.gamma = gamma }
                return (loss(x), [])
            })
        }
        if let beta = layer.beta {
            record("\(label) dBeta", checkGradient("\(label) dBeta", point: beta, analytic: layer.dBeta) { p in
                layer.beta = p
                defer { layer.beta = beta }
                return (loss(x), [])
            })
        }
    }

    func testBatchNormalizationTrainingGradients() throws {
        var rng = SeededRandom(seed: 301)
        for (shape, scale, center) in [([2, 3, 3, 2], true, true), ([5, 3], true, true),
                                       ([3, 2, 2, 3], false, true), ([4, 2], true, false)] {
            let layer = try makeBatchNorm(Array(shape.dropFirst()), scale: scale, center: center, &rng)
            layer.training = true
            checkBatchNorm(layer, rng.tensor(shape).scaled(by: 2, plus: 0.5), &rng,
                           label: "training \(shape) scale \(scale) center \(center)")
        }
    }

    func testBatchNormalizationInferenceGradients() throws {
        var rng = SeededRandom(seed: 302)
        for (shape, scale) in [([2, 3, 3, 2], true), ([5, 3], false)] {
            let layer = try makeBatchNorm(Array(shape.dropFirst()), scale: scale, &rng)
            let before = (layer.movingMean, layer.movingVariance)
            checkBatchNorm(layer, rng.tensor(shape), &rng, label: "inference \(shape) scale \(scale)")
            XCTAssertEqual(layer.movingMean, before.0)
            XCTAssertEqual(layer.movingVariance, before.1)
        }
        // dx = dy·γ/√(mv + ε), exactly the per-channel factor.
        let layer = try makeBatchNorm([2], &rng)
        let context = ForwardContext(keepForBackward: true)
        _ = layer.forward(Tensor(shape: [1, 2], values: [0.3, -0.2]), context)
        let dx = layer.backward(Tensor(shape: [1, 2], values: [1, 1]), context, needInputGradient: true)!
        for ch in 0..<2 {
            XCTAssertEqual(dx.values[ch], layer.gamma![ch] / (layer.movingVariance[ch] + 1e-3).squareRoot(), accuracy: 1e-6)
        }
    }

    /// The batch normalisation itself and the moving statistics after one step, with and
    /// without Bessel's correction, against Double.
    func testBatchNormalizationTrainingForwardAndMovingStatistics() throws {
        var rng = SeededRandom(seed: 303)
        for shape in [[3, 2, 2, 3], [6, 4]] {
            for bessel in [false, true] {
                let layer = try makeBatchNorm(Array(shape.dropFirst()), momentum: 0.9, &rng)
                layer.training = true
                layer.besselCorrection = bessel
                let (mm, mv, gamma, beta) = (layer.movingMean, layer.movingVariance, layer.gamma!, layer.beta!)
                let x = rng.tensor(shape).scaled(by: 3, plus: 1)
                let y = layer.forward(x, ForwardContext())
                let c = shape.last!, n = x.count / c
                for ch in 0..<c {
                    let v = stride(from: ch, to: x.count, by: c).map { Double(x.values[$0]) }
                    let mean = v.reduce(0, +) / Double(n)
                    let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
                    for i in stride(from: ch, to: x.count, by: c) {
                        let want = Double(gamma[ch]) * (Double(x.values[i]) - mean) / (variance + 1e-3).squareRoot() + Double(beta[ch])
                        XCTAssertEqual(Double(y.values[i]), want, accuracy: 1e-5)
                    }
                    let update = bessel ? variance * Double(n) / Double(n - 1) : variance
                    XCTAssertEqual(Double(layer.movingMean[ch]), Double(mm[ch]) * 0.9 + mean * 0.1, accuracy: 1e-6)
                    XCTAssertEqual(Double(layer.movingVariance[ch]), Double(mv[ch]) * 0.9 + update * 0.1, accuracy: 1e-5)
                }
                let saved = layer.currentWeights()
                XCTAssertEqual(Set(saved.keys), [.gamma, .beta, .movingMean, .movingVariance])
                XCTAssertEqual(saved[.movingVariance], layer.movingVariance)
                // Back in inference mode the new moving statistics are used (also by a frozen layer).
                layer.training = false
                layer.trainable = bessel
                let z = layer.forward(Tensor(shape: [1] + layer.inputShape, repeating: 0.25), ForwardContext())
                for ch in 0..<c {
                    let want = gamma[ch] * (0.25 - layer.movingMean[ch]) / (layer.movingVariance[ch] + 1e-3).squareRoot() + beta[ch]
                    XCTAssertEqual(z.values[ch], want, accuracy: 1e-5)
                }
            }
        }
    }
}

private extension Tensor {
    /// Each value v becomes v·a + b.
    func scaled(by a: Float, plus b: Float) -> Tensor {
        Tensor(shape: shape, values: values.map { $0 * a + b })
    }
}
