// Weights-only files of keras.applications families through the binary: the inferred family is
// said on stderr, `--json` says "inferred", a file no family fits is exit 3 with one line naming
// the closest (checkpoints/weights_only, made by checkpoints/make_weights_only_fixtures.py).

import Foundation
import XCTest

final class WeightsOnlyCLITests: XCTestCase {
    static let dir = CLI.root.appendingPathComponent("checkpoints/weights_only")

    func testImportSaysWhichFamilyItInferred() throws {
        let r = try CLI.run(["import", "k2_mobilenet025_notop.h5", "--input-shape", "32,32,3", "--json"], cwd: Self.dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stderr, "xfer: warning: k2_mobilenet025_notop.h5: inferred MobileNet (alpha 0.25, no top) from layer names and weight shapes, input 32×32×3; --config to give the architecture\n")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["architecture"] as? String, "inferred")
        XCTAssertEqual(json["total_params"] as? Int, 218544)
    }

    func testTransferModelPredictsWithItsInferredHead() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-wo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let out = tmp.appendingPathComponent("p.h5").path
        let r = try CLI.run(["predict", "k3_mobilenet025_transfer.weights.h5", "--input-shape", "32,32,3",
                             "--data", "k3_mobilenet025_transfer.weights.h5.io.h5", "--output", out], cwd: Self.dir)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("inferred MobileNet (alpha 0.25, no top) inside 'mobilenet_0.25_32', then GlobalAveragePooling2D → Dense 8 (relu) → Dropout (0.5) → Dense 3 (softmax) from layer paths and weight shapes (the head's activations and Dropout rate assumed), input 32×32×3"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
    }

    func testAFileNoFamilyFitsIsOneLineAndExit3() throws {
        let r = try CLI.run(["import", "k2_mobilenet025_cut.h5"], cwd: Self.dir)
        XCTAssertEqual(r.status, 3)
        let first = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(first.hasPrefix("xfer: error: k2_mobilenet025_cut.h5: weights only, and its layers fit no keras.applications architecture xfer knows (closest is MobileNet (alpha 0.25, no top)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("--config"), r.stderr)
    }
}
