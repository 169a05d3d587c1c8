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
