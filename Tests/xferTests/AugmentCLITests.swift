// `xfer finetune --augment` end to end: every Keras-named augmentation with its factor,
// seeded (the same --seed writes the same weights, another seed others), and bad items exit 2
// naming the item. The transforms themselves are checked against Keras in
// XferKitTests/AugmentationParityTests.

import Foundation
import XCTest
import XferKit

final class AugmentCLITests: XCTestCase {
    let images = CLI.root.appendingPathComponent("checkpoints/images/sample").path
    static let all = "flip,rotation:0.1,zoom:0.2,translation:0.1:0.2,contrast:0.2,brightness:0.2"

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-augment-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func train(_ seed: String, _ out: String, augment: String = all) throws -> [String: [Float]] {
        let r = try CLI.run(["finetune", "k2_vgg_full.h5", "--data", images, "--epochs", "2", "--batch-size", "2",
                             "--head", "flatten,dense:8:relu", "--optimizer", "adam", "--lr", "0.01",
                             "--augment", augment, "--seed", seed, "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Augmentation (\(augment))"), r.stdout)
        XCTAssertTrue(r.stdout.contains("epoch 2/2 - loss: "), r.stdout)
        let model = try Checkpoint.load(out).model
        var weights: [String: [Float]] = [:]
        for l in model.flattenedLayers() { for w in l.layer.weights { weights["\(l.layer.name)/\(w.role.rawValue)"] = w.values } }
        return weights
    }

    func testSeededAugmentationRepeatsAndTheSeedMatters() throws {
        let dir = try tempDir()
        let a = try train("5", dir.appendingPathComponent("a.h5").path)
        let b = try train("5", dir.appendingPathComponent("b.h5").path)
        XCTAssertEqual(a, b, "the same --seed gives the same augmented batches, so the same weights")
        // Another seed draws other augmentations (and another head): other weights.
        let c = try train("6", dir.appendingPathComponent("c.h5").path)
        XCTAssertNotEqual(a["predictions/kernel"], c["predictions/kernel"])
        // The augmentations change what trains: without them, other weights for the same seed.
        let plain = try train("5", dir.appendingPathComponent("d.h5").path, augment: "crop")
        XCTAssertNotEqual(a["predictions/kernel"], plain["predictions/kernel"])
    }

    func testBadItemsExit2NamingThem() throws {
        for (spec, says) in [("rotation", "needs a factor"), ("zoom:2", "must be in"), ("shear:0.1", "unknown augmentation 'shear'"),
                             ("contrast:abc", "not a number"), ("flip:diagonal", "mode 'diagonal'")] {
            let r = try CLI.run(["finetune", "k2_vgg_full.h5", "--data", images, "--augment", spec, "--dry-run"])
            XCTAssertEqual(r.status, 2, "\(spec): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("--augment") && r.stderr.contains(says), "\(spec): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").filter { $0.hasPrefix("xfer: error") }.count, 1, r.stderr)
        }
    }
}

/// Keras models with augmentation layers in front (checkpoints/augment/k2_augment.h5 from
/// tf-keras, k3_augment.keras from Keras 3, made by checkpoints/make_augment_models.py): they
/// import, predict as Keras predicts (every augmentation layer the identity at inference),
/// fine-tune with the layers drawing from the run's seed (so the feature cache is off), and
/// export to ONNX with the layers as the identity.
final class AugmentLayerCLITests: XCTestCase {
    let dir = CLI.root.appendingPathComponent("checkpoints/augment")

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-augment-layers-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testModelsWithAugmentationLayersImportPredictAndTrain() throws {
        let tmp = try tempDir()
        for file in ["k2_augment.h5", "k3_augment.keras"] {
            let model = dir.appendingPathComponent(file).path
            let imp = try CLI.run(["import", model])
            XCTAssertEqual(imp.status, 0, imp.stderr)
            for kind in ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness"] {
                XCTAssertTrue(imp.stdout.contains("(\(kind))"), "\(file): \(kind): \(imp.stdout)")
            }
            XCTAssertTrue(imp.stdout.contains("Total params: 703"), imp.stdout)

            // Inference: Keras's predictions (the layers are the identity).
            let io = dir.appendingPathComponent("\(file).io.h5").path
            let preds = tmp.appendingPathComponent("\(file)-predictions.h5").path
            let p = try CLI.run(["predict", model, "--data", io, "--output", preds])
            XCTAssertEqual(p.status, 0, p.stderr)
            let mine = try HDF5File.open(preds).floats("/predictions").values
            let keras = try HDF5File.open(io).floats("/y").values
            XCTAssertEqual(mine.count, keras.count)
            for i in keras.indices { XCTAssertEqual(mine[i], keras[i], accuracy: 1e-4, "\(file) prediction \(i)") }

            // Training: the layers draw from --seed, so two seeds give two results even without
            // shuffling or a new head; the same seed repeats.
            func train(_ seed: String, _ name: String) throws -> [Float] {
                let out = tmp.appendingPathComponent(name).path
                let r = try CLI.run(["finetune", model, "--data", dir.appendingPathComponent("train.h5").path, "--keep-top",
                                     "--freeze-until", "conv1", "--no-shuffle", "--epochs", "2", "--batch-size", "3",
                                     "--seed", seed, "--output", out])
                XCTAssertEqual(r.status, 0, r.stderr)
                XCTAssertTrue(r.stdout.contains("Feature cache: off"), r.stdout)
                return try Checkpoint.load(out).model.flattenedLayers().first { $0.layer.name == "conv1" }!.layer.weights[0].values
            }
            let a = try train("1", "\(file)-a.h5"), b = try train("1", "\(file)-b.h5"), c = try train("2", "\(file)-c.h5")
            XCTAssertEqual(a, b)
            XCTAssertNotEqual(a, c)

            let onnx = try CLI.run(["export", model, "--to", tmp.appendingPathComponent("\(file).onnx").path])
            XCTAssertEqual(onnx.status, 0, onnx.stderr)
        }
    }
}
