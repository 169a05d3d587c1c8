// Folding BatchNormalization (and the activation after it) into the convolution before it, for
// inference passes (Execution/InferenceFolding.swift): on every fixture the folded network still
// predicts what Keras predicts, agrees with the unfolded one, and the fixtures with conv → BN chains
// do get folded (ForwardParityTests runs the folded networks in both convolution cores), and so
// do residual Adds after a convolution.

import XCTest
@testable import XferKit

final class InferenceFoldingTests: XCTestCase {
    func testFoldedNetworksPredictWhatKerasAndTheUnfoldedOnesPredict() throws {
        let saved = Network.foldsForInference
        defer { Network.foldsForInference = saved }
        var folded: [String: Int] = [:], residuals: [String: Int] = [:]
        for entry in try Fixtures.index() where entry.error == nil {
            guard let io = entry.io else { continue }
            let o = Fixtures.options(entry)
            let c = try Checkpoint.load(Fixtures.path(entry.file), options: .init(inputShape: o.inputShape, configPath: o.config))
            let f = try HDF5File.open(Fixtures.path(io))
            let x = try f.floats("/x"), y = try f.floats("/y")
            let input = Tensor(shape: x.shape, values: x.values)
            Network.foldsForInference = false
            let plain = try Network(spec: c.model)
            XCTAssertEqual(plain.foldedBatchNormalizations, 0)
            let unfolded = try plain.predict(input, batchSize: 2)
            Network.foldsForInference = true
            let network = try Network(spec: c.model)
            let out = try network.predict(input, batchSize: 2)
            folded[entry.file] = network.foldedBatchNormalizations
            residuals[entry.file] = network.foldedResiduals
            XCTAssertLessThanOrEqual(out.maxAbsDifference(Tensor(shape: y.shape, values: y.values)), 1e-4, entry.file)
            XCTAssertLessThanOrEqual(out.maxAbsDifference(unfolded), 1e-5, entry.file)
        }
        print("folded BatchNormalization layers per fixture: \(folded.filter { $0.value > 0 })")
        print("folded residual Adds per fixture: \(residuals.filter { $0.value > 0 })")
        // conv → BN → Add(shortcut) → ReLU: the Add and the ReLU run in the convolution's epilogue.
        XCTAssertGreaterThan(residuals["k2_resnet.h5"] ?? 0, 0)
        XCTAssertGreaterThan(folded["k2_resnet.h5"] ?? 0, 0)
        XCTAssertGreaterThan(folded["k2_vgg_bn.h5"] ?? 0, 0)
        XCTAssertEqual(folded["k2_vgg_full.h5"], 0)
    }
}

extension InferenceFoldingTests {
    /// A ZeroPadding2D folded into the convolution after it: the same output, on every shape the
    /// families pad before (7×7 and 3×3 stride 2, depthwise 3×3/5×5 stride 2) and a padded 1×1.
    func testAZeroPaddingBecomesTheConvolutionsPadding() throws {
        var rng = SeededRandom(seed: 711)
        let cases: [(pad: ZeroPadding2DConfig, k: Int, s: Int, c: Int, o: Int, depthwise: Bool)] = [
            (ZeroPadding2DConfig(top: 3, bottom: 3, left: 3, right: 3), 7, 2, 3, 8, false),
            (ZeroPadding2DConfig(top: 0, bottom: 1, left: 0, right: 1), 3, 2, 5, 6, false),
            (ZeroPadding2DConfig(top: 1, bottom: 1, left: 1, right: 1), 3, 2, 16, 16, true),
            (ZeroPadding2DConfig(top: 1, bottom: 2, left: 1, right: 2), 5, 2, 24, 24, true),
            (ZeroPadding2DConfig(top: 1, bottom: 0, left: 2, right: 1), 1, 1, 4, 6, false),
        ]
        for (index, t) in cases.enumerated() {
            let side = 11
            let padded = [side + t.pad.top + t.pad.bottom, side + t.pad.left + t.pad.right, t.c]
            let x = rng.tensor([2, side, side, t.c])
            let zero = try ZeroPadding2DLayer(name: "z", config: t.pad, inputShape: [side, side, t.c])
            let want: Tensor, got: Tensor
            if t.depthwise {
                let config = DepthwiseConv2DConfig(kernelSize: (t.k, t.k), strides: (t.s, t.s), padding: .valid, activation: .relu6)
                func make() throws -> DepthwiseConv2DLayer {
                    var r = SeededRandom(seed: 712)
                    return try DepthwiseConv2DLayer(name: "d", config: config, inputShape: padded, kernel: r.floats(t.k * t.k * t.c),
                                                    bias: r.floats(t.c))
                }
                want = try make().forward(zero.forward(x, ForwardContext()), ForwardContext())
                let folded = try make()
                folded.absorbPadding(t.pad)
                XCTAssertEqual(folded.inputShape, [side, side, t.c])
                got = folded.forward(x, ForwardContext())
            } else {
                let config = Conv2DConfig(filters: t.o, kernelSize: (t.k, t.k), strides: (t.s, t.s), padding: .valid, activation: .relu)
                func make() throws -> Conv2DLayer {
                    var r = SeededRandom(seed: 713)
                    return try Conv2DLayer(name: "c", config: config, inputShape: padded, kernel: r.floats(t.k * t.k * t.c * t.o),
                                           bias: r.floats(t.o))
                }
                let plain = try make()
                want = conv2DForwardNaive(zero.forward(x, ForwardContext()), plain.geometry, kernel: plain.kernel, bias: plain.bias, .relu)
                let folded = try make()
                folded.absorbPadding(t.pad)
                XCTAssertEqual(folded.inputShape, [side, side, t.c])
                got = folded.forward(x, ForwardContext())
                // The naive loop on the folded geometry reads the padding as zeros too.
                let naive = conv2DForwardNaive(x, folded.geometry, kernel: folded.kernel, bias: folded.bias, .relu)
                XCTAssertLessThanOrEqual(naive.maxAbsDifference(want), 1e-6, "case \(index) naive")
            }
            XCTAssertEqual(got.shape, want.shape, "case \(index)")
            XCTAssertLessThanOrEqual(got.maxAbsDifference(want), 1e-5, "case \(index)")
        }
    }
}
