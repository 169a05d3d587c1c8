// The im2col + SGEMM convolution against the direct loop definition, on random
// shapes covering 1×1 (the no-im2col path), 3×3, 5×5, stride 1 and 2, `same` and
// `valid`, dilation 2, odd sizes, batch 1 and 17; plus the TensorFlow padding split.

import XCTest
@testable import XferKit

final class EngineConvTests: XCTestCase {
    struct Case {
        var batch: Int, h: Int, w: Int, c: Int, o: Int
        var k: (Int, Int), s: (Int, Int) = (1, 1), d: (Int, Int) = (1, 1)
        var padding: Padding
        var activation: Activation = .linear
        var useBias = true
    }

    static let cases: [Case] = [
        Case(batch: 1, h: 5, w: 7, c: 3, o: 4, k: (1, 1), padding: .same),
        Case(batch: 17, h: 6, w: 5, c: 8, o: 5, k: (1, 1), padding: .valid, activation: .relu),
        Case(batch: 2, h: 7, w: 6, c: 4, o: 3, k: (1, 1), s: (2, 2), padding: .valid),
        Case(batch: 1, h: 9, w: 9, c: 3, o: 8, k: (3, 3), padding: .same, activation: .relu),
        Case(batch: 17, h: 7, w: 5, c: 5, o: 6, k: (3, 3), padding: .valid),
        Case(batch: 3, h: 8, w: 8, c: 4, o: 5, k: (3, 3), s: (2, 2), padding: .same),
        Case(batch: 2, h: 9, w: 11, c: 3, o: 4, k: (3, 3), s: (2, 2), padding: .same, useBias: false),
        Case(batch: 2, h: 10, w: 7, c: 2, o: 3, k: (3, 3), s: (2, 2), padding: .valid),
        Case(batch: 1, h: 11, w: 9, c: 3, o: 7, k: (5, 5), padding: .same, activation: .sigmoid),
        Case(batch: 17, h: 7, w: 8, c: 2, o: 3, k: (5, 5), s: (2, 2), padding: .same),
        Case(batch: 2, h: 9, w: 10, c: 3, o: 4, k: (5, 5), padding: .valid),
        Case(batch: 2, h: 9, w: 8, c: 3, o: 4, k: (3, 3), d: (2, 2), padding: .same),
        Case(batch: 1, h: 11, w: 9, c: 2, o: 5, k: (3, 3), d: (2, 2), padding: .valid, activation: .tanh),
        Case(batch: 2, h: 8, w: 9, c: 3, o: 2, k: (2, 3), s: (1, 2), padding: .same),
        Case(batch: 17, h: 3, w: 3, c: 6, o: 4, k: (3, 3), padding: .same, activation: .softmax),
    ]

    func testFastConvolutionMatchesDirectLoops() throws {
        var rng = SeededRandom(seed: 7)
        for (index, t) in Self.cases.enumerated() {
            let config = Conv2DConfig(filters: t.o, kernelSize: (t.k.0, t.k.1), strides: (t.s.0, t.s.1),
                                      padding: t.padding, dilation: (t.d.0, t.d.1), useBias: t.useBias,
                                      activation: t.activation)
            let kernel = rng.floats(t.k.0 * t.k.1 * t.c * t.o)
            let bias = t.useBias ? rng.floats(t.o) : nil
            let layer = try Conv2DLayer(name: "c\(index)", config: config, inputShape: [t.h, t.w, t.c],
                                        kernel: kernel, bias: bias)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let fast = layer.forward(x, ForwardContext())
            let slow = conv2DForwardNaive(x, layer.geometry, kernel: kernel, bias: bias, t.activation)
            XCTAssertEqual(fast.shape, slow.shape, "case \(index)")
            XCTAssertLessThanOrEqual(fast.maxAbsDifference(slow), 1e-4, "case \(index): \(t)")
        }
    }

    /// Tiles of very few rows (a tiny workspace) must give the same result as one tile.
    func testTilingDoesNotChangeTheResult() throws {
        var rng = SeededRandom(seed: 8)
        let config = Conv2DConfig(filters: 6, kernelSize: (3, 3), padding: .same)
        let kernel = rng.floats(3 * 3 * 4 * 6), bias = rng.floats(6)
        let layer = try Conv2DLayer(name: "c", config: config, inputShape: [7, 9, 4], kernel: kernel, bias: bias)
        let x = rng.tensor([3, 7, 9, 4])
        let small = ForwardContext(workspace: Workspace(floatsPerWorker: 36 * 5))  // 5 rows per tile
        let tiled = layer.forward(x, small)
        let whole = layer.forward(x, ForwardContext())
        XCTAssertLessThanOrEqual(tiled.maxAbsDifference(whole), 1e-5)
        XCTAssertLessThanOrEqual(tiled.maxAbsDifference(conv2DForwardNaive(x, layer.geometry, kernel: kernel, bias: bias, .linear)), 1e-4)
    }

    /// TensorFlow puts the odd padding row/column at the bottom/right (KERAS-FORMATS B.1).
    func testSamePaddingSplitIsTensorFlows() {
        // in 224, k 3, s 2 → out 112, pad total 1: top 0, bottom 1.
        let a = WindowAxis(input: 224, kernel: 3, stride: 2, padding: .same)!
        XCTAssertEqual(a.output, 112); XCTAssertEqual(a.padBefore, 0)
        // in 5, k 4, s 1 → out 5, pad total 3: top 1, bottom 2.
        let b = WindowAxis(input: 5, kernel: 4, stride: 1, padding: .same)!
        XCTAssertEqual(b.output, 5); XCTAssertEqual(b.padBefore, 1)
        // dilation 2, k 3 → k_eff 5: pad total 4, 2 before.
        let c = WindowAxis(input: 8, kernel: 3, stride: 1, dilation: 2, padding: .same)!
        XCTAssertEqual(c.output, 8); XCTAssertEqual(c.padBefore, 2)
        // valid: floor((15 − 2)/2) + 1 = 7; no output when the kernel is larger than the input.
        XCTAssertEqual(WindowAxis(input: 15, kernel: 2, stride: 2, padding: .valid)!.output, 7)
        XCTAssertNil(WindowAxis(input: 2, kernel: 3, stride: 1, padding: .valid))
    }

    func testConvolutionRejectsStridesWithDilation() {
        let config = Conv2DConfig(filters: 1, kernelSize: (3, 3), strides: (2, 2), dilation: (2, 2))
        XCTAssertThrowsError(try Conv2DLayer(name: "bad", config: config, inputShape: [9, 9, 1],
                                             kernel: [Float](repeating: 0, count: 9), bias: [0]))
    }
}
