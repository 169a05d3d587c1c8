// Damaged, truncated, empty and foreign files: one clear error, never a crash.
// Damaged files are made here by damaging real Keras-written fixtures.

import XCTest
@testable import XferKit

final class BadInputTests: XCTestCase {
    func expectBadInput(_ path: String, mentioning words: [String] = [], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Checkpoint.load(path), file: file, line: line) { error in
            guard let e = error as? XferError else { return XCTFail("not an XferError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, .badInput, e.description, file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), "one line: \(e.description)", file: file, line: line)
            for w in words { XCTAssertTrue(e.description.contains(w), "'\(e.description)' should mention '\(w)'", file: file, line: line) }
        }
    }

    func testMissingFile() {
        expectBadInput("/nonexistent/model.h5", mentioning: ["/nonexistent/model.h5", "no such file"])
    }

    func testDirectory() throws {
        let dir = try Fixtures.tempDir(self)
        expectBadInput(dir.path, mentioning: ["directory"])
    }

    func testEmptyFile() throws {
        let f = try Fixtures.tempDir(self).appendingPathComponent("empty.h5")
        FileManager.default.createFile(atPath: f.path, contents: Data())
        expectBadInput(f.path, mentioning: ["empty"])
    }

    func testNotHDF5() throws {
        let f = try Fixtures.tempDir(self).appendingPathComponent("notes.h5")
        try Data("these are not weights\n".utf8).write(to: f)
        expectBadInput(f.path, mentioning: ["not an HDF5 file"])
    }

    func testHDF5ThatIsNotKeras() {
        expectBadInput(Fixtures.path("not_keras.h5"), mentioning: ["not a Keras checkpoint"])
    }

    func testTruncatedAtManyPoints() throws {
        let dir = try Fixtures.tempDir(self)
        for name in ["k2_vgg_full.h5", "k2_vgg_weights.h5", "k3_vgg.weights.h5", "k3_vgg.keras", "k2_transfer_nested.h5"] {
            let data = try Data(contentsOf: Fixtures.dir.appendingPathComponent(name))
            for fraction in [0.01, 0.3, 0.5, 0.9, 0.999] {
                let cut = dir.appendingPathComponent("cut-\(fraction)-\(name)")
                try data.prefix(max(1, Int(Double(data.count) * fraction))).write(to: cut)
                expectBadInput(cut.path, mentioning: [cut.lastPathComponent])
            }
        }
    }

    func testOverwrittenBytesNeverCrash() throws {
        // Scribbles over parts of a real file: whatever libhdf5 makes of it, xfer either reads
        // a checkpoint or throws its error; it must not crash or print libhdf5's error stack.
        let dir = try Fixtures.tempDir(self)
        let original = try Data(contentsOf: Fixtures.dir.appendingPathComponent("k2_vgg_full.h5"))
        // A fixed sequence, so a failure reproduces.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 11 }
        for k in 0..<40 {
            var data = original
            let start = Int(next() % UInt64(data.count - 64))
            for i in start..<(start + 64) { data[i] = UInt8(truncatingIfNeeded: next()) }
            let f = dir.appendingPathComponent("scribbled-\(k).h5")
            try data.write(to: f)
            do { _ = try Checkpoint.load(f.path) } catch let e as XferError { XCTAssertEqual(e.kind, .badInput) }
        }
    }

    func testWrongWeightShape() {
        expectBadInput(Fixtures.path("damaged_wrong_shape.h5"), mentioning: ["block2_conv1", "(3, 3, 8, 16)"])
    }

    func testUnsupportedLayerIsNamed() throws {
        let e = try Fixtures.index().first { $0.file == "unsupported_layer.h5" }!
        expectBadInput(Fixtures.path(e.file), mentioning: e.error!.mentions)
    }

    func testConfigOfAnotherModelIsAMismatch() {
        XCTAssertThrowsError(try Checkpoint.load(Fixtures.path("k2_vgg_weights.h5"),
                                                 options: .init(configPath: Fixtures.path("k2_zoo.json")))) { error in
            XCTAssertEqual((error as? XferError)?.kind, .badInput)
        }
    }
}
