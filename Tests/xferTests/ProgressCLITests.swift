// The progress of `xfer finetune` (docs/CONTRACT.md, "Progress"): one plain line per epoch
// ending in its time and time per step when stderr is a pipe; Keras's bar (batches counted,
// ETA, ms/step) when it is a terminal — run under `script`, which gives the command a pty.

import Foundation
import XCTest

final class ProgressCLITests: XCTestCase {
    let data = CLI.root.appendingPathComponent("checkpoints/training/fit_plain.h5").path

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-progress-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// `epoch 2/3 - loss: 1.2345 - accuracy: 0.5000 - val_loss: ... - val_accuracy: ... - 0s 3ms/step`
    static let epochLine = try! NSRegularExpression(
        pattern: #"^epoch (\d+)/3 - loss: [0-9.]+ - accuracy: [0-9.]+ - val_loss: [0-9.]+ - val_accuracy: [0-9.]+ - \d+s \d+(us|ms|s)/step$"#)

    func testPipedOutputIsOnePlainLinePerEpochEndingInTimeAndStepTime() throws {
        let out = try tempDir().appendingPathComponent("m.h5").path
        let r = try CLI.run(["finetune", "k2_transfer_functional_bn.h5", "--data", data, "--epochs", "3", "--batch-size", "4",
                             "--validation-split", "0.3", "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("epoch ") }
        XCTAssertEqual(lines.count, 3, r.stdout)
        for (i, line) in lines.enumerated() {
            let m = Self.epochLine.firstMatch(in: line, range: NSRange(line.startIndex..., in: line))
            XCTAssertNotNil(m, line)
            if let m { XCTAssertEqual((line as NSString).substring(with: m.range(at: 1)), String(i + 1)) }
        }
        XCTAssertFalse(r.stdout.contains("\r") || r.stderr.contains("\r"), "no carriage returns in a pipe")
        XCTAssertFalse(r.stderr.contains("━"), "no bar in a pipe: \(r.stderr)")
    }

    func testTerminalShowsKerasBarCountingBatches() throws {
        let script = URL(fileURLWithPath: "/usr/bin/script")
        guard FileManager.default.isExecutableFile(atPath: script.path) else { throw XCTSkip("no script(1) for a pty") }
        let out = try tempDir().appendingPathComponent("m.h5").path
        let command = ([CLI.binary.path, "finetune", "k2_transfer_functional_bn.h5", "--data", data, "--epochs", "2",
                        "--batch-size", "4", "--no-cache", "--output", out]).map { "'\($0)'" }.joined(separator: " ")
        let p = Process()
        p.executableURL = script
        p.arguments = ["-qec", command, "/dev/null"]
        p.currentDirectoryURL = CLI.fixtures
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        // 10 samples in batches of 4: 3 steps; the last step is always drawn, then cleared.
        XCTAssertTrue(text.contains("\repoch 1/2 3/3 ━━━━━━━━━━━━━━━━━━━━ "), text)
        XCTAssertTrue(text.contains("\repoch 2/2 3/3 ━━━━━━━━━━━━━━━━━━━━ "), text)
        XCTAssertNotNil(text.range(of: #"3/3 ━{20} \d+s \d+(us|ms|s)/step - loss: [0-9.]+ - accuracy: [0-9.]+"#, options: .regularExpression), text)
        // The cleared bar (\r ESC[K) makes way for the summary line.
        XCTAssertNotNil(text.range(of: #"\r\x1B\[Kepoch 2/2 - loss: [0-9.]+ - accuracy: [0-9.]+ - \d+s \d+(us|ms|s)/step\r?\n"#, options: .regularExpression), text)
    }
}
