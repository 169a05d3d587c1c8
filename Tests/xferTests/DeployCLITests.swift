// The model formats on the command line (docs/CONTRACT.md, "Outputs" and `xfer export`): the
// extension chooses the format wherever a model is written, a name xfer cannot write is exit 2
// before any work, and the outputs are what the next command (predict, --resume) reads.

import Foundation
import XCTest
import XferKit

final class DeployCLITests: XCTestCase {
    let training = CLI.root.appendingPathComponent("checkpoints/training")
    var data: String { training.appendingPathComponent("fit_plain.h5").path }
    let images = CLI.root.appendingPathComponent("checkpoints/images/sample").path

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-deploy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func finetune(_ extra: [String], cwd: URL) throws -> Run {
        try CLI.run(["finetune", CLI.fixtures.appendingPathComponent("k2_transfer_functional_bn.h5").path, "--data", data,
                     "--epochs", "1", "--head", "flatten,dense:8:relu", "--batch-size", "4"] + extra, cwd: cwd)
    }

    /// Exit 2, one error line naming the flag and the path, nothing done and nothing written.
    func assertRefused(_ r: Run, flag: String, path: String, saying what: String, in dir: URL,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(r.status, 2, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("xfer: error: \(flag) \(path): "), r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains(what), r.stderr, file: file, line: line)
        XCTAssertLessThanOrEqual(r.stderr.split(separator: "\n").count, 2, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stdout, "", "refused before any work", file: file, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [], file: file, line: line)
    }

    func testAnExtensionXferCannotWriteIsRefusedBeforeWork() throws {
        let dir = try tempDir()
        try assertRefused(try finetune(["--output", "tuned.tflite"], cwd: dir), flag: "--output", path: "tuned.tflite",
                          saying: "names a .tflite file, which xfer cannot write", in: dir)
        try assertRefused(try finetune(["--output", "tuned"], cwd: dir), flag: "--output", path: "tuned",
                          saying: "has no extension", in: dir)
        try assertRefused(try finetune(["--output", "m.keras", "--save-best", "best.pb"], cwd: dir), flag: "--save-best",
                          path: "best.pb", saying: "cannot write", in: dir)
        try assertRefused(try finetune(["--output", "m.keras", "--plot", "curves.png"], cwd: dir), flag: "--plot",
                          path: "curves.png", saying: "xfer draws the curves as SVG", in: dir)
        try assertRefused(try CLI.run(["import", "k2_zoo.h5", "--to", dir.appendingPathComponent("z.tflite").path]),
                          flag: "--to", path: dir.appendingPathComponent("z.tflite").path, saying: "cannot write", in: dir)
        try assertRefused(try CLI.run(["export", "k2_zoo.h5", "--to", dir.appendingPathComponent("z.pt").path]),
                          flag: "--to", path: dir.appendingPathComponent("z.pt").path, saying: "cannot write", in: dir)
        let hint = try CLI.run(["export", "k2_zoo.h5", "--to", dir.appendingPathComponent("z.pt").path]).stderr
        XCTAssertTrue(hint.contains("hint: end the name in .h5, .keras, .weights.h5, .onnx"), hint)
    }

    func testExportWritesEachFormat() throws {
        let dir = try tempDir()
        for (name, magic) in [("z.onnx", nil), ("z.keras", [UInt8]([0x50, 0x4B, 0x03, 0x04])), ("z.weights.h5", [0x89, 0x48, 0x44, 0x46]),
                              ("z.h5", [0x89, 0x48, 0x44, 0x46])] as [(String, [UInt8]?)] {
            let out = dir.appendingPathComponent(name).path
            let r = try CLI.run(["export", "k2_zoo.h5", "--to", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.hasPrefix("Wrote \(out) ("), r.stdout)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: out))
            if let magic { XCTAssertEqual(Array(bytes.prefix(4)), magic, name) }
            XCTAssertGreaterThan(bytes.count, 1000, name)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }, [])
        // The Keras files read back; the weights-only one with the architecture of the archive.
        XCTAssertEqual(try CLI.run(["import", dir.appendingPathComponent("z.keras").path]).status, 0)
        let w = try CLI.run(["import", dir.appendingPathComponent("z.weights.h5").path, "--config", dir.appendingPathComponent("z.keras").path])
        XCTAssertEqual(w.status, 0, w.stderr)
        XCTAssertTrue(w.stdout.hasPrefix("Format: Keras 3 weights (.weights.h5)"), w.stdout)
    }

    func testExportOfAnUnreadableCheckpointIsExit3() throws {
        let dir = try tempDir()
        let r = try CLI.run(["export", "not_keras.h5", "--to", dir.appendingPathComponent("x.onnx").path])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    /// A layer setting ONNX cannot express (BatchNormalization of a rank-4 sample) is exit 3, one
    /// line naming the file and the layer, and nothing written; the Keras formats still take the model.
    func testALayerWithoutAnONNXMappingIsExit3NamingIt() throws {
        let dir = try tempDir()
        let ones = [Float](repeating: 1, count: 5), zeros = [Float](repeating: 0, count: 5)
        let bn = LayerSpec(name: "odd_norm", op: BatchNormConfig(), weights: [
            WeightSpec(role: .gamma, shape: [5], values: ones), WeightSpec(role: .beta, shape: [5], values: zeros),
            WeightSpec(role: .movingMean, shape: [5], values: zeros, isTrainableKind: false),
            WeightSpec(role: .movingVariance, shape: [5], values: ones, isTrainableKind: false),
        ])
        let model = dir.appendingPathComponent("seq.h5").path
        try KerasH5Writer.write(ModelSpec(name: "seq", className: "Sequential", inputShape: [2, 3, 4, 5], layers: [bn]), to: model)
        let out = dir.appendingPathComponent("seq.onnx").path
        let r = try CLI.run(["export", model, "--to", out])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stderr.hasPrefix("xfer: error: \(model): model 'seq': ONNX export does not support layer 'odd_norm' (BatchNormalization)"), r.stderr)
        XCTAssertLessThanOrEqual(r.stderr.split(separator: "\n").count, 2, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertEqual(try CLI.run(["export", model, "--to", dir.appendingPathComponent("seq.keras").path]).status, 0)
    }

    /// A fine-tuned .keras keeps the class names (predict prints them) and the training state
    /// (--resume continues it); --save-best writes the format of its own name.
    func testFinetuneToKerasCarriesClassNamesAndResumes() throws {
        let dir = try tempDir()
        let tuned = dir.appendingPathComponent("tuned.keras").path, best = dir.appendingPathComponent("best.onnx").path
        let r = try CLI.run(["finetune", "k2_vgg_full.h5", "--data", images, "--epochs", "1", "--batch-size", "4",
                             "--validation-split", "0.25", "--save-best", best, "--output", tuned])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("saved \(best)"), r.stdout)
        let p = try CLI.run(["predict", tuned, "--data", images])
        XCTAssertEqual(p.status, 0, p.stderr)
        let classes = try FileManager.default.contentsOfDirectory(atPath: images).filter { !$0.hasPrefix(".") }
        XCTAssertTrue(classes.contains { p.stdout.contains("\t\($0)\t") }, p.stdout)

        let resumed = dir.appendingPathComponent("resumed.weights.h5").path
        let c = try CLI.run(["finetune", tuned, "--resume", "--epochs", "2", "--data", images, "--batch-size", "4", "--output", resumed])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertTrue(c.stdout.contains("epoch 2/2"), c.stdout)
        XCTAssertFalse(c.stdout.contains("epoch 1/2"), c.stdout)
    }
}
