// End to end: the built `xfer` binary, its output and exit codes (docs/CONTRACT.md).

import Foundation
import XCTest

struct Run {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum CLI {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("checkpoints/fixtures")

    /// The `xfer` executable next to the test bundle.
    static var binary: URL {
        var dir = Bundle.main.bundleURL
        if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
        let candidate = dir.appendingPathComponent("xfer")
        if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("xfer")
    }

    static func run(_ args: [String], cwd: URL? = nil, environment: [String: String] = [:]) throws -> Run {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        if !environment.isEmpty {
            p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        p.currentDirectoryURL = cwd ?? fixtures
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}

final class ImportCLITests: XCTestCase {
    struct Expected: Decodable {
        var total_params: Int
        var trainable_params: Int
        var non_trainable_params: Int
    }

    func expected(_ file: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: CLI.fixtures.appendingPathComponent("\(file).expected.json")))
    }

    func testImportPrintsFormatTableAndKerasCounts() throws {
        let r = try CLI.run(["import", "k2_transfer_nested.h5"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.first?.hasPrefix("Format: ") ?? false, r.stdout)
        XCTAssertTrue(r.stdout.contains("Layer (type)") && r.stdout.contains("Output Shape") && r.stdout.contains("Param #") && r.stdout.contains("Trainable"))
        let k = try expected("k2_transfer_nested.h5")
        func fmt(_ n: Int) -> String {
            let f = NumberFormatter(); f.numberStyle = .decimal; f.groupingSeparator = ","; f.usesGroupingSeparator = true
            return f.string(from: NSNumber(value: n))!
        }
        XCTAssertTrue(lines.contains("Total params: \(fmt(k.total_params))"), r.stdout)
        XCTAssertTrue(lines.contains("Trainable params: \(fmt(k.trainable_params))"), r.stdout)
        XCTAssertTrue(lines.contains("Non-trainable params: \(fmt(k.non_trainable_params))"), r.stdout)
        XCTAssertTrue(r.stdout.contains("  block1_conv1 (Conv2D)"), "nested layers are indented")
    }

    func testJSONOutput() throws {
        for file in ["k3_transfer_nested.keras", "k2_vgg_bn.h5"] {
            let r = try CLI.run(["import", file, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let k = try expected(file)
            XCTAssertEqual(obj["total_params"] as? Int, k.total_params)
            XCTAssertEqual(obj["trainable_params"] as? Int, k.trainable_params)
            XCTAssertEqual(obj["non_trainable_params"] as? Int, k.non_trainable_params)
            XCTAssertNotNil(obj["format"] as? String)
            let layers = obj["layers"] as! [[String: Any]]
            XCTAssertFalse(layers.isEmpty)
            for key in ["name", "type", "output_shape", "params", "trainable_params", "non_trainable_params", "trainable", "parent"] {
                XCTAssertTrue(layers[0].keys.contains(key), key)
            }
        }
    }

    func testInferredArchitectureIsSaid() throws {
        let r = try CLI.run(["import", "k2_vgg_weights.h5", "--input-shape", "32,32,3"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("inferred"), r.stdout)
    }

    func testToWritesAFileThatReadsBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("copy.h5").path
        let r = try CLI.run(["import", "k3_bn.keras", "--to", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let back = try CLI.run(["import", out, "--json"])
        XCTAssertEqual(back.status, 0, back.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(back.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["total_params"] as? Int, try expected("k3_bn.keras").total_params)
    }

    func assertOneLineError(_ r: Run, code: Int32, mentioning words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, code, r.stderr, file: file, line: line)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertTrue(lines.count == 1 || (lines.count == 2 && lines[1].hasPrefix("hint: ")), "stderr: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("xfer: error: "), r.stderr, file: file, line: line)
        XCTAssertFalse(r.stderr.contains("HDF5-DIAG"), file: file, line: line)
        for w in words { XCTAssertTrue(r.stderr.contains(w), "'\(r.stderr)' should mention \(w)", file: file, line: line) }
    }

    func testBadFilesExit3WithOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.h5"); FileManager.default.createFile(atPath: empty.path, contents: Data())
        let text = dir.appendingPathComponent("text.h5"); try Data("hello".utf8).write(to: text)
        let real = try Data(contentsOf: CLI.fixtures.appendingPathComponent("k2_vgg_full.h5"))
        let cut = dir.appendingPathComponent("cut.h5"); try real.prefix(real.count / 2).write(to: cut)
        let keras = try Data(contentsOf: CLI.fixtures.appendingPathComponent("k3_vgg.keras"))
        let cutKeras = dir.appendingPathComponent("cut.keras"); try keras.prefix(keras.count / 2).write(to: cutKeras)

        assertOneLineError(try CLI.run(["import", "missing.h5"]), code: 3, mentioning: ["missing.h5"])
        assertOneLineError(try CLI.run(["import", dir.path]), code: 3, mentioning: ["directory"])
        assertOneLineError(try CLI.run(["import", empty.path]), code: 3, mentioning: ["empty.h5"])
        assertOneLineError(try CLI.run(["import", text.path]), code: 3, mentioning: ["text.h5", "not an HDF5 file"])
        assertOneLineError(try CLI.run(["import", cut.path]), code: 3, mentioning: ["cut.h5"])
        assertOneLineError(try CLI.run(["import", cutKeras.path]), code: 3, mentioning: ["cut.keras"])
        assertOneLineError(try CLI.run(["import", "not_keras.h5"]), code: 3, mentioning: ["not a Keras checkpoint"])
        assertOneLineError(try CLI.run(["import", "damaged_wrong_shape.h5"]), code: 3, mentioning: ["block2_conv1"])
        assertOneLineError(try CLI.run(["import", "unsupported_layer.h5"]), code: 3, mentioning: [])
        assertOneLineError(try CLI.run(["import", "k2_zoo_weights.h5"]), code: 3, mentioning: ["--config"])
        // Inputs are never modified.
        XCTAssertEqual(try Data(contentsOf: CLI.fixtures.appendingPathComponent("k2_vgg_full.h5")), real)
    }

    func testFileThatMakesLibHDF5FaultGivesTheOneLineError() throws {
        // One damaged byte in the global heap of a real Keras file makes libhdf5 1.10 itself
        // dereference garbage while converting a variable-length string; the guard turns that
        // into xfer's error and exit 3.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var data = try Data(contentsOf: CLI.fixtures.appendingPathComponent("k2_vgg_full.h5"))
        data[17998] = 0o130
        let f = dir.appendingPathComponent("heap.h5")
        try data.write(to: f)
        let r = try CLI.run(["import", f.path])
        if r.status != 0 {
            assertOneLineError(r, code: 3, mentioning: ["heap.h5"])
        }
    }

    func testOpenInputSizeNeedsInputShape() throws {
        // Keras-written Input((None, None, 3)): the size comes from --input-shape.
        assertOneLineError(try CLI.run(["import", "k3_open_input.keras"]), code: 3, mentioning: ["k3_open_input.keras", "(None, None, 3)", "--input-shape"])
        assertOneLineError(try CLI.run(["import", "k3_open_input.keras", "--input-shape", "24,20,4"]), code: 3, mentioning: ["(24, 20, 4)"])
        let ok = try CLI.run(["import", "k3_open_input.keras", "--input-shape", "24,20,3"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("Total params: 835"), ok.stdout)
    }

    func testBadCommandLineExits2() throws {
        assertOneLineError(try CLI.run(["import"]), code: 2, mentioning: [])
        assertOneLineError(try CLI.run(["import", "k2_vgg_full.h5", "--bogus"]), code: 2, mentioning: [])
        assertOneLineError(try CLI.run(["import", "k2_vgg_weights.h5", "--input-shape", "32,32"]), code: 2, mentioning: ["--input-shape"])
        let help = try CLI.run(["import", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("--input-shape"))
    }
}

/// `--conv` and the fallback to im2col on a CPU without AVX-512 (simulated with oneDNN's own
/// `ONEDNN_MAX_CPU_ISA`, which caps the instruction set its kernels may use).
final class ConvolutionPathCLITests: XCTestCase {
    let fashion = ["finetune", "fashion/fashion_vgg.h5", "--data", "fashion/train", "--freeze-until", "block3", "--dry-run"]
    var checkpoints: URL { CLI.root.appendingPathComponent("checkpoints") }

    func testDryRunNamesEachConvolutionsCore() throws {
        let auto = try CLI.run(fashion, cwd: checkpoints)
        XCTAssertEqual(auto.status, 0, auto.stderr)
        XCTAssertTrue(auto.stdout.contains("winograd (backward on im2col: fewer than 16 input channels)")
                      && auto.stdout.contains("im2col (output smaller than 12×12)"), auto.stdout)
        let forced = try CLI.run(fashion + ["--conv", "im2col"], cwd: checkpoints)
        XCTAssertFalse(forced.stdout.contains("winograd"), forced.stdout)
        XCTAssertTrue(forced.stdout.contains("im2col (--conv im2col)"), forced.stdout)
        let bad = try CLI.run(fashion + ["--conv", "fft"], cwd: checkpoints)
        XCTAssertEqual(bad.status, 2, bad.stderr)
    }

    func testWithoutAVX512EveryConvolutionFallsBackAndPredictsTheSame() throws {
        let isa = ["ONEDNN_MAX_CPU_ISA": "AVX2"]
        let plan = try CLI.run(fashion + ["--conv", "winograd"], cwd: checkpoints, environment: isa)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        XCTAssertFalse(plan.stdout.contains("· winograd"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("im2col (oneDNN has no Winograd kernel for this shape on this CPU)"), plan.stdout)
        let args = ["predict", "k2_vgg_full.h5", "--data", "k2_vgg_full.h5.io.h5"]
        let reference = try CLI.run(args + ["--conv", "im2col"])
        let fallback = try CLI.run(args + ["--conv", "winograd"], environment: isa)
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertEqual(fallback.status, 0, fallback.stderr)
        XCTAssertEqual(fallback.stdout, reference.stdout)
    }
}
