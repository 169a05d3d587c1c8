// Heads beyond softmax through the built binary: a binary head on a two-class image folder
// (new head and --keep-top), regression on float y, targets that do not fit the loss (exit 3
// before training), --monitor for the loss's metric, evaluate's Keras metrics (--per-class,
// --json), predict per head kind (--top-k). Expected numbers: checkpoints/losses/expected.json
// (Keras's, from checkpoints/make_loss_fixtures.py).

import Foundation
import XCTest
import XferKit

final class LossCLITests: XCTestCase {
    let losses = CLI.root.appendingPathComponent("checkpoints/losses")
    let sample = CLI.root.appendingPathComponent("checkpoints/images/sample")
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-loss-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
    func fixture(_ name: String) -> String { losses.appendingPathComponent(name).path }

    /// A two-class image folder (cat, dog), `count` images each.
    func catsAndDogs(_ count: Int = 4) throws -> String {
        let root = dir.appendingPathComponent("pets")
        for (c, file) in [("cat", "cat/rgb420_37x53.jpg"), ("dog", "dog/rgb_53x37.png")] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(c), withIntermediateDirectories: true)
            let ext = (file as NSString).pathExtension
            for i in 0..<count { try FileManager.default.copyItem(at: sample.appendingPathComponent(file), to: root.appendingPathComponent("\(c)/\(i).\(ext)")) }
        }
        return root.path
    }

    /// An HDF5 DATA file of the fixtures' input shape (6, 6, 2) with y `values` of `shape`.
    func data(_ name: String, y values: [Float], shape: [Int], sampleWeight: [Float]? = nil) throws -> String {
        let f = try HDF5File.create(path(name))
        let n = shape[0]
        try f.write("/x", shape: [n, 6, 6, 2], floats: (0..<(n * 72)).map { Float(($0 * 7) % 23) / 23 - 0.5 })
        try f.write("/y", shape: shape, floats: values)
        if let sampleWeight { try f.write("/sample_weight", shape: [sampleWeight.count], floats: sampleWeight) }
        try f.flush()
        return path(name)
    }

    func expectError(_ r: Run, _ status: Int32, _ words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.stderr, file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("xfer: warning:") }
        XCTAssertTrue(lines.first?.hasPrefix("xfer: error: ") ?? false, r.stderr, file: file, line: line)
        XCTAssertTrue(lines.count == 1 || (lines.count == 2 && lines[1].hasPrefix("hint: ")), r.stderr, file: file, line: line)
        for w in words { XCTAssertTrue(lines.first?.contains(w) ?? false, "'\(r.stderr)' should say '\(w)'", file: file, line: line) }
    }

    func expected() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: losses.appendingPathComponent("expected.json"))) as! [String: Any]
    }

    /// The most common transfer-learning head: a new Dense(1, sigmoid) on a two-class folder.
    func testBinaryHeadOnTwoClassFolder() throws {
        let pets = try catsAndDogs()
        let out = path("pets.h5")
        let dry = try CLI.run(["finetune", "k2_transfer_functional_bn.h5", "--data", pets, "--loss", "binary_crossentropy", "--dry-run"])
        XCTAssertEqual(dry.status, 0, dry.stderr)
        XCTAssertTrue(dry.stdout.contains("Loss: binary_crossentropy (--loss); head: predictions Dense(1, sigmoid) — binary classifier; metric: accuracy"), dry.stdout)
        let r = try CLI.run(["finetune", "k2_transfer_functional_bn.h5", "--data", pets, "--loss", "binary_crossentropy",
                             "--epochs", "2", "--batch-size", "4", "--head", "gap", "--class-weight", "balanced",
                             "--validation-split", "0.25", "--early-stopping", "2", "--monitor", "val_accuracy", "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Class weights: cat=1, dog=1"), r.stdout)
        XCTAssertTrue(r.stdout.contains("epoch 2/2 - loss: ") && r.stdout.contains("val_accuracy: "), r.stdout)
        // The output remembers its loss: evaluate prints the binary metrics, predict the class and p(dog).
        let e = try CLI.run(["evaluate", out, "--data", pets, "--per-class"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.hasPrefix("loss: ") && e.stdout.contains(" - accuracy: ") && e.stdout.contains(" - auc: ")
                      && e.stdout.contains(" - precision: ") && e.stdout.contains(" - recall: "), e.stdout)
        XCTAssertTrue(e.stdout.contains("Confusion matrix (rows: true class, columns: predicted):"), e.stdout)
        XCTAssertTrue(e.stdout.contains("\ncat ") && e.stdout.contains("\ndog "), e.stdout)
        let p = try CLI.run(["predict", out, "--data", pets])
        XCTAssertEqual(p.status, 0, p.stderr)
        let lines = p.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(lines.count, 8)
        for l in lines {
            XCTAssertEqual(l.count, 3, p.stdout)
            XCTAssertTrue(["cat", "dog"].contains(l[1]), p.stdout)
            let prob = try XCTUnwrap(Double(l[2]))
            XCTAssertEqual(l[1] == "dog", prob > 0.5, p.stdout)
        }
        expectError(try CLI.run(["predict", out, "--data", pets, "--top-k", "2"]), 2, ["--top-k", "softmax head"])
    }

    /// --keep-top on a compiled sigmoid model (tf_keras and Keras 3): its loss from the checkpoint.
    func testKeepTopBinaryModelTrainsWithItsCompiledLoss() throws {
        for (model, data, words) in [("bce_sigmoid.h5", "bce_sigmoid_data.h5", "training_config"), ("bce_k3.keras", "bce_k3_data.h5", "compile_config")] {
            let r = try CLI.run(["finetune", fixture(model), "--data", fixture(data), "--keep-top", "--epochs", "1", "--output", path(model + ".h5")])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("Loss: binary_crossentropy (the checkpoint's \(words)); head: head Dense(1, sigmoid) — binary classifier"), r.stdout)
        }
    }

    /// Keras's logged loss, to the printed digits, for every fixture's command line.
    func testEveryLossLogsKerasLoss() throws {
        for (name, value) in try expected() {
            let c = value as! [String: Any]
            let args = (c["xfer_args"] as! [String]).map { $0.hasSuffix(".h5") || $0.hasSuffix(".keras") ? fixture($0) : $0 }
            let r = try CLI.run(["finetune"] + args + ["--output", path("\(name).h5")])
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            let h = c["history"] as! [String: Any]
            let line = String(format: "epoch 1/1 - loss: %.4f - ", h["loss"] as! Double) + (h["metric"] as! String) + String(format: ": %.4f", h["value"] as! Double)
            XCTAssertTrue(r.stdout.contains(line), "\(name): Keras logs '\(line)': \(r.stdout)")
        }
    }

    /// evaluate --json gives model.evaluate's numbers; --per-class Keras's per-class metrics.
    func testEvaluateJSONEqualsKerasEvaluate() throws {
        for (name, value) in try expected() {
            let c = value as! [String: Any]
            let r = try CLI.run(["evaluate", fixture(c["model"] as! String), "--data", fixture(c["data"] as! String), "--json", "--per-class"])
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            let j = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let k = c["evaluate"] as! [String: Double]
            XCTAssertEqual(j["loss"] as! Double, k["loss"]!, accuracy: 1e-5, name)
            let metrics = j["metrics"] as! [String: Double]
            XCTAssertEqual(Set(metrics.keys), Set(k.keys).subtracting(["loss"]), name)
            for (m, v) in metrics { XCTAssertEqual(v, k[m]!, accuracy: 1e-5, "\(name) \(m)") }
            XCTAssertEqual(j["confusion"] as? [[Int]], c["confusion"] as? [[Int]], name)
        }
    }

    /// A regression head on float targets: a new Dense(1) trained with MSE (no class 0); without
    /// --loss the float y is refused.
    func testRegressionOnFloatTargets() throws {
        let y = try data("y.h5", y: [0.5, -1.25, 2, 0.75, 3.5, -0.5, 1.5, 0.25], shape: [8, 1])
        expectError(try CLI.run(["finetune", fixture("mse.h5"), "--data", y, "--output", path("no.h5")]), 3,
                    [y, "y[0] is 0.5, not an integer class label (the loss is categorical_crossentropy, which takes class labels)"])
        let r = try CLI.run(["finetune", fixture("mse.h5"), "--data", y, "--loss", "mse", "--head", "flatten,dense:4:relu", "--epochs", "2",
                             "--batch-size", "4", "--validation-split", "0.25", "--early-stopping", "1", "--monitor", "val_mae",
                             "--output", path("reg.h5")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Loss: mse (--loss); head: predictions Dense(1, linear) — regression (1 output); metric: mae"), r.stdout)
        XCTAssertTrue(r.stdout.contains(" - mae: ") && r.stdout.contains(" - val_mae: "), r.stdout)
        XCTAssertFalse(r.stdout.contains("accuracy"), r.stdout)
        let e = try CLI.run(["evaluate", path("reg.h5"), "--data", y])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.hasPrefix("loss: ") && e.stdout.contains(" - mae: ") && e.stdout.contains(" - root_mean_squared_error: "), e.stdout)
        let p = try CLI.run(["predict", path("reg.h5"), "--data", y])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(p.stdout.split(separator: "\n").count, 8)
        XCTAssertNotNil(Double(p.stdout.split(separator: "\n")[0].split(separator: "\t")[1]), p.stdout)
        // The monitor must be a metric this loss logs.
        expectError(try CLI.run(["finetune", fixture("mse.h5"), "--data", y, "--loss", "mae", "--validation-split", "0.25", "--early-stopping", "1",
                                 "--monitor", "val_accuracy", "--output", path("x.h5")]), 2,
                    ["--monitor", "val_accuracy will not exist; available: loss, mae, val_loss, val_mae"])
    }

    /// Targets that do not fit the loss stop before training, naming DATA, and write nothing.
    func testTargetsThatDoNotFitTheLossAreExit3() throws {
        let floats = try data("f.h5", y: [0.5, 1, 2, 0.25], shape: [4, 1])
        let threes = try data("t.h5", y: [0, 1, 3, 1], shape: [4, 1])
        let wide = try data("w.h5", y: [1, 0, 0, 1, 1, 1, 0, 0], shape: [4, 2])
        let negative = try data("sw.h5", y: [0, 1, 1, 0], shape: [4], sampleWeight: [1, 2, -1, 1])
        let short = try data("sw3.h5", y: [0, 1, 1, 0], shape: [4], sampleWeight: [1, 2, 1])
        let zeros = try data("z.h5", y: [0, 0, 0, 0], shape: [4])
        let out = path("never.h5")
        let cases: [([String], [String])] = [
            (["finetune", fixture("mse.h5"), "--data", floats, "--loss", "categorical_crossentropy"],
             [floats, "y[0] is 0.5, not an integer class label (the loss is categorical_crossentropy"]),
            (["finetune", fixture("bce_sigmoid.h5"), "--data", threes, "--keep-top"], [threes, "y[2] is 3, not 0 or 1 (the loss is binary_crossentropy)"]),
            (["finetune", fixture("bce_sigmoid.h5"), "--data", floats, "--keep-top"], [floats, "y[0] is 0.5, not 0 or 1"]),
            (["finetune", fixture("scce_logits.h5"), "--data", threes, "--keep-top"], [threes, "holds label 3 but the model has 3 outputs"]),
            (["finetune", fixture("mse.h5"), "--data", wide, "--keep-top"], [wide, "y has 2 values per sample but the model has 1 output"]),
            (["finetune", "k2_transfer_functional_bn.h5", "--data", try catsAndDogs(1), "--loss", "mse"], ["is an image folder (classes), but mse is a regression loss"]),
            (["evaluate", fixture("bce_sigmoid.h5"), "--data", threes], [threes, "not 0 or 1"]),
            (["finetune", fixture("bce_sigmoid.h5"), "--data", negative, "--keep-top"], [negative, "sample_weight[2] is -1.0, not a weight ≥ 0"]),
            (["finetune", fixture("bce_sigmoid.h5"), "--data", short, "--keep-top"], [short, "x has 4 samples but sample_weight has 3 weights"]),
            (["finetune", fixture("bce_sigmoid.h5"), "--data", zeros, "--keep-top"], [zeros, "only one class"]),
        ]
        for (args, words) in cases {
            let run = try CLI.run(args + (args[0] == "finetune" ? ["--output", out, "--epochs", "1"] : []))
            expectError(run, 3, words)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
        expectError(try CLI.run(["finetune", fixture("mse.h5"), "--data", floats, "--loss", "hinge", "--output", out]), 2, ["--loss", "unknown loss 'hinge'"])
        expectError(try CLI.run(["finetune", fixture("mse.h5"), "--data", floats, "--loss", "mse", "--class-weight", "balanced", "--output", out]), 2,
                    ["--class-weight", "applies to a classifier"])
    }

    /// A multi-hot y: a new head of one sigmoid unit per label; predict lists the labels above 0.5.
    func testMultiLabelNewHead() throws {
        let y = try data("m.h5", y: [1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1], shape: [4, 3])
        let r = try CLI.run(["finetune", fixture("multilabel.h5"), "--data", y, "--head", "flatten", "--epochs", "1",
                             "--batch-size", "2", "--output", path("ml.h5")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("Loss: binary_crossentropy (y holds multi-hot rows); head: predictions Dense(3, sigmoid) — multi-label classifier (3 labels)"), r.stdout)
        XCTAssertTrue(r.stdout.contains(" - binary_accuracy: "), r.stdout)
        let p = try CLI.run(["predict", path("ml.h5"), "--data", y, "--threshold", "0"])
        XCTAssertEqual(p.status, 0, p.stderr)
        // Threshold 0: every label, each with its probability.
        XCTAssertEqual(p.stdout.split(separator: "\n").first?.split(separator: "\t").count, 4, p.stdout)
    }

    /// The loss travels with every Keras output: training_config of a .h5, xfer's record in a
    /// .keras's metadata.json and a .weights.h5's attributes; --resume and evaluate read it back.
    func testTheLossTravelsWithKerasOutputs() throws {
        for (ext, extra, source) in [("h5", [String](), "training_config"), ("keras", [], "recorded loss"),
                                     ("weights.h5", ["--config", fixture("huber.h5")], "recorded loss")] {
            let out = path("huber.\(ext)")
            let r = try CLI.run(["finetune", fixture("huber.h5"), "--data", fixture("huber_data.h5"), "--keep-top", "--freeze-until", "conv1",
                                 "--epochs", "1", "--output", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            let again = try CLI.run(["finetune", out, "--data", fixture("huber_data.h5"), "--keep-top", "--epochs", "1", "--dry-run"] + extra)
            XCTAssertEqual(again.status, 0, again.stderr)
            XCTAssertTrue(again.stdout.contains("Loss: huber(delta=0.5) (the checkpoint's \(source))"), "\(ext): \(again.stdout)")
            let e = try CLI.run(["evaluate", out, "--data", fixture("huber_data.h5")] + extra)
            XCTAssertTrue(e.stdout.contains(" - mae: "), "\(ext): \(e.stdout) \(e.stderr)")
        }
    }

    func testPredictTopK() throws {
        let r = try CLI.run(["predict", fixture("cce_smooth.h5"), "--data", fixture("cce_smooth_data.h5"), "--top-k", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        for line in r.stdout.split(separator: "\n") {
            let cells = line.split(separator: "\t")
            XCTAssertEqual(cells.count, 5, r.stdout)
            XCTAssertGreaterThanOrEqual(Double(cells[2])!, Double(cells[4])!)
        }
    }
}
