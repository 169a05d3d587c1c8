// Grouped Conv2D through the built binary (fixtures: checkpoints/grouped, made by
// checkpoints/make_grouped_conv_fixtures.py): `xfer import` prints Keras's counts, `xfer predict`
// gives Keras's predictions, and `xfer finetune` trains a grouped model whose output predicts again.
// (Keras loading xfer's outputs: checkpoints/check_keras_loads.py and check_deploy_outputs.py.)

import Foundation
import XCTest
import XferKit

final class GroupedConvCLITests: XCTestCase {
    static let dir = CLI.root.appendingPathComponent("checkpoints/grouped")

    struct Counts: Decodable { var total_params: Int; var trainable_params: Int; var non_trainable_params: Int }

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-grouped-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testImportCountsAndPredictEqualKeras() throws {
        let expected = try JSONDecoder().decode([String: Counts].self, from: Data(contentsOf: Self.dir.appendingPathComponent("expected.json")))
        XCTAssertEqual(expected.count, 16)
        let tmp = try tempDir()
        for (file, k) in expected.sorted(by: { $0.key < $1.key }) {
            let r = try CLI.run(["import", file, "--json"], cwd: Self.dir)
            XCTAssertEqual(r.status, 0, "\(file): \(r.stderr)")
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            XCTAssertEqual([obj["total_params"], obj["trainable_params"], obj["non_trainable_params"]].map { $0 as? Int },
                           [k.total_params, k.trainable_params, k.non_trainable_params], file)
            let data = (file as NSString).deletingPathExtension + "_data.h5"
            let out = tmp.appendingPathComponent(file + ".pred.h5").path
            let p = try CLI.run(["predict", file, "--data", data, "--preprocess", "none", "--output", out], cwd: Self.dir)
            XCTAssertEqual(p.status, 0, "\(file): \(p.stderr)")
            let mine = try HDF5File.open(out).floats("/predictions").values
            let keras = try HDF5File.open(Self.dir.appendingPathComponent(data).path).floats("/keras/predict").values
            XCTAssertEqual(mine.count, keras.count, file)
            XCTAssertLessThanOrEqual(zip(mine, keras).map { abs($0 - $1) }.max() ?? .infinity, 1e-6, file)
        }
    }

    func testFinetuneOfAGroupedModel() throws {
        let tmp = try tempDir()
        for file in ["pad_bn_k2.h5", "s2_same_k3.keras"] {
            let data = (file as NSString).deletingPathExtension + "_data.h5"
            let out = tmp.appendingPathComponent("tuned-" + file).path
            let r = try CLI.run(["finetune", file, "--data", data, "--keep-top", "--epochs", "2", "--batch-size", "2",
                                 "--preprocess", "none", "--output", out], cwd: Self.dir)
            XCTAssertEqual(r.status, 0, "\(file): \(r.stderr)")
            let pred = tmp.appendingPathComponent("pred-" + file + ".h5").path
            let p = try CLI.run(["predict", out, "--data", data, "--output", pred], cwd: Self.dir)
            XCTAssertEqual(p.status, 0, "\(file): \(p.stderr)")
            let mine = try HDF5File.open(pred).floats("/predictions").values
            let before = try HDF5File.open(Self.dir.appendingPathComponent(data).path).floats("/keras/predict").values
            // Trained: the predictions moved.
            XCTAssertGreaterThan(zip(mine, before).map { abs($0 - $1) }.max() ?? 0, 1e-4, file)
            let imported = try CLI.run(["import", out, "--json"], cwd: Self.dir)
            XCTAssertEqual(imported.status, 0, imported.stderr)
        }
        // The plan names the grouped layer's convolution core.
        let plan = try CLI.run(["finetune", "pad_bn_k2.h5", "--data", "pad_bn_k2_data.h5", "--keep-top", "--dry-run",
                                "--output", tmp.appendingPathComponent("unused.h5").path], cwd: Self.dir)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertTrue(plan.stdout.split(separator: "\n").contains { $0.contains("gconv (Conv2D)") && $0.contains("im2col (grouped)") }, plan.stdout)
    }
}
