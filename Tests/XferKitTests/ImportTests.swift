// Every Keras-written checkpoint imports with Keras's own parameter counts, per
// layer and in total; the bad ones fail with the right error.

import XCTest
@testable import XferKit

final class ImportTests: XCTestCase {
    func load(_ e: Fixtures.Entry, values: WeightValues = .load) throws -> Checkpoint {
        let o = Fixtures.options(e)
        return try Checkpoint.load(Fixtures.path(e.file),
                                   options: CheckpointLoadOptions(inputShape: o.inputShape, configPath: o.config, values: values))
    }

    func testCountsEqualKerasForEveryFixture() throws {
        var checked = 0
        for entry in try Fixtures.index() {
            guard let expected = try Fixtures.expected(entry) else { continue }
            let checkpoint = try load(entry)
            let summary = try ModelSummary(checkpoint.model)
            let what = entry.file
            XCTAssertEqual(summary.totalParams, expected.total_params, "\(what): total")
            XCTAssertEqual(summary.trainableParams, expected.trainable_params, "\(what): trainable")
            XCTAssertEqual(summary.nonTrainableParams, expected.non_trainable_params, "\(what): non-trainable")
            XCTAssertEqual(checkpoint.model.inputShape, expected.input_shape, "\(what): input shape")
            XCTAssertEqual(summary.rows.map(\.name), expected.layers.map(\.name), "\(what): layer rows")
            for (row, k) in zip(summary.rows, expected.layers) {
                XCTAssertEqual(row.type, k.type, "\(what): \(k.name) type")
                XCTAssertEqual(row.outputShape, k.output_shape, "\(what): \(k.name) output shape")
                XCTAssertEqual(row.params, k.params, "\(what): \(k.name) params")
                XCTAssertEqual(row.trainableParams, k.trainable_params, "\(what): \(k.name) trainable params")
                XCTAssertEqual(row.nonTrainableParams, k.non_trainable_params, "\(what): \(k.name) non-trainable params")
                XCTAssertEqual(row.trainable, k.trainable, "\(what): \(k.name) trainable flag")
                XCTAssertEqual(row.parent, k.parent, "\(what): \(k.name) parent")
            }
            if let v = expected.keras_version, checkpoint.format != .keras3Weights {
                XCTAssertEqual(checkpoint.kerasVersion, v, "\(what): keras version")
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 15)
    }

    func testFormatsAreRecognised() throws {
        let formats = try Dictionary(uniqueKeysWithValues: Fixtures.index().filter { $0.error == nil }.map { e in
            (e.file, try load(e, values: .skip).format)
        })
        XCTAssertEqual(formats["k2_vgg_full.h5"], .keras2Model)
        XCTAssertEqual(formats["k2_vgg_weights.h5"], .keras2Weights)
        XCTAssertEqual(formats["k3_vgg.weights.h5"], .keras3Weights)
        XCTAssertEqual(formats["k3_vgg.keras"], .keras3Archive)
        XCTAssertEqual(formats["k3_vgg_legacy.h5"], .keras3LegacyModel)
    }

    func testWeightsOnlyVGGIsInferred() throws {
        let e = try Fixtures.index().first { $0.file == "k2_vgg_notop_weights.h5" }!
        let c = try load(e)
        XCTAssertEqual(c.architecture, .inferredVGG)
        XCTAssertEqual(c.model.inputShape, [32, 32, 3])
        // Without --input-shape, the default is 224×224×3 (a notop base takes any size).
        let d = try Checkpoint.load(Fixtures.path(e.file), options: .init(values: .skip))
        XCTAssertEqual(d.model.inputShape, [224, 224, 3])
    }

    func testWeightsMatchTheFileValues() throws {
        // Values read through the legacy path and the Keras 3 path are the same numbers Keras saved:
        // k3_vgg.keras and k3_vgg.weights.h5 hold one model.
        let index = try Fixtures.index()
        let a = try load(index.first { $0.file == "k3_vgg.keras" }!)
        let b = try load(index.first { $0.file == "k3_vgg.weights.h5" }!)
        let wa = a.model.layers.flatMap(\.weights), wb = b.model.layers.flatMap(\.weights)
        XCTAssertEqual(wa.count, wb.count)
        for (x, y) in zip(wa, wb) { XCTAssertEqual(x.values, y.values) }
        XCTAssertFalse(wa.isEmpty)
    }

    func testBadFixturesFailWithTheirMessage() throws {
        for entry in try Fixtures.index() {
            guard let spec = entry.error else { continue }
            XCTAssertThrowsError(try load(entry), entry.file) { error in
                guard let e = error as? XferError else { return XCTFail("\(entry.file): not an XferError: \(error)") }
                XCTAssertEqual(e.kind.rawValue, spec.exit, entry.file)
                for word in spec.mentions {
                    XCTAssertTrue(e.description.contains(word), "\(entry.file): '\(e.description)' should mention \(word)")
                }
            }
        }
    }

    func testWeightsOnlyWithoutVGGNamesAsksForConfig() throws {
        XCTAssertThrowsError(try Checkpoint.load(Fixtures.path("k2_zoo_weights.h5"))) { error in
            let e = error as! XferError
            XCTAssertEqual(e.kind, .badInput)
            XCTAssertTrue((e.hint ?? "").contains("--config"), e.description)
        }
    }
}

final class VerifyTests: XCTestCase {
    func testVerifyReadsEveryWeightWithoutKeepingIt() throws {
        for entry in try Fixtures.index() where entry.error == nil {
            let o = Fixtures.options(entry)
            let c = try Checkpoint.load(Fixtures.path(entry.file), options: .init(inputShape: o.inputShape, configPath: o.config, values: .verify))
            XCTAssertTrue(c.nonFiniteWeights.isEmpty, entry.file)
            XCTAssertTrue(c.model.layers.allSatisfy { $0.weights.allSatisfy { $0.values.isEmpty } })
        }
    }

    func testTruncatedDataIsCaughtByVerify() throws {
        // Cut inside the weight data of a real file (past the metadata libhdf5 checks on open).
        let dir = try Fixtures.tempDir(self)
        let data = try Data(contentsOf: Fixtures.dir.appendingPathComponent("k2_vgg_weights.h5"))
        let cut = dir.appendingPathComponent("cut.h5")
        try data.prefix(data.count * 3 / 4).write(to: cut)
        XCTAssertThrowsError(try Checkpoint.load(cut.path, options: .init(inputShape: [32, 32, 3], values: .verify)))
    }
}
