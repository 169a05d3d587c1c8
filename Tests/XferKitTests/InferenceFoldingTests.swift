// Folding BatchNormalization (and the activation after it) into the convolution before it, for
// inference passes (Execution/InferenceFolding.swift): on every fixture the folded network still
// predicts what Keras predicts, agrees with the unfolded one, and the fixtures with conv → BN chains
// do get folded (ForwardParityTests runs the folded networks in both convolution cores).

import XCTest
@testable import XferKit

final class InferenceFoldingTests: XCTestCase {
    func testFoldedNetworksPredictWhatKerasAndTheUnfoldedOnesPredict() throws {
        let saved = Network.foldsForInference
        defer { Network.foldsForInference = saved }
        var folded: [String: Int] = [:]
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
            XCTAssertLessThanOrEqual(out.maxAbsDifference(Tensor(shape: y.shape, values: y.values)), 1e-4, entry.file)
            XCTAssertLessThanOrEqual(out.maxAbsDifference(unfolded), 1e-5, entry.file)
        }
        print("folded BatchNormalization layers per fixture: \(folded.filter { $0.value > 0 })")
        XCTAssertGreaterThan(folded["k2_resnet.h5"] ?? 0, 0)
        XCTAssertGreaterThan(folded["k2_vgg_bn.h5"] ?? 0, 0)
        XCTAssertEqual(folded["k2_vgg_full.h5"], 0)
    }
}
