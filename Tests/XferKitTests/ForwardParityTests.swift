// xfer's forward pass against Keras's `model.predict` on every fixture
// (checkpoints/fixtures/X.io.h5: a fixed batch `x` and Keras's output `y`).

import XCTest
@testable import XferKit

final class ForwardParityTests: XCTestCase {
    /// In both convolution cores, each to 1e-4: im2col + SGEMM sums as TensorFlow's direct
    /// convolution does (its errors are float32 rounding, ~1e-6 here); Winograd rounds its tile
    /// transforms differently, a few 1e-6 relative on these activations.
    func testEveryFixturePredictsWhatKerasPredicts() throws {
        try forEachConvolutionPath { path in
            var checked = 0, winogradLayers = 0
            for entry in try Fixtures.index() where entry.error == nil {
                guard let io = entry.io else { continue }
                let o = Fixtures.options(entry)
                let c = try Checkpoint.load(Fixtures.path(entry.file), options: .init(inputShape: o.inputShape, configPath: o.config))
                let f = try HDF5File.open(Fixtures.path(io))
                let x = try f.floats("/x"), y = try f.floats("/y")
                let network = try Network(spec: c.model)
                let out = try network.predict(Tensor(shape: x.shape, values: x.values), batchSize: 2)
                XCTAssertEqual(out.shape, y.shape, entry.file)
                let err = out.maxAbsDifference(Tensor(shape: y.shape, values: y.values))
                print("forward parity \(path) \(entry.file): max abs error \(err)")
                XCTAssertLessThanOrEqual(err, 1e-4, "\(entry.file) (\(path))")
                checked += 1
                winogradLayers += try winogradLayerCount(c.model)
            }
            XCTAssertGreaterThanOrEqual(checked, 15)
            print("forward parity \(path): \(checked) fixtures, \(winogradLayers) convolutions on Winograd")
            if path == .winograd && winogradRuns { XCTAssertGreaterThan(winogradLayers, 20) }
            if path == .im2col { XCTAssertEqual(winogradLayers, 0) }
        }
    }

    func testEvaluateUsesLogitsLikeKeras() throws {
        // A softmax model's loss comes from its logits: the Predictor strips the final softmax and
        // its probabilities equal the full network's output.
        let c = try Checkpoint.load(Fixtures.path("k2_vgg_full.h5"))
        let f = try HDF5File.open(Fixtures.path("k2_vgg_full.h5.io.h5"))
        let y = try f.floats("/y")
        let data = try DataSource(path: Fixtures.path("k2_vgg_full.h5.io.h5"))
        let predictor = try Predictor(model: c.model)
        XCTAssertTrue(predictor.appliesSoftmax)
        let p = try predictor.predict(data, batchSize: 2)
        XCTAssertLessThanOrEqual(p.probabilities.maxAbsDifference(Tensor(shape: y.shape, values: y.values)), 1e-5)
    }
}
