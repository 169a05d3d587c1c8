// The Winograd path (Engine/Winograd.swift) against the direct loop definitions
// (conv2DForwardNaive, conv2DBackwardNaive) on 3×3 stride-1 shapes: `same` and `valid`,
// odd sizes, channel counts that are and are not multiples of 16, batch 1 and 17; the batch
// cut into chunks; a changed kernel seen by the next pass; and the fallback to im2col where
// Winograd cannot or should not run. Keras parity in both cores: ForwardParityTests and
// TrainingParityTests.

import XCTest
@testable import XferKit

final class WinogradTests: XCTestCase {
    struct Case {
        var batch: Int, h: Int, w: Int, c: Int, o: Int
        var padding: Padding
        var activation: Activation = .linear
        var useBias = true
    }

    static let cases: [Case] = [
        Case(batch: 1, h: 9, w: 9, c: 16, o: 32, padding: .same, activation: .relu),
        Case(batch: 17, h: 7, w: 5, c: 5, o: 6, padding: .valid),
        Case(batch: 3, h: 14, w: 14, c: 64, o: 48, padding: .same),
        Case(batch: 2, h: 6, w: 11, c: 3, o: 4, padding: .same, useBias: false),
        Case(batch: 2, h: 4, w: 4, c: 32, o: 32, padding: .valid, activation: .relu),
        Case(batch: 2, h: 3, w: 3, c: 8, o: 8, padding: .same, activation: .tanh),
    ]

    override func setUpWithError() throws {
        try XCTSkipUnless(winogradRuns, "oneDNN has no Winograd kernel on this CPU (no AVX-512): im2col runs everywhere")
    }

    /// Runs `body` with `Convolution.path` set, restoring it after.
    func with<R>(_ path: ConvolutionPath, _ body: () throws -> R) rethrows -> R {
        let saved = Convolution.path
        defer { Convolution.path = saved }
        Convolution.path = path
        return try body()
    }

    func layer(_ t: Case, _ rng: inout SeededRandom) throws -> Conv2DLayer {
        let config = Conv2DConfig(filters: t.o, kernelSize: (3, 3), padding: t.padding, useBias: t.useBias, activation: t.activation)
        return try Conv2DLayer(name: "c", config: config, inputShape: [t.h, t.w, t.c],
                               kernel: rng.floats(9 * t.c * t.o), bias: t.useBias ? rng.floats(t.o) : nil)
    }

    /// max |a − b| / max(1, max |b|): Winograd's rounding grows with the values' size.
    func scaled(_ a: [Float], _ b: [Float]) -> Float {
        var m: Float = 0, scale: Float = 1
        for i in b.indices { m = max(m, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return m / scale
    }

    func testForwardAndBackwardMatchDirectLoops() throws {
        var rng = SeededRandom(seed: 301)
        try with(.winograd) {
            for (index, t) in Self.cases.enumerated() {
                let conv = try layer(t, &rng)
                XCTAssertTrue(conv.convolutionChoice.winograd, "case \(index)")
                let x = rng.tensor([t.batch, t.h, t.w, t.c])
                let y = conv.forward(x, ForwardContext(keepForBackward: true))
                let want = conv2DForwardNaive(x, conv.geometry, kernel: conv.kernel, bias: conv.bias, t.activation)
                XCTAssertLessThanOrEqual(scaled(y.values, want.values), 1e-5, "case \(index) forward")

                conv.trainable = true
                conv.zeroGradients()
                let r = rng.floats(y.count)
                let dx = conv.backward(Tensor(shape: y.shape, values: r), ForwardContext(keepForBackward: true), needInputGradient: true)!
                let dz: [Float] = zip(r, y.values).map { g, v in
                    switch t.activation {
                    case .relu: return v > 0 ? g : 0
                    case .tanh: return g * (1 - v * v)
                    default: return g
                    }
                }
                let grads = conv2DBackwardNaive(x, conv.geometry, kernel: conv.kernel, dz: Tensor(shape: y.shape, values: dz))
                XCTAssertLessThanOrEqual(scaled(dx.values, grads.dx.values), 1e-5, "case \(index) dx")
                XCTAssertLessThanOrEqual(scaled(conv.dKernel, grads.dKernel), 1e-5, "case \(index) dKernel")
                if t.useBias { XCTAssertLessThanOrEqual(scaled(conv.dBias, grads.dBias), 1e-5, "case \(index) dBias") }
            }
        }
    }

    /// A batch run in chunks of one or two samples gives what one call gives.
    func testChunksGiveTheSameResult() throws {
        var rng = SeededRandom(seed: 302)
        let t = Case(batch: 5, h: 8, w: 8, c: 32, o: 32, padding: .same)
        let conv = try layer(t, &rng)
        let x = rng.tensor([t.batch, t.h, t.w, t.c])
        let dz = rng.floats(t.batch * 8 * 8 * 32)
        func run(_ chunkBytes: Int) -> (y: [Float], dx: [Float], dk: [Float]) {
            let wino = WinogradConvolution(conv.geometry, chunkBytes: chunkBytes)
            let workspace = Workspace()
            var y = [Float](repeating: 0, count: dz.count), dx = [Float](repeating: 0, count: x.count)
            var dk = [Float](repeating: 0, count: conv.kernel.count)
            conv.kernel.withUnsafeBufferPointer { k in
                x.values.withUnsafeBufferPointer { px in
                    _ = wino.forward(px.baseAddress!, batch: t.batch, kernel: k.baseAddress!, bias: nil, version: 0, backward: true, workspace: workspace, into: &y)
                    _ = wino.backwardWeights(px.baseAddress!, dz: dz, batch: t.batch, kernel: k.baseAddress!, version: 0, workspace: workspace, addingInto: &dk)
                }
                _ = wino.backwardData(dz, batch: t.batch, kernel: k.baseAddress!, version: 0, workspace: workspace, into: &dx)
            }
            return (y, dx, dk)
        }
        let sample = 8 * 8 * 32 * 4
        XCTAssertEqual(WinogradConvolution(conv.geometry, chunkBytes: 2 * sample).samplesPerCall(batch: 5), 2)
        let whole = run(1 << 30), chunked = run(2 * sample)
        XCTAssertLessThanOrEqual(scaled(chunked.y, whole.y), 1e-6)
        XCTAssertLessThanOrEqual(scaled(chunked.dx, whole.dx), 1e-6)
        XCTAssertLessThanOrEqual(scaled(chunked.dk, whole.dk), 1e-5)
    }

    /// The optimizer changes the kernel in place; the next forward uses the new one.
    func testAChangedKernelIsTransformedAgain() throws {
        var rng = SeededRandom(seed: 303)
        try with(.winograd) {
            let t = Case(batch: 2, h: 6, w: 6, c: 32, o: 32, padding: .same)
            let conv = try layer(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            _ = conv.forward(x, ForwardContext())
            conv.trainable = true
            conv.withParameters { role, value, _ in if role == .kernel { for i in value.indices { value[i] *= -0.5 } } }
            let y = conv.forward(x, ForwardContext())
            let want = conv2DForwardNaive(x, conv.geometry, kernel: conv.kernel, bias: conv.bias, .linear)
            XCTAssertLessThanOrEqual(scaled(y.values, want.values), 1e-5)
        }
    }

    /// When oneDNN fails at run time (out of memory), the layer's passes run on im2col instead:
    /// the same results, no crash.
    func testARunTimeFailureFallsBackToIm2col() throws {
        var rng = SeededRandom(seed: 305)
        try with(.winograd) {
            let t = Case(batch: 3, h: 14, w: 14, c: 32, o: 32, padding: .same, activation: .relu)
            let conv = try layer(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            _ = conv.forward(x, ForwardContext())
            conv.winograd!.failed = true
            let y = conv.forward(x, ForwardContext(keepForBackward: true))
            let want = conv2DForwardNaive(x, conv.geometry, kernel: conv.kernel, bias: conv.bias, .relu)
            XCTAssertLessThanOrEqual(scaled(y.values, want.values), 1e-5)
            conv.trainable = true
            conv.zeroGradients()
            let r = rng.floats(y.count)
            let dx = conv.backward(Tensor(shape: y.shape, values: r), ForwardContext(keepForBackward: true), needInputGradient: true)!
            let dz = zip(r, y.values).map { g, v in v > 0 ? g : 0 }
            let grads = conv2DBackwardNaive(x, conv.geometry, kernel: conv.kernel, dz: Tensor(shape: y.shape, values: dz))
            XCTAssertLessThanOrEqual(scaled(dx.values, grads.dx.values), 1e-5)
            XCTAssertLessThanOrEqual(scaled(conv.dKernel, grads.dKernel), 1e-5)
        }
    }

    /// Where Winograd cannot or should not run, im2col does, and says why.
    func testFallsBackToIm2colByShapeAndSetting() throws {
        func choice(_ c: Int, _ o: Int, k: Int = 3, s: Int = 1, d: Int = 1, _ path: ConvolutionPath) -> ConvolutionChoice {
            let config = Conv2DConfig(filters: o, kernelSize: (k, k), strides: (s, s), padding: .same, dilation: (d, d))
            return ConvolutionChoice(ConvGeometry(input: [14, 14, c], config)!, path: path)
        }
        XCTAssertTrue(choice(64, 64, .auto).winograd)
        XCTAssertTrue(choice(8, 8, .winograd).winograd)
        XCTAssertEqual(choice(3, 64, .auto).description, "winograd (backward on im2col: fewer than 16 input channels)")
        XCTAssertTrue(choice(128, 32, .auto).winograd && choice(128, 32, .auto).winogradBackward)
        XCTAssertTrue(choice(32, 32, .auto).winograd)
        XCTAssertTrue(choice(3, 64, .winograd).winogradBackward)
        let small = ConvGeometry(input: [7, 7, 512], Conv2DConfig(filters: 512, kernelSize: (3, 3), padding: .same))!
        XCTAssertEqual(ConvolutionChoice(small, path: .auto).description, "im2col (output smaller than 12×12)")
        XCTAssertEqual(choice(64, 64, .im2col).description, "im2col (--conv im2col)")
        for (k, s, d) in [(5, 1, 1), (1, 1, 1), (3, 2, 1), (3, 1, 2)] {
            XCTAssertEqual(choice(64, 64, k: k, s: s, d: d, .winograd).description, "im2col (not 3×3 stride 1)", "\(k) \(s) \(d)")
        }
        // Through the layer: the same forward either way, to Winograd's rounding.
        var rng = SeededRandom(seed: 304)
        let conv = try layer(Case(batch: 2, h: 14, w: 14, c: 32, o: 32, padding: .same), &rng)
        let x = rng.tensor([2, 14, 14, 32])
        let reference = with(.im2col) { conv.forward(x, ForwardContext()).values }
        XCTAssertNil(conv.winograd, "the im2col pass makes no Winograd primitives")
        let fast = with(.auto) { conv.forward(x, ForwardContext()).values }
        XCTAssertNotNil(conv.winograd)
        XCTAssertLessThanOrEqual(scaled(fast, reference), 1e-5)
    }
}
