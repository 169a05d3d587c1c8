// The Keras 2 full-model .h5 that xfer writes reads back identically, and is
// written atomically. (That Keras itself loads it is checked by
// checkpoints/check_keras_loads.py.)

import XCTest
@testable import XferKit

final class WriterTests: XCTestCase {
    func testRoundTripKeepsArchitectureWeightsAndCounts() throws {
        let dir = try Fixtures.tempDir(self)
        for entry in try Fixtures.index() where entry.error == nil {
            let o = Fixtures.options(entry)
            let original = try Checkpoint.load(Fixtures.path(entry.file), options: .init(inputShape: o.inputShape, configPath: o.config))
            let out = dir.appendingPathComponent("\(entry.name).h5").path
            try KerasH5Writer.write(original.model, to: out)
            let back = try Checkpoint.load(out)
            XCTAssertEqual(back.format, .keras2Model)
            let a = try ModelSummary(original.model), b = try ModelSummary(back.model)
            // tf-keras ignores a nested model's own `trainable` flag on load (its layers keep theirs),
            // so rows are compared on everything that counts; a nested model's own row splits its
            // parameters by that flag, so only its total is compared (the file totals are).
            func key(_ r: SummaryRow) -> String {
                let split = r.type == "Functional" || r.type == "Sequential" ? "" : "\(r.trainableParams) \(r.nonTrainableParams)"
                return "\(r.name) \(r.type) \(r.outputShape) \(r.params) \(split) \(r.parent ?? "")"
            }
            XCTAssertEqual(a.rows.map(key), b.rows.map(key), entry.file)
            XCTAssertEqual(a.totalParams, b.totalParams, entry.file)
            XCTAssertEqual(a.trainableParams, b.trainableParams, entry.file)
            XCTAssertEqual(a.nonTrainableParams, b.nonTrainableParams, entry.file)
            XCTAssertEqual(allWeights(original.model).map(\.values), allWeights(back.model).map(\.values), entry.file)
        }
    }

    func allWeights(_ m: ModelSpec) -> [WeightSpec] {
        m.layers.flatMap { l -> [WeightSpec] in
            if case .model(let inner) = l.kind { return allWeights(inner) }
            return l.weights
        }
    }

    func testRefusesToOverwriteItsInput() throws {
        let dir = try Fixtures.tempDir(self)
        let input = dir.appendingPathComponent("in.h5")
        try FileManager.default.copyItem(at: Fixtures.dir.appendingPathComponent("k2_vgg_full.h5"), to: input)
        let before = try Data(contentsOf: input)
        let model = try Checkpoint.load(input.path).model
        XCTAssertThrowsError(try KerasH5Writer.write(model, to: input.path, protecting: [input.path]))
        XCTAssertEqual(try Data(contentsOf: input), before)
    }

    func testFailedWriteLeavesNothingBehind() throws {
        let dir = try Fixtures.tempDir(self)
        let model = try Checkpoint.load(Fixtures.path("k2_vgg_full.h5")).model
        XCTAssertThrowsError(try KerasH5Writer.write(model, to: dir.appendingPathComponent("missing/out.h5").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
