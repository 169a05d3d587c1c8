// `xfer finetune`, `predict`, `evaluate` end to end on the built binary.

import Foundation
import XCTest
import XferKit

final class FinetuneCLITests: XCTestCase {
    let training = CLI.root.appendingPathComponent("checkpoints/training")
    let images = CLI.root.appendingPathComponent("checkpoints/images/sample")

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-ft-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    struct FreezeCase: Decodable {
        var id: String; var checkpoint: String; var args: [String]; var classes: Int
        var total_params: Int; var trainable_params: Int; var non_trainable_params: Int
    }

    func testDryRunPrintsThePlanWithKerasCounts() throws {
        let cases = try JSONDecoder().decode([FreezeCase].self, from: Data(contentsOf: training.appendingPathComponent("freeze_counts.json")))
        let fmt = NumberFormatter(); fmt.numberStyle = .decimal; fmt.groupingSeparator = ","
        for k in cases where k.id == "b" || k.id == "f" {
            let r = try CLI.run(["finetune", k.checkpoint, "--data", training.appendingPathComponent("fit_plain.h5").path,
                                 "--classes", String(k.classes), "--dry-run"] + k.args)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("Total params: \(fmt.string(from: NSNumber(value: k.total_params))!)"), r.stdout)
            XCTAssertTrue(r.stdout.contains("Trainable params: \(fmt.string(from: NSNumber(value: k.trainable_params))!)"), r.stdout)
            XCTAssertTrue(r.stdout.contains("Non-trainable params: \(fmt.string(from: NSNumber(value: k.non_trainable_params))!)"), r.stdout)
            XCTAssertTrue(r.stdout.contains("weight gradients"), r.stdout)
        }
    }

    func testUnknownFreezeUntilExits2ListingTheLayers() throws {
        let r = try CLI.run(["finetune", "k2_vgg_full.h5", "--data", training.appendingPathComponent("fit_plain.h5").path,
                             "--freeze-until", "block9", "--dry-run"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("block9") && r.stderr.contains("block5_conv1"), r.stderr)
    }

    func testFinetuneOnImagesThenPredictAndEvaluate() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("tuned.h5").path
        let plot = dir.appendingPathComponent("curves.svg").path
        let csv = dir.appendingPathComponent("log.csv").path
        let r = try CLI.run(["finetune", "k2_vgg_full.h5", "--data", images.path, "--epochs", "2", "--batch-size", "4",
                             "--head", "flatten,dense:16:relu", "--validation-split", "0.25", "--output", out,
                             "--plot", plot, "--csv-log", csv])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("epoch 2/2 - loss: "), r.stdout)
        XCTAssertTrue(r.stdout.contains("val_accuracy: "), r.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        XCTAssertTrue(try String(contentsOfFile: plot, encoding: .utf8).hasPrefix("<svg"))
        XCTAssertEqual(try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").count, 3)
        let p = try CLI.run(["predict", out, "--data", images.path])
        XCTAssertEqual(p.status, 0, p.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: images.path).filter { !$0.hasPrefix(".") }
        let firstLabel = p.stdout.split(separator: "\n").first.map { String($0.split(separator: "\t")[1]) } ?? ""
        XCTAssertTrue(names.contains(firstLabel), "predict prints class names: \(p.stdout)")
        let e = try CLI.run(["evaluate", out, "--data", images.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.hasPrefix("loss: ") && e.stdout.contains(" - accuracy: "), e.stdout)
    }

    func testPredictIgnoresAYThatIsNotLabels() throws {
        // The Keras-written io file of a headless base keeps Keras's (N, 1, 1, 32) outputs as y.
        let out = try tempDir().appendingPathComponent("p.h5").path
        let args = ["k2_vgg_notop_weights.h5", "--input-shape", "32,32,3", "--data", "k2_vgg_notop_weights.h5.io.h5"]
        let p = try CLI.run(["predict"] + args + ["--output", out])
        XCTAssertEqual(p.status, 0, p.stderr)
        // Written as Keras's predict shapes it, and equal to Keras's outputs (the file's y).
        let written = try HDF5File.open(out).floats("/predictions")
        let keras = try HDF5File.open(CLI.fixtures.appendingPathComponent("k2_vgg_notop_weights.h5.io.h5").path).floats("/y")
        XCTAssertEqual(written.shape, [3, 1, 1, 32])
        XCTAssertEqual(written.shape, keras.shape)
        let scale = keras.values.map(abs).max() ?? 1
        XCTAssertLessThanOrEqual(zip(written.values, keras.values).map { abs($0 - $1) }.max() ?? 0, 1e-5 * max(1, scale))
        let e = try CLI.run(["evaluate"] + args)
        XCTAssertEqual(e.status, 3)
        XCTAssertTrue(e.stderr.contains("y has shape (3, 1, 1, 32)"), e.stderr)
    }

    func testResumeContinuesExactly() throws {
        let dir = try tempDir()
        let data = training.appendingPathComponent("fit_plain.h5").path
        let common = ["--data", data, "--head", "flatten,dense:8:relu", "--optimizer", "adam", "--batch-size", "4"]
        let four = dir.appendingPathComponent("four.h5").path, two = dir.appendingPathComponent("two.h5").path
        let resumed = dir.appendingPathComponent("resumed.h5").path
        XCTAssertEqual(try CLI.run(["finetune", "k2_transfer_functional_bn.h5", "--epochs", "4", "--output", four] + common).status, 0)
        XCTAssertEqual(try CLI.run(["finetune", "k2_transfer_functional_bn.h5", "--epochs", "2", "--output", two] + common).status, 0)
        let r = try CLI.run(["finetune", two, "--resume", "--epochs", "4", "--data", data, "--batch-size", "4", "--output", resumed])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("epoch 3/4"), r.stdout)
        let a = try CLI.run(["predict", four, "--data", data]), b = try CLI.run(["predict", resumed, "--data", data])
        XCTAssertEqual(a.stdout, b.stdout)
    }

    func testNeverOverwritesItsInputs() throws {
        let dir = try tempDir()
        let input = dir.appendingPathComponent("model.h5")
        try FileManager.default.copyItem(at: CLI.fixtures.appendingPathComponent("k2_vgg_full.h5"), to: input)
        let before = try Data(contentsOf: input)
        let r = try CLI.run(["finetune", input.path, "--data", training.appendingPathComponent("fit_plain.h5").path,
                             "--epochs", "1", "--output", input.path])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(try Data(contentsOf: input), before)
    }

    func testDivergingLossStopsWithExit1AndKeepsTheLastGoodWeights() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("diverged.h5").path
        let r = try CLI.run(["finetune", "k2_transfer_functional_bn.h5", "--data", training.appendingPathComponent("fit_plain.h5").path,
                             "--epochs", "20", "--batch-size", "2", "--lr", "1e30", "--output", out])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("loss became"), r.stderr)
        let p = try CLI.run(["predict", out, "--data", training.appendingPathComponent("fit_plain.h5").path])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertFalse(p.stdout.contains("nan"), p.stdout)
    }
}

extension FinetuneCLITests {
    /// The CLI with Keras's batch order gives Keras's `fit` weights: k2_vgg_full.h5, everything
    /// trainable, SGD(0.05, momentum 0.9), batch 4, 2 epochs, no shuffle (checkpoints/training/fit_plain.h5).
    func testFinetuneReproducesKerasFit() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("fit.h5").path
        let data = training.appendingPathComponent("fit_plain.h5").path
        let r = try CLI.run(["finetune", "k2_vgg_full.h5", "--data", data, "--keep-top", "--freeze-until", "block1",
                             "--no-shuffle", "--batch-size", "4", "--epochs", "2", "--optimizer", "sgd", "--lr", "0.05",
                             "--momentum", "0.9", "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Every weight is compared with Keras's in FineTuneTests.testFitEqualsKerasFit; here the
        // command line: its epoch losses are Keras's (fit/history_loss) to the printed digits.
        XCTAssertEqual(try CLI.run(["import", out]).status, 0)
        XCTAssertTrue(r.stdout.contains("epoch 2/2 - loss: 1.6590"), "Keras's epoch-2 loss is 1.6589876: \(r.stdout)")
        XCTAssertTrue(r.stdout.contains("epoch 1/2 - loss: 1.6477"), "Keras's epoch-1 loss is 1.6477244: \(r.stdout)")
    }
}

extension FinetuneCLITests {
    /// Ctrl-C finishes the current batch, writes the weights so far, and exits 130.
    func testInterruptSavesTheCurrentWeights() throws {
        let dir = try tempDir()
        let out = dir.appendingPathComponent("interrupted.h5").path
        let p = Process()
        p.executableURL = CLI.binary
        p.currentDirectoryURL = CLI.fixtures
        p.arguments = ["finetune", CLI.root.appendingPathComponent("checkpoints/fashion/fashion_vgg.h5").path,
                       "--data", CLI.root.appendingPathComponent("checkpoints/fashion/train").path,
                       "--freeze-until", "block2", "--no-cache", "--epochs", "1000", "--output", out]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        Thread.sleep(forTimeInterval: 3)
        p.interrupt()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130, stderr)
        XCTAssertTrue(stderr.contains("interrupted"), stderr)
        let r = try CLI.run(["import", out])
        XCTAssertEqual(r.status, 0, "the saved weights load: \(r.stderr)")
    }
}
