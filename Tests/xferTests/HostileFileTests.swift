// Hostile and damaged checkpoints (docs/CONTRACT.md, "Exit codes and errors"): each is a file
// Keras wrote, then rigged by checkpoints/make_hostile.py. xfer must answer each with exit 3 and
// one error line naming the file (at most one hint line), never crash, hang, take unbounded
// memory, print raw control characters, or read bytes from outside the file it was given.

import Foundation
import XCTest

final class HostileFileTests: XCTestCase {
    static let hostile = CLI.root.appendingPathComponent("checkpoints/hostile")

    /// Runs xfer in checkpoints/hostile and checks the contract's error shape.
    @discardableResult
    func refused(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Run {
        let r = try CLI.run(args, cwd: Self.hostile)
        XCTAssertEqual(r.status, 3, "\(args): \(r.stderr)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        XCTAssertTrue((1...2).contains(lines.count), "\(args): \(r.stderr)", file: file, line: line)
        XCTAssertTrue(lines.first?.hasPrefix("xfer: error: \(args[1])") ?? false, "\(args): \(r.stderr)", file: file, line: line)
        if lines.count == 2 { XCTAssertTrue(lines[1].hasPrefix("hint: "), r.stderr, file: file, line: line) }
        XCTAssertFalse(r.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || $0.value == 0x7f },
                       "raw control characters: \(r.stderr.debugDescription)", file: file, line: line)
        for m in mentions { XCTAssertTrue(r.stderr.contains(m), "\(args): expected '\(m)' in \(r.stderr)", file: file, line: line) }
        return r
    }

    func testObjectsReachingOutsideTheFileAreRefused() throws {
        try refused(["import", "external_storage.h5"], mentions: ["dense/kernel:0", "external storage"])
        try refused(["import", "external_link.h5"], mentions: ["dense/kernel:0", "external link"])
        try refused(["import", "virtual_dataset.h5"], mentions: ["dense/kernel:0", "virtual dataset"])
        try refused(["import", "soft_link.h5"], mentions: ["dense/kernel:0", "soft link"])
    }

    func testOutsideBytesNeverReachAnOutput() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-hostile-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out.h5").path
        for name in ["external_storage.h5", "external_link.h5", "virtual_dataset.h5"] {
            try refused(["import", name, "--to", out], mentions: [])
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), name)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testDataNeverWrittenAndImpossibleShapesAreRefused() throws {
        try refused(["import", "never_written.h5"], mentions: ["dense/kernel:0", "never fully written"])
        try refused(["import", "huge_declared_shape.h5"], mentions: ["dense/kernel:0"])
    }

    func testImpossibleConfigurationNumbersAreRefused() throws {
        try refused(["import", "config_negative_filters.h5"], mentions: ["conv2d", "'filters' is -8"])
        try refused(["import", "config_zero_kernel.h5"], mentions: ["conv2d", "kernel_size"])
        try refused(["import", "config_zero_strides.h5"], mentions: ["conv2d", "strides"])
        try refused(["import", "config_fractional_units.h5"], mentions: ["dense", "units", "2.5"])
        try refused(["import", "config_huge_units.h5"], mentions: ["dense", "units"])
        try refused(["import", "config_string_units.h5"], mentions: ["dense", "units"])
        try refused(["import", "config_huge_input.h5"], mentions: ["memory"])
        try refused(["import", "archive_negative_units.keras"], mentions: ["config.json", "dense", "'units' is -6"])
    }

    func testGraphAndLayerDamage() throws {
        try refused(["import", "config_duplicate_names.h5"], mentions: ["two layers named 'dense'"])
        try refused(["import", "config_lambda.h5"], mentions: ["Lambda"])
        try refused(["import", "config_deeply_nested.h5"], mentions: ["not valid JSON"])
    }

    func testNamesFromTheFileCannotForgeLinesOrDriveTheTerminal() throws {
        let r = try refused(["import", "config_forged_hint.h5"], mentions: ["Evil\\nhint: all is well \\u{1b}[31mred"])
        XCTAssertEqual(r.stderr.components(separatedBy: "\nhint:").count, 2, r.stderr)
    }

    func testArchivesThatLie() throws {
        let r = try refused(["import", "bomb.keras"], mentions: ["model.weights.h5", "inflates past"])
        _ = r
        try refused(["import", "no_weights.keras"], mentions: ["model.weights.h5"])
        try refused(["import", "archive_bad_crc.keras"], mentions: ["model.weights.h5", "checksum"])
        // Members named ../ or / are never extracted: xfer reads the members it needs into memory.
        let ok = try CLI.run(["import", "path_traversal.keras"], cwd: Self.hostile)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        for p in ["checkpoints/escaped.txt", "escaped.txt", "../escaped.txt"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: CLI.root.appendingPathComponent(p).path), p)
        }
    }

    /// Runs `command` on the rewritten file and on the Keras-written original, each writing
    /// `outputFlag` OUT.h5, and checks that both succeed with identical bytes.
    func assertReadsAsTheOriginal(_ rewritten: String, original: String, _ command: String, _ args: [String],
                                  outputFlag: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-rewritten-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (name, path) in [("a", Self.hostile.appendingPathComponent(rewritten).path), ("b", CLI.fixtures.appendingPathComponent(original).path)] {
            let r = try CLI.run([command, path] + args + [outputFlag, dir.appendingPathComponent("\(name).h5").path])
            XCTAssertEqual(r.status, 0, r.stderr, file: file, line: line)
        }
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("a.h5")), try Data(contentsOf: dir.appendingPathComponent("b.h5")),
                       file: file, line: line)
    }

    func testNewestHDF5StructuresReadAsTheOriginal() throws {
        // Kernels stored off float alignment are read through libhdf5, not refused as truncated.
        try assertReadsAsTheOriginal("libver_latest.h5", original: "k2_vgg_notop_weights.h5", "import",
                                     ["--input-shape", "32,32,3"], outputFlag: "--to")
    }

    func testChunkedCompressedWeightsReadAsTheOriginal() throws {
        let io = CLI.fixtures.appendingPathComponent("k2_zoo.h5.io.h5").path
        try assertReadsAsTheOriginal("chunked_gzip.h5", original: "k2_zoo.h5", "predict", ["--data", io], outputFlag: "--output")
    }

    func testInputsThatAreNotFilesNeverBlock() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-nonfiles-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("model.h5").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let zero = dir.appendingPathComponent("zero.h5").path
        try FileManager.default.createSymbolicLink(atPath: zero, withDestinationPath: "/dev/zero")
        try refused(["import", fifo], mentions: ["FIFO"])
        try refused(["import", zero], mentions: ["device"])
        try refused(["import", "/dev/null"], mentions: ["device"])
        try refused(["import", dir.path], mentions: ["directory"])
        // --config: a FIFO is refused by name, not read.
        let weights = CLI.fixtures.appendingPathComponent("k2_zoo_weights.h5").path
        let r = try CLI.run(["import", weights, "--config", fifo])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("xfer: error: \(fifo): is a FIFO"), r.stderr)
    }

    func testLibhdf5CrashIsContainedInTheProbe() throws {
        // libhdf5 segfaults on this file; the child process that reads it first takes the fault.
        try refused(["import", "libhdf5_segfault.h5"], mentions: ["libhdf5 crashed reading its structure"])
        try refused(["predict", "libhdf5_segfault.h5", "--data", "libhdf5_segfault.h5"], mentions: ["libhdf5 crashed"])
        try refused(["import", "libhdf5_sigfpe.h5"], mentions: ["libhdf5 crashed reading its structure", "floating point exception"])
        // glibc aborts on heap corruption; its own message must not reach the terminal either.
        try refused(["import", "libhdf5_abort.h5"], mentions: ["libhdf5 crashed reading its structure", "aborted"])
    }

    func testLibhdf5LoopIsStoppedByTheProbesTimeLimit() throws {
        // libhdf5 never returns on this file (a damaged global heap); the probe's processor-time
        // limit (shortened here from its default of 10 s) ends its child.
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = ["import", Self.hostile.appendingPathComponent("libhdf5_hang.h5").path]
        p.environment = ProcessInfo.processInfo.environment.merging(["XFER_HDF5_PROBE_SECONDS": "2"]) { $1 }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        let started = Date()
        try p.run()
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 3, e)
        XCTAssertTrue(e.hasPrefix("xfer: error: \(p.arguments![1]): is damaged: libhdf5 did not finish reading its structure within 2 s of processor time"), e)
        XCTAssertLessThan(Date().timeIntervalSince(started), 8)
    }
}
