// DATA and training state are input: checked before any work, each problem one error (or
// warning) naming the file or folder, never a crash, a blocked read or a run on garbage.

import Foundation
import XCTest
@testable import XferKit

final class DataValidationTests: XCTestCase {
    var dir: URL!
    var folders = 0

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-dv-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// An HDF5 DATA file with `x` of `shape` (small values) and, when given, `y`.
    func data(_ name: String, x shape: [Int], y: (shape: [Int], values: [Float])? = nil, classNames: [String]? = nil) throws -> String {
        let path = dir.appendingPathComponent(name).path
        let f = try HDF5File.create(path)
        let n = shape.reduce(1, *)
        try f.write("/x", shape: shape, floats: (0..<n).map { Float($0 % 17) / 17 - 0.5 })
        if let y { try f.write("/y", shape: y.shape, floats: y.values) }
        if let classNames { try f.setStrings("/", "class_names", classNames) }
        try f.flush()
        return path
    }

    func labels(_ values: [Float]) -> (shape: [Int], values: [Float]) { ([values.count], values) }

    /// `body` throws an XferError of `kind` whose one-line message names `subject` and says each of `words`.
    func expectError(_ kind: XferError.Kind = .badInput, subject: String, _ words: [String],
                     file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let e = error as? XferError else { return XCTFail("not an XferError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, kind, e.description, file: file, line: line)
            XCTAssertEqual(e.subject, subject, e.description, file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), e.description, file: file, line: line)
            for w in words { XCTAssertTrue(e.description.contains(w), "'\(e.description)' should say '\(w)'", file: file, line: line) }
        }
    }

    // MARK: - Labels

    func testLabelsThatAreNotClassLabelsAreNamed() throws {
        let cases: [(String, (shape: [Int], values: [Float]), [String])] = [
            ("fractional", labels([0, 1, 1.5, 0]), ["y[2]", "1.5", "not an integer"]),
            ("negative", labels([0, -1, 1, 0]), ["y[1]", "-1", "negative"]),
            ("nan", labels([0, 1, .nan, 0]), ["y[2]", "nan"]),
            ("infinite", labels([0, .infinity, 1, 0]), ["y[1]", "inf"]),
            ("huge", labels([0, 1e12, 1, 0]), ["y[1]", "more classes"]),
            ("soft rows", ([4, 2], [1, 0, 0.3, 0.7, 0, 1, 1, 0]), ["y row 1", "not one-hot", "0.3"]),
            ("two hot", ([4, 2], [1, 0, 1, 1, 0, 1, 1, 0]), ["y row 1", "not one-hot"]),
            ("nan row", ([4, 2], [1, 0, 0, 1, .nan, 0, 1, 0]), ["y row 2", "not one-hot", "nan"]),
            ("rows differ", labels([0, 1, 1]), ["x has 4 samples but y has 3"]),
            ("rank 3", ([4, 1, 2], [Float](repeating: 0, count: 8)), ["y has shape (4, 1, 2)"]),
        ]
        for (name, y, words) in cases {
            let path = try data("\(name).h5", x: [4, 2, 2, 3], y: y)
            let d = try DataSource(path: path)
            XCTAssertNil(d.labels, name)
            let problem = try XCTUnwrap(d.labelProblem, name)
            XCTAssertEqual(problem.kind, .badInput, name)
            XCTAssertEqual(problem.subject, path, name)
            for w in words { XCTAssertTrue(problem.message.contains(w), "\(name): '\(problem.message)' should say '\(w)'") }
            expectError(subject: path, words) { _ = try d.requireLabels(for: "training") }
        }
    }

    func testIntegerLabelsAndOneHotRowsAreRead() throws {
        let a = try DataSource(path: data("ints.h5", x: [4, 2, 2, 3], y: labels([2, 0, 1, 2])))
        XCTAssertEqual(a.labels, [2, 0, 1, 2])
        XCTAssertEqual(a.classCount, 3)
        let b = try DataSource(path: data("hot.h5", x: [3, 2, 2, 3], y: ([3, 4], [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1])))
        XCTAssertEqual(b.labels, [2, 0, 3])
        XCTAssertEqual(b.classCount, 4)
        XCTAssertNoThrow(try b.checkLabels(below: 4))
        expectError(subject: b.path, ["y has 4 one-hot columns but the model has 5 outputs"]) { try b.checkLabels(below: 5) }
        expectError(subject: a.path, ["holds label 2 but the model has 2 outputs"]) { try a.checkLabels(below: 2) }
        let c = try DataSource(path: data("named.h5", x: [2, 2, 2, 3], y: labels([0, 1]), classNames: ["a", "b", "c"]))
        XCTAssertEqual(c.classCount, 3, "class_names defines the classes")
        let d = try DataSource(path: data("misnamed.h5", x: [2, 2, 2, 3], y: labels([0, 3]), classNames: ["a", "b"]))
        XCTAssertTrue(d.labelProblem?.message.contains("class_names lists 2 classes") ?? false, "\(String(describing: d.labelProblem))")
    }

    func testXThatIsNotSamplesIsAnError() throws {
        // (N, T, F) sequences and (N, F) vectors are samples (for a model of that input); one
        // axis or five are not.
        XCTAssertEqual(try DataSource(path: try data("rank3.h5", x: [4, 2, 3])).sampleShape, [2, 3])
        XCTAssertEqual(try DataSource(path: try data("rank2.h5", x: [4, 5])).sampleShape, [5])
        let rank1 = try data("rank1.h5", x: [4])
        expectError(subject: rank1, ["x has shape (4,)", "(N, H, W, C)", "(N, features)"]) { _ = try DataSource(path: rank1) }
        let rank5 = try data("rank5.h5", x: [2, 2, 2, 2, 2])
        expectError(subject: rank5, ["x has shape (2, 2, 2, 2, 2)"]) { _ = try DataSource(path: rank5) }
        let empty = try data("empty.h5", x: [0, 2, 2, 3])
        expectError(subject: empty, ["x holds no samples"]) { _ = try DataSource(path: empty) }
        let noX = dir.appendingPathComponent("nox.h5").path
        let f = try HDF5File.create(noX)
        try f.write("/y", shape: [2], floats: [0, 1])
        try f.flush()
        expectError(subject: noX, ["no dataset 'x'"]) { _ = try DataSource(path: noX) }
    }

    // MARK: - Against the model

    func testSamplesMustHaveTheModelsInputShape() throws {
        let gray = try DataSource(path: data("gray.h5", x: [4, 32, 32, 1], y: labels([0, 1, 0, 1])))
        expectError(subject: gray.path, ["x has 1 channel", "model takes 3", ]) { try gray.checkFits(inputShape: [32, 32, 3]) }
        let small = try DataSource(path: data("small.h5", x: [4, 16, 16, 3], y: labels([0, 1, 0, 1])))
        expectError(subject: small.path, ["(16, 16, 3)", "(32, 32, 3)"]) { try small.checkFits(inputShape: [32, 32, 3]) }
        XCTAssertNoThrow(try small.checkFits(inputShape: [16, 16, 3]))
        let images = try DataSource(path: ImageDataTests.sampleDir.path)
        expectError(subject: images.path, ["RGB", "takes 1 channel"]) { try images.checkFits(inputShape: [32, 32, 1]) }
        XCTAssertNoThrow(try images.checkFits(inputShape: [8, 8, 3]))
    }

    func testFineTunerChecksTrainingAndValidationDataFirst() throws {
        let c = try Checkpoint.load(Fixtures.path("k2_transfer_functional_bn.h5"))  // (32, 32, 3) in
        let plan = try planFineTuning(c.model, options: FreezeOptions(head: [.flatten], classes: 2))
        let tuner = try FineTuner(model: plan.model, kerasVersion: c.kerasVersion, options: FineTuneOptions())
        XCTAssertEqual(tuner.network.outputCount, 2)
        let good = try DataSource(path: data("good.h5", x: [4, 32, 32, 3], y: labels([0, 1, 0, 1])))
        let gray = try DataSource(path: data("gray.h5", x: [4, 32, 32, 1], y: labels([0, 1, 0, 1])))
        let three = try DataSource(path: data("three.h5", x: [4, 32, 32, 3], y: labels([0, 1, 2, 1])))
        let oneClass = try DataSource(path: data("one.h5", x: [4, 32, 32, 3], y: labels([1, 1, 1, 1])))
        let noLabels = try DataSource(path: data("nolabels.h5", x: [4, 32, 32, 3]))
        var events = 0
        func fit(_ train: DataSource, _ validation: DataSource? = nil) throws {
            _ = try tuner.fit(train: train, trainIndices: Array(0..<train.count),
                              validation: validation.map { ($0, Array(0..<$0.count)) }, events: { _ in events += 1 })
        }
        expectError(subject: gray.path, ["1 channel"]) { try fit(gray) }
        expectError(subject: gray.path, ["1 channel"]) { try fit(good, gray) }
        expectError(subject: three.path, ["label 2", "2 outputs"]) { try fit(good, three) }
        expectError(subject: oneClass.path, ["class 1", "learns nothing"]) { try fit(oneClass) }
        expectError(subject: noLabels.path, ["no labels"]) { try fit(noLabels) }
        XCTAssertEqual(events, 0, "nothing ran before the checks")
        XCTAssertTrue(tuner.history.isEmpty)
    }

    // MARK: - Image folders

    func makeFolder(_ classes: [String: [String]]) throws -> URL {
        folders += 1
        let root = dir.appendingPathComponent("i\(folders)")
        let png = ImageDataTests.sampleDir.appendingPathComponent("dog/rgb_53x37.png")
        for (name, files) in classes {
            let folder = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for f in files { try FileManager.default.copyItem(at: png, to: folder.appendingPathComponent(f)) }
        }
        return root
    }

    func testOneClassFolderCannotTrainAndAnEmptyClassIsNamed() throws {
        let one = try makeFolder(["cat": ["1.png", "2.png"]])
        let d = try DataSource(path: one.path)
        XCTAssertNoThrow(try d.checkFits(inputShape: [8, 8, 3]), "predicting on it is fine")
        expectError(subject: one.path, ["only one class (cat)", "learns nothing"]) { try d.checkTrainable() }

        let withEmpty = try makeFolder(["cat": ["1.png"], "dog": ["1.png"], "emu": []])
        var warnings: [String] = []
        let e = try DataSource(path: withEmpty.path) { warnings.append($0) }
        XCTAssertEqual(warnings, ["\(withEmpty.path)/emu: class folder without a readable image: class 2 (emu) has no samples"])
        XCTAssertEqual(e.classCount, 3)
        XCTAssertNoThrow(try e.checkTrainable())

        let onlyOneFilled = try makeFolder(["cat": ["1.png"], "dog": []])
        let f = try DataSource(path: onlyOneFilled.path)
        expectError(subject: onlyOneFilled.path, ["class 0 (cat)", "learns nothing"]) { try f.checkTrainable() }
    }

    /// A FIFO, a socket, a link to /dev/zero and a /proc file named like images are skipped with a
    /// warning when the folder is opened, without blocking or reading without end.
    func testNonFilesInAnImageFolderAreSkipped() throws {
        let root = try makeFolder(["cat": ["1.png"], "dog": ["1.png"]])
        let cat = root.appendingPathComponent("cat")
        XCTAssertEqual(mkfifo(cat.appendingPathComponent("fifo.png").path, 0o644), 0)
        try FileManager.default.createSymbolicLink(atPath: cat.appendingPathComponent("zero.png").path, withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: cat.appendingPathComponent("proc.jpg").path, withDestinationPath: "/proc/self/status")
        try FileManager.default.createSymbolicLink(atPath: cat.appendingPathComponent("gone.png").path, withDestinationPath: "/nonexistent/x.png")
        let socketPath = cat.appendingPathComponent("sock.png").path
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            _ = socketPath.utf8CString.withUnsafeBytes { raw.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(raw.count - 1))) }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0, "bind a unix socket at \(socketPath)")

        var warnings: [String] = []
        let started = Date()
        let folder = try ImageFolder(url: root) { warnings.append($0.description) }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        let r = root.path
        XCTAssertEqual(warnings.sorted(), [
            "\(r)/cat/fifo.png: is a FIFO (named pipe), not a regular file, skipped",
            "\(r)/cat/gone.png: no such file (a broken link?), skipped",
            "\(r)/cat/proc.jpg: not an image (neither JPEG nor PNG data), skipped",
            "\(r)/cat/sock.png: is a socket, not a regular file, skipped",
            "\(r)/cat/zero.png: is a character device, not a regular file, skipped",
        ])
        XCTAssertEqual(folder.samples.map(\.relativePath), ["cat/1.png", "dog/1.png"])
    }

    func testAnImageFileIsReadUpToABound() throws {
        let root = try makeFolder(["cat": ["1.png"], "dog": ["1.png"]])
        // A real PNG header followed by 300 MiB (a sparse file): the header reads, the image is refused.
        let big = root.appendingPathComponent("dog/big.png")
        try FileManager.default.copyItem(at: root.appendingPathComponent("dog/1.png"), to: big)
        XCTAssertEqual(truncate(big.path, 300 << 20), 0)
        let folder = try ImageFolder(url: root)
        XCTAssertEqual(folder.samples.count, 3)
        var warnings: [String] = []
        let batch = folder.load(Array(0..<3), height: 4, width: 4, preprocess: .none) { warnings.append($0.description) }
        XCTAssertEqual(batch.loaded.count, 2)
        XCTAssertEqual(warnings, ["\(root.path)/dog/big.png: is larger than 256 MiB, more than an image xfer reads, skipped"])
        XCTAssertThrowsError(try DecodedImage(contentsOf: big)) { error in
            XCTAssertTrue((error as? XferError)?.message.contains("larger than 256 MiB") ?? false, "\(error)")
        }
    }

    func testUnreadableFolderAndImageAreNamed() throws {
        try XCTSkipIf(getuid() == 0, "root reads every file whatever its mode")
        let root = try makeFolder(["cat": ["1.png", "2.png"], "dog": ["1.png"], "emu": ["1.png"]])
        XCTAssertEqual(chmod(root.appendingPathComponent("emu").path, 0), 0)
        XCTAssertEqual(chmod(root.appendingPathComponent("cat/2.png").path, 0), 0)
        defer { _ = chmod(root.appendingPathComponent("emu").path, 0o755) }
        var warnings: [String] = []
        _ = try DataSource(path: root.path) { warnings.append($0) }
        XCTAssertTrue(warnings.contains { $0.hasPrefix("\(root.path)/emu: cannot list the folder") }, "\(warnings)")
        XCTAssertTrue(warnings.contains { $0.hasPrefix("\(root.path)/cat/2.png: cannot be read") }, "\(warnings)")
    }

    func testDataThatIsAFIFOOrDeviceIsRefusedWithoutBlocking() throws {
        let fifo = dir.appendingPathComponent("data.h5").path
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        expectError(subject: fifo, ["FIFO", "not a file or folder"]) { _ = try DataSource(path: fifo) }
        expectError(subject: "/dev/zero", ["character device"]) { _ = try DataSource(path: "/dev/zero") }
    }

    // MARK: - Training state

    /// A file holding only a training state group with `config` (and slot datasets).
    func stateFile(_ config: String?, slots: [(String, [Int], [Float])] = []) throws -> String {
        let path = dir.appendingPathComponent("state-\(UUID().uuidString).h5").path
        let f = try HDF5File.create(path)
        try f.createGroup(TrainingState.group)
        if let config { try f.setString(TrainingState.group, "config", config, utf8: true) }
        for (name, shape, values) in slots { try f.write("\(TrainingState.group)/\(name)", shape: shape, floats: values) }
        try f.flush()
        return path
    }

    static let goodConfig: [String: String] = [
        "epochs_done": "2", "iterations": "6", "seed": "\"7\"", "optimizer": "\"adam\"", "learning_rate": "0.001",
        "momentum": "0", "nesterov": "false", "slots": "[2]",
    ]

    func config(_ changes: [String: String?]) -> String {
        var c = Self.goodConfig
        for (k, v) in changes { c[k] = v }
        return "{" + c.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}"
    }

    func testEveryTrainingStateFieldIsChecked() throws {
        let slots: [(String, [Int], [Float])] = [("slot_0_0", [3], [0, 0.1, 0]), ("slot_0_1", [3], [0, 0.01, 0])]
        let state = try XCTUnwrap(TrainingState.read(stateFile(config([:]), slots: slots)))
        XCTAssertEqual(state.epochsDone, 2)
        XCTAssertEqual(state.iterations, 6)
        XCTAssertEqual(state.seed, 7)
        XCTAssertEqual(state.optimizer, OptimizerConfig(kind: .adam, learningRate: 0.001))
        XCTAssertEqual(state.slots, [[[0, 0.1, 0], [0, 0.01, 0]]])

        let cases: [([String: String?], [String])] = [
            (["epochs_done": "-3"], ["epochs_done", "-3", "negative"]),
            (["epochs_done": "1.5"], ["epochs_done", "1.5", "not a whole number"]),
            (["epochs_done": "\"two\""], ["epochs_done", "'two'"]),
            (["epochs_done": "true"], ["epochs_done", "true"]),
            (["epochs_done": nil], ["epochs_done", "missing"]),
            (["epochs_done": "1e300"], ["epochs_done", "more than any run"]),
            (["iterations": "-1"], ["iterations", "negative"]),
            (["optimizer": "\"lion\""], ["optimizer", "'lion'", "sgd, adam, rmsprop"]),
            (["optimizer": "3"], ["optimizer", "not a name"]),
            (["learning_rate": "0"], ["learning_rate", "not positive"]),
            (["learning_rate": "-0.1"], ["learning_rate", "not positive"]),
            (["learning_rate": "1e300"], ["learning_rate", "not a finite float32"]),
            (["learning_rate": "null"], ["learning_rate", "null"]),
            (["momentum": "1.5"], ["momentum", "[0, 1)"]),
            (["momentum": "false"], ["momentum", "not a number"]),
            (["nesterov": "1"], ["nesterov", "not true or false"]),
            (["nesterov": "true"], ["nesterov", "SGD's"]),
            (["seed": "7"], ["seed", "not an unsigned 64-bit number"]),
            (["seed": "\"-1\""], ["seed"]),
            (["slots": "[3]"], ["slots[0]", "2 slots per parameter"]),
            (["slots": "{}"], ["slots", "not a list"]),
            (["slots": "[2, 2]"], ["slot_1_0", "missing"]),
        ]
        for (change, words) in cases {
            let path = try stateFile(config(change), slots: slots)
            expectError(subject: path, ["training state"] + words) { _ = try TrainingState.read(path) }
        }
        for (text, words) in [("{not json", ["config", "not a JSON object"]), ("[1, 2]", ["config", "not a JSON object"])] {
            let path = try stateFile(text)
            expectError(subject: path, words) { _ = try TrainingState.read(path) }
        }
        let noConfig = try stateFile(nil)
        expectError(subject: noConfig, ["config", "missing"]) { _ = try TrainingState.read(noConfig) }
        let nanSlot = try stateFile(config([:]), slots: [("slot_0_0", [3], [0, .nan, 0]), slots[1]])
        expectError(subject: nanSlot, ["slot_0_0", "nan", "not finite"]) { _ = try TrainingState.read(nanSlot) }
        let flatSlot = try stateFile(config([:]), slots: [("slot_0_0", [1, 3], [0, 0, 0]), slots[1]])
        expectError(subject: flatSlot, ["slot_0_0", "one dimension"]) { _ = try TrainingState.read(flatSlot) }
        XCTAssertNil(try TrainingState.read(Fixtures.path("k2_vgg_full.h5")), "a Keras file holds no state")
    }

    func testTrainingStateMustMatchTheModel() throws {
        let c = try Checkpoint.load(Fixtures.path("k2_transfer_functional_bn.h5"))
        let plan = try planFineTuning(c.model, options: FreezeOptions(head: [.flatten], classes: 2))
        let network = try TrainingNetwork(model: plan.model, kerasVersion: c.kerasVersion, seed: 0)
        let sizes = network.parameterSizes  // the new head's kernel and bias
        XCTAssertEqual(sizes.count, 2)
        let adam = OptimizerConfig(kind: .adam)
        var state = TrainingState(epochsDone: 1, optimizer: Optimizer(adam), seed: 0)
        state.path = "run.h5"
        state.slots = sizes.map { [[Float](repeating: 0, count: $0.count), [Float](repeating: 0, count: $0.count)] }
        XCTAssertNoThrow(try state.check(against: network, config: adam))
        var short = state
        short.slots[1][0].removeLast()
        expectError(subject: "run.h5", ["slot_1_0", "holds \(sizes[1].count - 1) values", sizes[1].path]) {
            try short.check(against: network, config: adam)
        }
        var extra = state
        extra.slots.append(extra.slots[0])
        expectError(subject: "run.h5", ["lists 3 parameters", "trains 2"]) { try extra.check(against: network, config: adam) }
        expectError(subject: "run.h5", ["slots[0]", "holds 2 slots", "rmsprop keeps 1"]) {
            try state.check(against: network, config: OptimizerConfig(kind: .rmsprop))
        }
    }

    /// After a NaN stop the network and the optimizer hold the last finished epoch's weights and
    /// state, all finite, so training can go on from them.
    func testNaNStopKeepsTheLastFiniteOptimizerState() throws {
        let c = try Checkpoint.load(Fixtures.path("k2_transfer_functional_bn.h5"))
        let plan = try planFineTuning(c.model, options: FreezeOptions(head: [.flatten, .dense(units: 8, activation: .relu)], classes: 2, seed: 1))
        var o = FineTuneOptions()
        o.epochs = 1; o.batchSize = 2; o.optimizer = OptimizerConfig(kind: .sgd, learningRate: 0.01, momentum: 0.9)
        let train = try DataSource(path: data("train.h5", x: [6, 32, 32, 3], y: labels([0, 1, 0, 1, 1, 0])))
        let first = try FineTuner(model: plan.model, kerasVersion: c.kerasVersion, options: o)
        _ = try first.fit(train: train, trainIndices: Array(0..<6))
        let weights = first.network.changingWeights()
        let slots = first.optimizer.slots, iterations = first.optimizer.iterations
        XCTAssertEqual(iterations, 3)

        o.epochs = 3; o.optimizer.learningRate = 1e30
        let second = try FineTuner(model: first.network.exportModel(), kerasVersion: c.kerasVersion, options: o)
        second.optimizer.restore(iterations: iterations, slots: slots)
        XCTAssertThrowsError(try second.fit(train: train, trainIndices: Array(0..<6), startEpoch: 1)) { error in
            XCTAssertTrue(error is TrainingDiverged, "\(error)")
        }
        XCTAssertEqual(second.optimizer.iterations, iterations)
        XCTAssertTrue(second.optimizer.slots == slots, "the optimizer state of epoch 1")
        XCTAssertTrue(second.network.changingWeights() == weights, "the weights of epoch 1")
        XCTAssertTrue(second.optimizer.slots.joined().allSatisfy { $0.allSatisfy(\.isFinite) })
    }
}
