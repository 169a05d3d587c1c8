// The README's Swift example, compiled and run.

import XCTest
import XferKit

final class ReadmeExampleTests: XCTestCase {
    func testReadmeExample() throws {
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(Fixtures.root.path)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        let out = try Fixtures.tempDir(self).appendingPathComponent("copy.h5").path

        // --- README example ---
        let checkpoint = try Checkpoint.load("checkpoints/fixtures/k2_transfer_nested.h5")
        let summary = try ModelSummary(checkpoint.model)
        print(summary.render())
        print("trainable:", summary.trainableParams, "of", summary.totalParams)
        try KerasH5Writer.write(checkpoint.model, to: out)
        // --- end ---

        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
    }
}
