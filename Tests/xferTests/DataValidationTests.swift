// DATA and the training state of --resume, checked by the built binary before any work:
// docs/CONTRACT.md's one-line errors (exit 2 for flags, 3 for files, each naming the file or
// folder), warnings for what still trains, and no blocked or unbounded read.

import Foundation
import XCTest
import XferKit

final class DataValidationCLITests: XCTestCase {
    let fitPlain = CLI.root.appendingPathComponent("checkpoints/training/fit_plain.h5").path
    let sample = CLI.root.appendingPathComponent("checkpoints/images/sample")
    /// Keras-written, (32, 32, 3) in, a 4-class softmax top.
    let model = "k2_transfer_functional_bn.h5"
    let small = ["--head", "flatten", "--epochs", "1", "--batch-size", "4"]
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-dvc-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// An HDF5 DATA file: x of `shape` with small values, y `labels` when given.
    func data(_ name: String, x shape: [Int] = [8, 32, 32, 3], labels: [Float]?) throws -> String {
        let f = try HDF5File.create(path(name))
        let n = shape.reduce(1, *)
        try f.write("/x", shape: shape, floats: (0..<n).map { Float(($0 * 7) % 23) / 23 - 0.5 })
        if let labels { try f.write("/y", shape: [labels.count], floats: labels) }
        try f.flush()
        return path(name)
    }

    /// An image folder with these classes, each with `count` copies of a PNG of the sample set.
    func folder(_ name: String, _ classes: [String: Int]) throws -> URL {
        let root = dir.appendingPathComponent(name)
        let png = sample.appendingPathComponent("dog/rgb_53x37.png")
        for (c, count) in classes {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(c), withIntermediateDirectories: true)
            for i in 0..<count { try FileManager.default.copyItem(at: png, to: root.appendingPathComponent("\(c)/\(i).png")) }
        }
        return root
    }

    /// Exit `status`, and stderr one `xfer: error:` line (plus at most a hint) that says every one of `words`.
    func expectError(_ r: Run, _ status: Int32, _ words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.stderr, file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("xfer: warning:") }
        XCTAssertTrue(lines.first?.hasPrefix("xfer: error: ") ?? false, r.stderr, file: file, line: line)
        XCTAssertTrue(lines.count == 1 || (lines.count == 2 && lines[1].hasPrefix("hint: ")), r.stderr, file: file, line: line)
        for w in words { XCTAssertTrue(lines.first?.contains(w) ?? false, "'\(r.stderr)' should say '\(w)'", file: file, line: line) }
    }

    /// Runs xfer with stdout and stderr in files, killing it after `timeout` seconds.
    func runBounded(_ args: [String], timeout: TimeInterval = 30) throws -> Run {
        let out = path("out-\(UUID().uuidString).txt"), err = path("err-\(UUID().uuidString).txt")
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        let p = Process()
        p.executableURL = CLI.binary
        p.arguments = args
        p.currentDirectoryURL = CLI.fixtures
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTFail("xfer \(args.joined(separator: " ")) did not finish within \(timeout) s")
        }
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: try String(contentsOfFile: out, encoding: .utf8),
                   stderr: try String(contentsOfFile: err, encoding: .utf8))
    }

    // MARK: - x against the model

    /// Was a segfault (finetune) and a val_loss of 4.6e13 with exit 0 (--validation-data).
    /// An image folder another user cannot read, run as that user (root reads everything, so a
    /// root test run drops to `nobody` with setpriv): the class folder and the image are named in
    /// warnings, and the readable images are still predicted.
    func testUnreadableFolderAndImageAreNamedForAnotherUser() throws {
        try XCTSkipUnless(getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"),
                          "drops to nobody from root; the XferKit test covers other users")
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("xfer-unreadable-\(getpid())")
        defer { _ = chmod(root.appendingPathComponent("emu").path, 0o755); try? fm.removeItem(at: root) }
        let image = CLI.root.appendingPathComponent("checkpoints/images/sample/dog/rgb_53x37.png")
        for file in ["cat/1.png", "cat/2.png", "dog/1.png", "emu/1.png"] {
            let url = root.appendingPathComponent(file)
            try fm.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try fm.copyItem(at: image, to: url)
        }
        for dir in [root.path, root.appendingPathComponent("cat").path, root.appendingPathComponent("dog").path] { _ = chmod(dir, 0o755) }
        // The checkout may sit in a folder only root can enter: nobody runs copies of the binary
        // and the model (the binary finds the Swift runtime by an absolute path).
        let tools = root.deletingLastPathComponent().appendingPathComponent("xfer-unreadable-tools-\(getpid())")
        defer { try? fm.removeItem(at: tools) }
        try fm.createDirectory(at: tools, withIntermediateDirectories: true)
        _ = chmod(tools.path, 0o755)
        let binary = tools.appendingPathComponent("xfer"), model = tools.appendingPathComponent("model.h5")
        try fm.copyItem(at: CLI.binary, to: binary)
        try fm.copyItem(at: CLI.fixtures.appendingPathComponent("k2_vgg_full.h5"), to: model)
        _ = chmod(binary.path, 0o755)
        _ = chmod(model.path, 0o644)
        XCTAssertEqual(chmod(root.appendingPathComponent("emu").path, 0), 0)
        XCTAssertEqual(chmod(root.appendingPathComponent("cat/2.png").path, 0), 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", binary.path, "predict", model.path, "--data", root.path]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, e)
        XCTAssertTrue(e.contains("xfer: warning: \(root.path)/emu: cannot list the folder"), e)
        XCTAssertTrue(e.contains("xfer: warning: \(root.path)/cat/2.png: cannot be read"), e)
        XCTAssertEqual(o.split(separator: "\n").count, 2, o)
    }

    func testOneChannelDataForAThreeChannelModel() throws {
        let gray = try data("gray.h5", x: [8, 32, 32, 1], labels: [0, 1, 2, 3, 0, 1, 2, 3])
        let good = try data("good.h5", labels: [0, 1, 2, 3, 0, 1, 2, 3])
        let words = [gray, "x has 1 channel per sample but the model takes 3"]
        expectError(try CLI.run(["finetune", model, "--data", gray, "--output", path("a.h5")] + small), 3, words)
        expectError(try CLI.run(["finetune", model, "--data", good, "--validation-data", gray, "--output", path("b.h5")] + small), 3, words)
        expectError(try CLI.run(["predict", model, "--data", gray]), 3, words)
        expectError(try CLI.run(["evaluate", model, "--data", gray]), 3, words)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("a.h5")) || FileManager.default.fileExists(atPath: path("b.h5")))
        let small16 = try data("small.h5", x: [8, 16, 16, 3], labels: [0, 1, 2, 3, 0, 1, 2, 3])
        expectError(try CLI.run(["finetune", model, "--data", small16, "--output", path("c.h5")] + small), 3,
                    [small16, "(16, 16, 3)", "(32, 32, 3)"])
    }

    // MARK: - Labels

    func testLabelsThatAreNotClassLabels() throws {
        for (name, labels, words) in [
            ("fraction.h5", [0, 1, 2.5, 3, 0, 1, 2, 3] as [Float], ["y[2] is 2.5, not an integer class label"]),
            ("negative.h5", [0, 1, 2, -1, 0, 1, 2, 3], ["y[3] is -1, a negative class label"]),
            ("nan.h5", [0, 1, 2, 3, .nan, 1, 2, 3], ["y[4] is nan"]),
            ("short.h5", [0, 1, 2, 3], ["x has 8 samples but y has 4 labels"]),
        ] {
            let d = try data(name, labels: labels)
            expectError(try CLI.run(["finetune", model, "--data", d, "--output", path("o.h5")] + small), 3, [d] + words)
            expectError(try CLI.run(["evaluate", model, "--data", d]), 3, [d] + words)
            let good = try data("good-\(name)", labels: [0, 1, 2, 3, 0, 1, 2, 3])
            expectError(try CLI.run(["finetune", model, "--data", good, "--validation-data", d, "--output", path("o.h5")] + small),
                        3, [d] + words)
            let p = try CLI.run(["predict", model, "--data", d])
            XCTAssertEqual(p.status, 0, "predict needs no labels: \(p.stderr)")
        }
    }

    func testClassesAgainstTheSoftmax() throws {
        let five = try data("five.h5", labels: [0, 1, 2, 3, 4, 0, 1, 2])
        let two = try data("two.h5", labels: [0, 1, 0, 1, 0, 1, 0, 1])
        // Fewer --classes than the data's: Keras fails on labels >= units.
        expectError(try CLI.run(["finetune", model, "--data", five, "--classes", "3", "--output", path("a.h5")] + small), 2,
                    ["--classes", "3 is fewer than the 5 classes of \(five)"])
        // More: trains, and says that some outputs see no sample.
        let more = try CLI.run(["finetune", model, "--data", two, "--classes", "4", "--output", path("b.h5")] + small)
        XCTAssertEqual(more.status, 0, more.stderr)
        XCTAssertTrue(more.stderr.contains("xfer: warning: \(two): has 2 classes but --classes is 4: outputs 2..3 get no samples"), more.stderr)
        // The kept top has 4 units.
        expectError(try CLI.run(["finetune", model, "--data", five, "--keep-top", "--epochs", "1", "--output", path("c.h5")]), 3,
                    [five, "holds label 4 but the model has 4 outputs"])
        let kept = try CLI.run(["finetune", model, "--data", two, "--keep-top", "--epochs", "1", "--batch-size", "4", "--output", path("d.h5")])
        XCTAssertEqual(kept.status, 0, kept.stderr)
        XCTAssertTrue(kept.stderr.contains("\(two): has 2 classes but the model's top has 4 outputs"), kept.stderr)
        expectError(try CLI.run(["finetune", model, "--data", two, "--keep-top", "--classes", "2", "--output", path("e.h5")]), 2,
                    ["--classes", "the kept top has 4 outputs"])
        // Validation data with a class the head does not have.
        expectError(try CLI.run(["finetune", model, "--data", two, "--validation-data", five, "--output", path("f.h5")] + small), 3,
                    [five, "holds label 4 but the model has 2 outputs"])
        // Evaluate: labels beyond the model's outputs, named before the predictions run.
        expectError(try CLI.run(["evaluate", model, "--data", five]), 3, [five, "holds label 4 but the model has 4 outputs"])
    }

    func testOneClassCannotTrain() throws {
        let one = try folder("one", ["cat": 3])
        expectError(try CLI.run(["finetune", model, "--data", one.path, "--output", path("a.h5")] + small), 3,
                    [one.path, "only one class (cat)", "learns nothing"])
        let same = try data("same.h5", labels: [2, 2, 2, 2, 2, 2, 2, 2])
        expectError(try CLI.run(["finetune", model, "--data", same, "--output", path("b.h5")] + small), 3,
                    [same, "all its samples are of class 2"])
        let p = try CLI.run(["predict", model, "--data", one.path])
        XCTAssertEqual(p.status, 0, "predicting on one class is fine: \(p.stderr)")
    }

    func testEmptyClassFolderIsNamed() throws {
        let root = try folder("withempty", ["cat": 2, "dog": 2, "emu": 0])
        let r = try CLI.run(["finetune", model, "--data", root.path, "--output", path("a.h5")] + small)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("xfer: warning: \(root.path)/emu: class folder without a readable image: class 2 (emu) has no samples"),
                      r.stderr)
    }

    func testClassNamesThatDifferAreNamed() throws {
        // Labels are matched by class name: a class the other side lacks is an error naming it.
        let train = try folder("train", ["cat": 2, "dog": 2])
        let val = try folder("val", ["cat": 2, "emu": 2])
        expectError(try CLI.run(["finetune", model, "--data", train.path, "--validation-data", val.path, "--output", path("a.h5")] + small), 3,
                    [val.path, "class folder emu is not among \(train.path)'s classes (cat, dog)"])
        // A validation folder of some of the classes is labelled by name.
        let dogs = try folder("dogs", ["dog": 2])
        let r = try CLI.run(["finetune", model, "--data", train.path, "--validation-data", dogs.path, "--output", path("a.h5")] + small)
        XCTAssertEqual(r.status, 0, r.stderr)
        expectError(try CLI.run(["evaluate", path("a.h5"), "--data", val.path]), 3,
                    [val.path, "class folder emu is not among the model's classes (cat, dog)"])
        let e = try CLI.run(["evaluate", path("a.h5"), "--data", dogs.path, "--per-class"])
        XCTAssertEqual(e.status, 0, e.stderr)
        XCTAssertTrue(e.stdout.contains("dog ") && e.stdout.contains("cat "), e.stdout)
    }

    // MARK: - Inputs that are not files

    func testFIFOsAndDevicesNeverBlock() throws {
        let fifo = path("data.h5")
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        expectError(try runBounded(["finetune", model, "--data", fifo, "--output", path("a.h5")] + small), 3,
                    [fifo, "is a FIFO (named pipe), not a file or folder"])
        expectError(try runBounded(["predict", model, "--data", fifo]), 3, [fifo, "FIFO"])
        let good = try data("good.h5", labels: [0, 1, 2, 3, 0, 1, 2, 3])
        expectError(try runBounded(["finetune", model, "--data", good, "--validation-data", fifo, "--output", path("b.h5")] + small), 3,
                    [fifo, "FIFO"])
        try FileManager.default.createSymbolicLink(atPath: path("zero.h5"), withDestinationPath: "/dev/zero")
        expectError(try runBounded(["evaluate", model, "--data", path("zero.h5")]), 3, [path("zero.h5"), "character device"])

        // Inside an image folder: skipped with a warning, the rest is used.
        let root = try folder("images", ["cat": 2, "dog": 2])
        XCTAssertEqual(mkfifo(root.appendingPathComponent("cat/fifo.png").path, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("dog/x.png").path, withDestinationPath: "/dev/zero")
        let r = try runBounded(["finetune", model, "--data", root.path, "--output", path("c.h5")] + small)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("xfer: warning: \(root.path)/cat/fifo.png: is a FIFO (named pipe), not a regular file, skipped"), r.stderr)
        XCTAssertTrue(r.stderr.contains("xfer: warning: \(root.path)/dog/x.png: is a character device, not a regular file, skipped"), r.stderr)
        let p = try runBounded(["predict", path("c.h5"), "--data", root.path])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertEqual(p.stdout.split(separator: "\n").count, 4, p.stdout)
    }

    // MARK: - Training state

    /// A file xfer could have written, holding `state`.
    func stateFile(_ name: String, _ edit: (inout TrainingState) -> Void) throws -> String {
        let loaded = try Checkpoint.load(CLI.fixtures.appendingPathComponent(model).path)
        var state = TrainingState(epochsDone: 1, optimizer: Optimizer(OptimizerConfig(kind: .sgd, momentum: 0.9)), seed: 0)
        edit(&state)
        try KerasH5Writer.write(loaded.model, to: path(name), trainingState: state)
        return path(name)
    }

    func testDamagedTrainingStateIsOneError() throws {
        let negative = try stateFile("negative.h5") { $0.epochsDone = -3 }
        let nan = try stateFile("nan.h5") { $0.slots = [[[0, .nan]]] }
        let lr = try stateFile("lr.h5") { $0.optimizer.learningRate = -1 }
        let mismatch = try stateFile("mismatch.h5") { $0.slots = [[[0, 0, 0]]] }
        let four = try data("four.h5", labels: [0, 1, 2, 3, 0, 1, 2, 3])  // the model's classes
        for (file, words) in [
            (negative, ["training state epochs_done is -3, a negative count"]),
            (nan, ["training state slot_0_0 holds nan"]),
            (lr, ["training state learning_rate is -1.0, not positive"]),
            (mismatch, ["training state slots lists 1 parameters but the model trains"]),
        ] {
            expectError(try CLI.run(["finetune", file, "--resume", "--data", four, "--epochs", "3", "--output", path("o.h5")]), 3,
                        [file] + words)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("o.h5")))
    }

    /// After a NaN stop the output holds the last finished epoch's weights and optimizer state, all
    /// finite; --resume honours --lr, so a lower one trains on from there.
    func testNaNStopThenResumeWithALowerLearningRate() throws {
        let a = path("a.h5"), b = path("b.h5"), c = path("c.h5")
        let common = ["--data", fitPlain, "--batch-size", "4"]
        let first = try CLI.run(["finetune", model, "--head", "flatten,dense:8:relu", "--optimizer", "sgd", "--momentum", "0.9",
                                 "--epochs", "1", "--output", a] + common)
        XCTAssertEqual(first.status, 0, first.stderr)
        let before = try XCTUnwrap(TrainingState.read(a))

        let diverged = try CLI.run(["finetune", a, "--resume", "--lr", "1e38", "--epochs", "5", "--output", b] + common)
        XCTAssertEqual(diverged.status, 1, diverged.stderr)
        XCTAssertTrue(diverged.stderr.contains("loss became"), diverged.stderr)
        XCTAssertTrue(diverged.stderr.contains("hint: \(b) holds the weights and optimizer state of the last finished epoch"), diverged.stderr)
        let state = try XCTUnwrap(TrainingState.read(b))
        XCTAssertEqual(state.epochsDone, 1)
        XCTAssertEqual(state.iterations, before.iterations)
        XCTAssertTrue(state.slots == before.slots, "the optimizer state of epoch 1, finite")
        XCTAssertEqual(state.optimizer.learningRate, 1e38, "the run's --lr")
        XCTAssertEqual(try CLI.run(["predict", a, "--data", fitPlain]).stdout, try CLI.run(["predict", b, "--data", fitPlain]).stdout)

        let resumed = try CLI.run(["finetune", b, "--resume", "--lr", "0.001", "--epochs", "2", "--output", c] + common)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("epoch 2/2 - loss: "), resumed.stdout)
        XCTAssertFalse(resumed.stdout.contains("nan"), resumed.stdout)
        XCTAssertEqual(try XCTUnwrap(TrainingState.read(c)).optimizer.learningRate, 0.001)
    }

    func testResumeSaysWhatItKeeps() throws {
        let a = path("a.h5")
        XCTAssertEqual(try CLI.run(["finetune", model, "--data", fitPlain, "--output", a] + small).status, 0)
        expectError(try CLI.run(["finetune", a, "--resume", "--optimizer", "adam", "--data", fitPlain, "--epochs", "2"]), 2,
                    ["--optimizer adam", "conflicts with the run --resume continues, which used sgd"])
        expectError(try CLI.run(["finetune", a, "--resume", "--classes", "3", "--data", fitPlain, "--epochs", "2"]), 2,
                    ["--classes 3", "conflicts with the run --resume continues"])
        let help = try CLI.run(["finetune", "--help"])
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(text.contains("Keeps the run's weights, freeze and head, its optimizer (kind, momentum, state), the epochs done, "
                                    + "the learning rate and the seed; --lr and --seed override those two."), help.stdout)
    }
}
