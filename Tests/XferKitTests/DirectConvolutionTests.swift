// The oneDNN direct-convolution path (Engine/DirectConvolution.swift) against the loop
// definitions (conv2DForwardNaive, depthwiseForwardNaive) on the shapes the Keras application
// families use: 1×1 (stride 1 and 2), 3×3 stride 2 `same` and `valid`, 7×7 stride 2, 3×3 on maps
// too small for Winograd, 1×7 (non-square), dilated 3×3, depthwise 3×3/5×5 stride 1/2 with depth
// multiplier 1 and 2, grouped 3×3 and 1×1 (RegNet's); every fused activation and one that is not;
// a changed kernel seen by the next pass; a residual summed in the epilogue; and the cases that stay on the engine's own cores
// (`--conv im2col`, a pass kept for backward).

import XCTest
@testable import XferKit

final class DirectConvolutionTests: XCTestCase {
    struct Case {
        var batch: Int, h: Int, w: Int, c: Int, o: Int
        var k: (Int, Int), s: Int = 1, d: Int = 1
        var padding: Padding = .same
        var activation: Activation = .linear
        var useBias = true
    }

    static let convolutions: [Case] = [
        Case(batch: 3, h: 8, w: 8, c: 32, o: 48, k: (1, 1), activation: .relu),                // bottleneck 1×1
        Case(batch: 2, h: 9, w: 9, c: 24, o: 40, k: (1, 1), s: 2, padding: .valid),           // ResNet shortcut
        Case(batch: 2, h: 11, w: 11, c: 16, o: 32, k: (3, 3), s: 2, padding: .same, activation: .relu6),
        Case(batch: 2, h: 11, w: 10, c: 16, o: 24, k: (3, 3), s: 2, padding: .valid, activation: .silu),
        Case(batch: 2, h: 29, w: 29, c: 3, o: 64, k: (7, 7), s: 2, padding: .valid),          // ResNet conv1 (after padding)
        Case(batch: 2, h: 17, w: 17, c: 3, o: 32, k: (3, 3), s: 2, padding: .same, activation: .sigmoid),  // MobileNet stem
        Case(batch: 5, h: 5, w: 5, c: 40, o: 40, k: (3, 3), activation: .relu),                // under Winograd's 12×12
        Case(batch: 2, h: 9, w: 9, c: 19, o: 21, k: (1, 7), padding: .same, activation: .tanh), // InceptionV3 1×7
        Case(batch: 2, h: 10, w: 10, c: 8, o: 16, k: (3, 3), d: 2, padding: .same, activation: .elu, useBias: false),
        Case(batch: 17, h: 4, w: 4, c: 64, o: 128, k: (1, 1), useBias: false),
    ]

    static let depthwise: [(Case, multiplier: Int)] = [
        (Case(batch: 3, h: 12, w: 12, c: 32, o: 32, k: (3, 3), activation: .relu6), 1),
        (Case(batch: 2, h: 13, w: 13, c: 19, o: 19, k: (3, 3), s: 2, padding: .same), 1),
        (Case(batch: 2, h: 13, w: 12, c: 24, o: 24, k: (3, 3), s: 2, padding: .valid, activation: .silu), 1),
        (Case(batch: 2, h: 14, w: 14, c: 40, o: 40, k: (5, 5), activation: .silu), 1),
        (Case(batch: 2, h: 15, w: 15, c: 48, o: 48, k: (5, 5), s: 2, padding: .same, useBias: false), 1),
        (Case(batch: 3, h: 9, w: 9, c: 16, o: 32, k: (3, 3), activation: .relu), 2),
        (Case(batch: 2, h: 10, w: 10, c: 7, o: 14, k: (5, 5), s: 2, padding: .valid, activation: .elu), 2),
    ]

    /// Runs `body` with `Convolution.path` set, restoring it after.
    func with<R>(_ path: ConvolutionPath, _ body: () throws -> R) rethrows -> R {
        let saved = Convolution.path
        defer { Convolution.path = saved }
        Convolution.path = path
        return try body()
    }

    /// max |a − b| / max(1, max |b|).
    func scaled(_ a: [Float], _ b: [Float]) -> Float {
        var m: Float = 0, scale: Float = 1
        for i in b.indices { m = max(m, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return m / scale
    }

    func conv(_ t: Case, _ rng: inout SeededRandom) throws -> Conv2DLayer {
        let config = Conv2DConfig(filters: t.o, kernelSize: t.k, strides: (t.s, t.s), padding: t.padding,
                                  dilation: (t.d, t.d), useBias: t.useBias, activation: t.activation)
        return try Conv2DLayer(name: "c", config: config, inputShape: [t.h, t.w, t.c],
                               kernel: rng.floats(t.k.0 * t.k.1 * t.c * t.o), bias: t.useBias ? rng.floats(t.o) : nil)
    }

    func depthwiseLayer(_ t: Case, multiplier: Int, _ rng: inout SeededRandom) throws -> DepthwiseConv2DLayer {
        let config = DepthwiseConv2DConfig(kernelSize: t.k, strides: (t.s, t.s), padding: t.padding, depthMultiplier: multiplier,
                                           useBias: t.useBias, activation: t.activation)
        return try DepthwiseConv2DLayer(name: "d", config: config, inputShape: [t.h, t.w, t.c],
                                        kernel: rng.floats(t.k.0 * t.k.1 * t.c * multiplier),
                                        bias: t.useBias ? rng.floats(t.c * multiplier) : nil)
    }

    func testConvolutionsMatchTheLoopDefinition() throws {
        var rng = SeededRandom(seed: 611)
        for (index, t) in Self.convolutions.enumerated() {
            let layer = try conv(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let y = layer.forward(x, ForwardContext())
            let want = conv2DForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias, t.activation)
            XCTAssertEqual(y.shape, want.shape)
            XCTAssertLessThanOrEqual(scaled(y.values, want.values), 1e-5, "case \(index)")
            let winograd = layer.convolutionChoice.winograd
            if !winograd {
                let direct = try XCTUnwrap(layer.direct, "case \(index)")
                if winogradRuns { XCTAssertNil(direct.refusal, "case \(index): \(direct.refusal ?? "")") }
            }

            // A new kernel version is reordered again before the next pass.
            layer.kernel = rng.floats(layer.kernel.count)
            let again = layer.forward(x, ForwardContext())
            let wantAgain = conv2DForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias, t.activation)
            XCTAssertLessThanOrEqual(scaled(again.values, wantAgain.values), 1e-5, "case \(index), new kernel")
        }
    }

    func testDepthwiseMatchesTheLoopDefinition() throws {
        var rng = SeededRandom(seed: 612)
        for (index, (t, multiplier)) in Self.depthwise.enumerated() {
            let layer = try depthwiseLayer(t, multiplier: multiplier, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let y = layer.forward(x, ForwardContext())
            var want = depthwiseForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias)
            activate(&want, t.activation)
            XCTAssertEqual(y.shape, want.shape)
            XCTAssertLessThanOrEqual(scaled(y.values, want.values), 1e-5, "case \(index)")
            let direct = try XCTUnwrap(layer.direct, "case \(index)")
            if winogradRuns { XCTAssertNil(direct.refusal, "case \(index): \(direct.refusal ?? "")") }

            layer.kernel = rng.floats(layer.kernel.count)
            let again = layer.forward(x, ForwardContext())
            var wantAgain = depthwiseForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias)
            activate(&wantAgain, t.activation)
            XCTAssertLessThanOrEqual(scaled(again.values, wantAgain.values), 1e-5, "case \(index), new kernel")
        }
    }

    /// A Conv2D with groups = channels (ConvNeXt's spelling of a depthwise convolution) runs there too.
    func testGroupedConv2DRunsAsDepthwise() throws {
        var rng = SeededRandom(seed: 613)
        let config = DepthwiseConv2DConfig(kernelSize: (3, 3), padding: .same, depthMultiplier: 1)
        let layer = try DepthwiseConv2DLayer(name: "g", config: config, inputShape: [8, 8, 16], kernel: rng.floats(9 * 16),
                                             bias: rng.floats(16), kernelRole: .kernel)
        let x = rng.tensor([2, 8, 8, 16])
        let y = layer.forward(x, ForwardContext())
        let want = depthwiseForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias)
        XCTAssertLessThanOrEqual(scaled(y.values, want.values), 1e-5)
    }

    /// RegNet's group convolutions (group width 8 or 16; 3×3 stride 1 and 2, `same`, with and
    /// without a bias) and a 1×1 in 4 groups with an activation oneDNN does not fuse: oneDNN's
    /// grouped convolution against the loop definition, with JIT kernels on AVX-512, and a changed
    /// kernel seen by the next pass.
    func testGroupedConvolutionsMatchTheLoopDefinition() throws {
        var rng = SeededRandom(seed: 617)
        let cases: [(Case, groups: Int)] = [
            (Case(batch: 3, h: 8, w: 8, c: 48, o: 48, k: (3, 3), activation: .relu), 6),
            (Case(batch: 2, h: 11, w: 11, c: 32, o: 64, k: (3, 3), s: 2, useBias: false), 2),
            (Case(batch: 2, h: 9, w: 10, c: 24, o: 24, k: (3, 3), s: 2, activation: .silu), 3),
            (Case(batch: 2, h: 6, w: 6, c: 16, o: 32, k: (1, 1), activation: .elu), 4),
        ]
        for (index, (t, groups)) in cases.enumerated() {
            let config = Conv2DConfig(filters: t.o, kernelSize: t.k, strides: (t.s, t.s), padding: t.padding,
                                      useBias: t.useBias, activation: t.activation, groups: groups)
            let layer = try GroupedConv2DLayer(name: "g", config: config, inputShape: [t.h, t.w, t.c],
                                               kernel: rng.floats(t.k.0 * t.k.1 * t.c / groups * t.o),
                                               bias: t.useBias ? rng.floats(t.o) : nil)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let y = layer.forward(x, ForwardContext())
            let want = groupedConv2DForwardNaive(x, layer.geometry, groups: groups, kernel: layer.kernel, bias: layer.bias,
                                                 t.activation)
            XCTAssertEqual(y.shape, want.shape)
            XCTAssertLessThanOrEqual(scaled(y.values, want.values), 1e-5, "case \(index)")
            let direct = try XCTUnwrap(layer.direct, "case \(index)")
            if winogradRuns {
                XCTAssertNil(direct.refusal, "case \(index): \(direct.refusal ?? "")")
                print("grouped \(t.k) stride \(t.s) \(t.c) -> \(t.o) in \(groups): \(direct.implementation(batch: t.batch) ?? "")")
            }

            layer.kernel = rng.floats(layer.kernel.count)
            let again = layer.forward(x, ForwardContext())
            let wantAgain = groupedConv2DForwardNaive(x, layer.geometry, groups: groups, kernel: layer.kernel,
                                                      bias: layer.bias, t.activation)
            XCTAssertLessThanOrEqual(scaled(again.values, wantAgain.values), 1e-5, "case \(index), new kernel")
        }
    }

    /// `--conv im2col` keeps every convolution on im2col (depthwise on its loop), and so does a pass
    /// that keeps its values for a backward: the direct path is never made.
    func testIm2colAndTrainingPassesStayOnTheEngineCores() throws {
        var rng = SeededRandom(seed: 614)
        let t = Self.convolutions[1]
        let (d, m) = Self.depthwise[1]
        try with(.im2col) {
            let layer = try conv(t, &rng), dw = try depthwiseLayer(d, multiplier: m, &rng)
            _ = layer.forward(rng.tensor([t.batch, t.h, t.w, t.c]), ForwardContext())
            _ = dw.forward(rng.tensor([d.batch, d.h, d.w, d.c]), ForwardContext())
            XCTAssertNil(layer.direct)
            XCTAssertNil(dw.direct)
        }
        let layer = try conv(t, &rng), dw = try depthwiseLayer(d, multiplier: m, &rng)
        _ = layer.forward(rng.tensor([t.batch, t.h, t.w, t.c]), ForwardContext(keepForBackward: true))
        _ = dw.forward(rng.tensor([d.batch, d.h, d.w, d.c]), ForwardContext(keepForBackward: true))
        XCTAssertNil(layer.direct)
        XCTAssertNil(dw.direct)
    }

    /// A residual Add folded into the convolution before it (InferenceFolding.swift): oneDNN's sum
    /// post-op then the activation, against the naive convolution plus the residual, on every
    /// convolution shape here with a linear epilogue; a residual another reader still holds is left
    /// as it was; under `--conv im2col` the same result from the plain core.
    func testAResidualAddedInTheEpilogueIsTheConvolutionPlusTheResidual() throws {
        var rng = SeededRandom(seed: 616)
        for (index, var t) in Self.convolutions.enumerated() {
            let after: Activation = index % 2 == 0 ? .relu : .linear
            t.activation = .linear
            let layer = try conv(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let residual = rng.tensor([t.batch] + layer.outputShape)
            let kept = residual
            let plain = conv2DForwardNaive(x, layer.geometry, kernel: layer.kernel, bias: layer.bias, .linear)
            var want = plain
            for i in want.values.indices { want.values[i] += residual.values[i] }
            activate(&want, after)
            for path in [ConvolutionPath.auto, .im2col] {
                let got = with(path) { layer.forward(x, adding: residual, then: after, ForwardContext()) }
                XCTAssertLessThanOrEqual(scaled(got.values, want.values), 1e-5, "case \(index) \(path)")
            }
            XCTAssertEqual(residual.values, kept.values, "case \(index): the caller's residual is untouched")
            if t.k != (3, 3) || t.s != 1 { XCTAssertTrue(layer.fusesResidual(then: after), "case \(index)") }
        }
    }

    /// oneDNN runs JIT kernels for the families' shapes (never a reference loop on AVX-512).
    func testImplementationsAreJIT() throws {
        try XCTSkipUnless(winogradRuns, "not an AVX-512 CPU")
        var rng = SeededRandom(seed: 615)
        for t in Self.convolutions {
            let g = try conv(t, &rng).geometry
            let direct = DirectConvolution(g, groups: 1, fusingBias: t.useBias, activation: t.activation)
            let implementation = try XCTUnwrap(direct.implementation(batch: t.batch), direct.refusal ?? "")
            XCTAssertFalse(implementation.contains("ref"), implementation)
            print("direct \(t.k) stride \(t.s) \(t.c) -> \(t.o): \(implementation)")
        }
        for (t, m) in Self.depthwise {
            let g = try depthwiseLayer(t, multiplier: m, &rng).geometry.conv
            let direct = DirectConvolution(g, groups: g.c, fusingBias: t.useBias, activation: t.activation)
            let implementation = try XCTUnwrap(direct.implementation(batch: t.batch), direct.refusal ?? "")
            XCTAssertFalse(implementation.contains("ref"), implementation)
            print("depthwise \(t.k) stride \(t.s) \(t.c) x \(m): \(implementation)")
        }
    }
}
