// The Swift API and the command line agree: an error's LocalizedError text is the two lines
// `xfer` prints for the same input, and the API writes the files `xfer export` writes.

import Foundation
import XCTest
import XferKit

final class SwiftAPICLITests: XCTestCase {
    /// For each bad checkpoint: `xfer export BAD --to OUT` prints `xfer: error: <line>` and
    /// `hint: <hint>`; `KerasModel(contentsOf: BAD)` throws an error whose `localizedDescription`
    /// is that line and whose `recoverySuggestion` is that hint.
    func testErrorsAreTheLinesTheCLIPrints() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-api-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("text.h5"); try Data("hello".utf8).write(to: text)
        let real = try Data(contentsOf: CLI.fixtures.appendingPathComponent("k2_vgg_full.h5"))
        let cut = dir.appendingPathComponent("cut.h5"); try real.prefix(real.count / 2).write(to: cut)
        let bad = ["missing.h5", dir.path, text.path, cut.path, "not_keras.h5", "damaged_wrong_shape.h5", "unsupported_layer.h5",
                   "k2_zoo_weights.h5"]
        var hints = 0
        for file in bad {
            let out = dir.appendingPathComponent("out.h5").path
            let r = try CLI.run(["export", file, "--to", out])
            XCTAssertEqual(r.status, 3, file)
            let path = file.hasPrefix("/") ? file : CLI.fixtures.appendingPathComponent(file).path
            // The CLI ran in the fixtures folder with the relative name; the API gets the same name there.
            let cwd = FileManager.default.currentDirectoryPath
            _ = FileManager.default.changeCurrentDirectoryPath(CLI.fixtures.path)
            defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
            XCTAssertThrowsError(try KerasModel(contentsOf: file), path) { error in
                var printed = "xfer: error: \(error.localizedDescription)\n"
                if let hint = (error as? LocalizedError)?.recoverySuggestion { printed += "hint: \(hint)\n"; hints += 1 }
                XCTAssertEqual(printed, r.stderr, file)
                XCTAssertFalse(error.localizedDescription.contains("The operation could not be completed"))
            }
        }
        XCTAssertGreaterThan(hints, 2)
    }

    /// `model.export(to:)` writes what `xfer export` writes, for each format.
    func testExportWritesWhatTheCLIWrites() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-api-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = CLI.fixtures.appendingPathComponent("k3_vgg.keras").path
        let model = try KerasModel(contentsOf: source)
        for ext in ["onnx", "weights.h5"] {
            let mine = dir.appendingPathComponent("api.\(ext)").path, theirs = dir.appendingPathComponent("cli.\(ext)").path
            try model.export(to: mine)
            let r = try CLI.run(["export", source, "--to", theirs])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: mine)), try Data(contentsOf: URL(fileURLWithPath: theirs)), ext)
        }
    }
}
