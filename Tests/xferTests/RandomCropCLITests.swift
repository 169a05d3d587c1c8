// Models with Keras's RandomCrop (checkpoints/crop, made by checkpoints/make_crop_fixtures.py)
// through the command line: `xfer import` lists the layer at the size each Keras gives it
// (tf-keras the crop, Keras 3 the uncropped input it predicts with) and counts Keras's
// parameters; predict equals Keras's predict; a tf-keras model fine-tunes (the crop window drawn
// from --seed, the feature cache off); a Keras 3 one whose input differs from its crop, a write
// of the other Keras's full model, and Keras 3's Flatten after an uncropped crop are refused with
// one line and exit 3.

import Foundation
import XCTest
import XferKit

final class RandomCropCLITests: XCTestCase {
    let dir = CLI.root.appendingPathComponent("checkpoints/crop")

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-crop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func path(_ file: String) -> String { dir.appendingPathComponent(file).path }

    func testImportPredictAndFinetune() throws {
        let tmp = try tempDir()
        for (file, stem, cropRow) in [("crop_k2.h5", "crop_k2", "(None, 8, 8, 3)"), ("crop_k2_small.h5", "crop_k2_small", "(None, 8, 8, 3)"),
                                      ("crop_k3.keras", "crop_k3", "(None, 12, 10, 3)"), ("crop_k3_same.keras", "crop_k3_same", "(None, 8, 8, 3)")] {
            let imp = try CLI.run(["import", path(file)])
            XCTAssertEqual(imp.status, 0, imp.stderr)
            let row = imp.stdout.split(separator: "\n").first { $0.contains("(RandomCrop)") }
            XCTAssertTrue(row?.contains(cropRow) == true, "\(file): \(imp.stdout)")
            XCTAssertTrue(imp.stdout.contains("Total params: 127"), imp.stdout)

            let preds = tmp.appendingPathComponent("\(stem)-predictions.h5").path
            let p = try CLI.run(["predict", path(file), "--data", path("\(stem)_data.h5"), "--preprocess", "none", "--output", preds])
            XCTAssertEqual(p.status, 0, p.stderr)
            let mine = try HDF5File.open(preds).floats("/predictions").values
            let keras = try HDF5File.open(path("\(stem)_data.h5")).floats("/y").values
            XCTAssertEqual(mine.count, keras.count)
            for i in keras.indices { XCTAssertEqual(mine[i], keras[i], accuracy: 1e-6, "\(file) prediction \(i)") }
        }

        // tf-keras trains with the window drawn from --seed: the same seed repeats, another differs.
        func train(_ seed: String, _ name: String) throws -> [Float] {
            let out = tmp.appendingPathComponent(name).path
            let r = try CLI.run(["finetune", path("crop_k2.h5"), "--data", path("train.h5"), "--keep-top", "--no-shuffle",
                                 "--epochs", "2", "--batch-size", "3", "--seed", seed, "--output", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("Feature cache: off"), r.stdout)
            return try Checkpoint.load(out).model.flattenedLayers().first { $0.layer.name == "predictions" }!.layer.weights[0].values
        }
        let a = try train("1", "a.h5"), b = try train("1", "b.h5"), c = try train("2", "c.h5")
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)

        let onnx = try CLI.run(["export", path("crop_k2.h5"), "--to", tmp.appendingPathComponent("crop.onnx").path])
        XCTAssertEqual(onnx.status, 0, onnx.stderr)
    }

    /// Keras 3 trains its crop at the crop's size and validates uncropped (12x10): finetune does
    /// both, writes a .keras that predicts uncropped again, and `predict` runs on it.
    func testFinetuneOfAKeras3CropTrainsAtTheCropSizeAndValidatesUncropped() throws {
        let tmp = try tempDir()
        let out = tmp.appendingPathComponent("k3.keras").path
        let r = try CLI.run(["finetune", path("crop_k3.keras"), "--data", path("train.h5"), "--keep-top", "--epochs", "2",
                             "--batch-size", "2", "--validation-split", "0.5", "--seed", "3", "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("val_loss"), r.stdout)
        let p = try CLI.run(["predict", out, "--data", path("crop_k3_data.h5"), "--preprocess", "none"])
        XCTAssertEqual(p.status, 0, p.stderr)
    }

    func testRefusals() throws {
        let tmp = try tempDir()
        func refused(_ args: [String], _ says: String) throws {
            let r = try CLI.run(args)
            XCTAssertEqual(r.status, 3, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(says), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix("xfer: error:") }.count, 1, r.stderr)
        }
        let out = tmp.appendingPathComponent("out.keras").path
        try refused(["export", path("crop_k2.h5"), "--to", out], "layer 'crop' (RandomCrop): tf-keras wrote it")
        try refused(["export", path("crop_k3.keras"), "--to", tmp.appendingPathComponent("out.h5").path],
                    "layer 'crop' (RandomCrop): Keras 3 wrote it")
        try refused(["finetune", path("crop_k2.h5"), "--data", path("train.h5"), "--keep-top", "--epochs", "1", "--output", out],
                    "Keras 3 would predict with it uncropped")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        try refused(["import", path("crop_k3_flatten.keras")], "layer 'predictions'")
        try refused(["import", path("crop_k3_flatten.keras")], "hint: Keras 3's RandomCrop 'crop' predicts with the image uncropped")
    }
}
