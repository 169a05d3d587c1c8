// The model API (Sources/XferKit/API) against Keras: every method on the Keras-written
// fixtures, each expected number from Keras (checkpoints/fixtures, checkpoints/training,
// checkpoints/losses, checkpoints/api/predict_images.json by checkpoints/make_api_fixtures.py).

import Foundation
import SwiftProtobuf
import XCTest
@testable import XferKit

final class KerasModelTests: XCTestCase {
    let fitData = Fixtures.root.appendingPathComponent("checkpoints/training/fit_plain.h5").path
    func repo(_ path: String) -> String { Fixtures.root.appendingPathComponent(path).path }

    func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-api-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    // MARK: Loading, layers, summary

    /// Every checkpoint kind, by path and by URL: Keras's counts and per-layer flags.
    func testLoadsEveryCheckpointKindWithKerasCounts() throws {
        var checked = 0
        for entry in try Fixtures.index() where entry.error == nil {
            guard let expected = try Fixtures.expected(entry) else { continue }
            let o = Fixtures.options(entry)
            let model = try KerasModel(contentsOf: Fixtures.path(entry.file), inputShape: o.inputShape, architecture: o.config)
            let counts = model.parameterCounts
            XCTAssertEqual(counts.total, expected.total_params, entry.file)
            XCTAssertEqual(counts.trainable, expected.trainable_params, entry.file)
            XCTAssertEqual(counts.nonTrainable, expected.non_trainable_params, entry.file)
            XCTAssertEqual(model.layers.map(\.name), expected.layers.map(\.name), entry.file)
            XCTAssertEqual(model.layers.map(\.trainable), expected.layers.map(\.trainable), entry.file)
            XCTAssertEqual(model.inputShape, expected.input_shape, entry.file)
            XCTAssertTrue(model.summary().contains("Total params: \(formatCount(expected.total_params))"), entry.file)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 30)
        let byURL = try KerasModel(contentsOf: URL(fileURLWithPath: Fixtures.path("k3_vgg.keras")))
        XCTAssertEqual(byURL.layers.count, try KerasModel(contentsOf: Fixtures.path("k3_vgg.keras")).layers.count)
    }

    /// The summary is the table `xfer import` prints.
    func testSummaryIsTheImportTable() throws {
        let model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        XCTAssertEqual(model.summary(), try ModelSummary(Checkpoint.load(Fixtures.path("k2_vgg_full.h5")).model).render())
    }

    // MARK: Freezing and the top

    /// Keras's counts after the same freeze and head (checkpoints/training/freeze_counts.json),
    /// whatever the order of the calls.
    func testFreezeAndReplaceTopGiveKerasCounts() throws {
        struct Case: Decodable {
            var id: String; var checkpoint: String; var args: [String]; var classes: Int
            var total_params: Int; var trainable_params: Int; var non_trainable_params: Int
            var layers: [Layer]
            struct Layer: Decodable { var name: String; var trainable: Bool }
        }
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: URL(fileURLWithPath: repo("checkpoints/training/freeze_counts.json"))))
        var checked = 0
        for k in cases {
            var until: String?, keepTop = false, head: [HeadLayer] = [.flatten, .dense(256, activation: .relu), .dropout(0.5)]
            var i = 0
            while i < k.args.count {
                switch k.args[i] {
                case "--freeze-until": until = k.args[i + 1]; i += 2
                case "--keep-top": keepTop = true; i += 1
                case "--head": head = try parseHead(k.args[i + 1]); i += 2
                default: XCTFail(k.args[i]); i += 1
                }
            }
            // `--keep-top` alone freezes the base in the CLI; the model API keeps the file's flags
            // (Keras's `fit` on a loaded model), so that case says nothing here.
            if keepTop && until == nil { continue }
            for order in 0..<2 {
                var model = try KerasModel(contentsOf: Fixtures.path(k.checkpoint))
                if order == 0, let until { try model.freeze(before: until) }
                if !keepTop { try model.replaceTop(with: head, classes: k.classes) }
                if order == 1, let until { try model.freeze(before: until) }
                let c = model.parameterCounts
                XCTAssertEqual(c.total, k.total_params, "case \(k.id)")
                XCTAssertEqual(c.trainable, k.trainable_params, "case \(k.id)")
                XCTAssertEqual(c.nonTrainable, k.non_trainable_params, "case \(k.id)")
                // Per layer of the base with weights (an InputLayer's flag means nothing, and Keras
                // leaves it True; the new head's layers are named by each side).
                let keras = Dictionary(uniqueKeysWithValues: k.layers.map { ($0.name, $0.trainable) })
                var compared = 0
                for l in model.layers where l.parameters > 0 {
                    guard let flag = keras[l.name] else { continue }
                    XCTAssertEqual(l.trainable, flag, "case \(k.id) order \(order) \(l.name)")
                    compared += 1
                }
                XCTAssertGreaterThan(compared, 3, "case \(k.id)")
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 7)
    }

    func testPerLayerTrainability() throws {
        var model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        try model.freeze(layers: ["block1_conv1", "fc1"])
        XCTAssertEqual(model.layers.filter { !$0.trainable }.map(\.name), ["block1_conv1", "fc1"])
        try model.unfreeze(layers: ["fc1"])
        XCTAssertEqual(model.layers.filter { !$0.trainable }.map(\.name), ["block1_conv1"])
        try model.freeze(before: "block3")
        try model.unfreeze(layers: ["block2_conv1"])
        let frozen = model.layers.filter { !$0.trainable && $0.parameters > 0 }.map(\.name)
        XCTAssertEqual(frozen, ["block1_conv1", "block1_conv2", "block2_conv2"])
        // A nested model's name reaches every layer in it, as Keras's `base.trainable = False`.
        var nested = try KerasModel(contentsOf: Fixtures.path("k2_transfer_nested.h5"))
        let base = try XCTUnwrap(nested.layers.first { $0.type == "Functional" || $0.type == "Sequential" }).name
        try nested.freeze(layers: [base])
        XCTAssertTrue(nested.layers.filter { $0.parent == base }.allSatisfy { !$0.trainable })
    }

    func testUnknownLayerNamesTheMethodAndListsTheLayers() throws {
        var model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        let before = model.layers
        for (call, subject) in [({ (m: inout KerasModel) in try m.freeze(before: "block9") }, "freeze(before:)"),
                                ({ (m: inout KerasModel) in try m.freeze(layers: ["nope"]) }, "freeze(layers:)"),
                                ({ (m: inout KerasModel) in try m.unfreeze(layers: ["nope"]) }, "unfreeze(layers:)")] {
            XCTAssertThrowsError(try call(&model)) { error in
                let e = error as! XferError
                XCTAssertEqual(e.kind, .usage)
                XCTAssertEqual(e.subject, subject)
                XCTAssertTrue(e.hint?.contains("block1_conv1") ?? false, e.hint ?? "")
            }
        }
        XCTAssertEqual(model.layers, before, "a failed call changes nothing")
        XCTAssertThrowsError(try model.replaceTop(with: [.dense(8)], classes: 2)) { error in
            XCTAssertEqual((error as! XferError).subject, "replaceTop(with:)")
        }
        XCTAssertThrowsError(try model.replaceTop(with: [.flatten, .dropout(1.5)], classes: 2))
        XCTAssertThrowsError(try model.replaceTop(with: [.flatten], classes: 0))
    }

    /// The loss decides the new head's activation, as the CLI's `--loss` does.
    func testTheLossDecidesTheHeadsActivation() throws {
        for (loss, activation) in [(LossConfig.categoricalCrossentropy, Activation.softmax), (.binaryCrossentropy, .sigmoid),
                                   (.meanSquaredError, .linear), (LossConfig(.categoricalCrossentropy, fromLogits: true), .linear)] {
            var model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
            try model.replaceTop(with: [.globalAveragePooling], classes: 3, loss: loss)
            XCTAssertEqual(headOf(model.spec)?.activation, activation, "\(loss)")
            XCTAssertEqual(model.outputCount, 3)
            XCTAssertEqual(model.loss, loss)
        }
    }

    // MARK: fit

    /// `model.fit(x, y, batch_size=4, epochs=2, shuffle=False)` with SGD(0.05, momentum 0.9) on
    /// k2_vgg_full.h5, everything trainable (checkpoints/training/fit_plain.h5).
    func testFitEqualsKerasFit() async throws {
        var model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        try model.freeze(before: "block1")
        let events = EventLog()
        let history = try await model.fit(try DataSource(contentsOf: fitData), epochs: 2, batchSize: 4,
                                          optimizer: .sgd(learningRate: 0.05, momentum: 0.9), shuffle: false) { events.add($0) }
        let f = try HDF5File.open(fitData)
        let kLoss = try f.floats("/fit/history_loss").values
        XCTAssertEqual(history.count, 2)
        for (r, k) in zip(history, kLoss) { XCTAssertEqual(r.loss, Double(k), accuracy: 1e-5, "epoch \(r.epoch) loss") }
        for (path, values) in try TrainingNetwork(model: model.spec, seed: 0).currentWeights() {
            let k = try f.floats("/fit/weights/\(path)").values
            var err: Float = 0
            for i in k.indices { err = max(err, abs(values[i] - k[i])) }
            XCTAssertLessThanOrEqual(err, 1e-5, path)
        }
        let ends = events.all.compactMap { e -> EpochRecord? in if case .epochEnd(let r, 2) = e { return r } else { return nil } }
        XCTAssertEqual(ends, history)
        XCTAssertEqual(events.all.filter { if case .batch = $0 { return true } else { return false } }.count, 6)
        XCTAssertTrue(events.all.contains { $0.description.hasPrefix("epoch 2/2 - loss: ") })
    }

    /// Cancelling the task stops training after the current batch: the call throws
    /// CancellationError, the model is as it was, and no file is left behind.
    func testCancellingFitStopsItAndChangesNothing() async throws {
        var model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        try model.replaceTop(with: [.flatten, .dense(16, activation: .relu)], classes: 5)
        let data = try DataSource(contentsOf: fitData)
        let x = Tensor(shape: [3] + model.inputShape, values: (0..<(3 * 32 * 32 * 3)).map { Float($0 % 255) - 100 })
        let before = try model.predict(x)
        let folder = try temporaryFolder()
        let best = folder.appendingPathComponent("best.h5").path
        let events = EventLog()
        let started = Date()
        let task = Task { [model] in
            var m = model
            // The monitor is `loss`; `saveBest` would write at the first epoch's end.
            try await m.fit(data, epochs: 100_000, batchSize: 2, callbacks: [.saveBest(to: best)]) { event in
                events.add(event)
                // Hold the loop in its first batch until the test has cancelled the task.
                if case .batch(1, 1, _, _, _) = event { events.reached.signal(); events.go.wait() }
            }
            return m
        }
        while events.reached.wait(timeout: .now()) == .timedOut { try await Task.sleep(nanoseconds: 10_000_000) }
        task.cancel()
        events.go.signal()
        do {
            _ = try await task.value
            XCTFail("fit finished instead of stopping")
        } catch is CancellationError {
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)
        // Nothing after the cancelled batch: no epoch end, no saved file.
        XCTAssertEqual(events.all.filter { if case .batch = $0 { return true } else { return false } }.count, 1)
        XCTAssertFalse(events.all.contains { if case .epochEnd = $0 { return true } else { return false } })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
        XCTAssertEqual(try model.predict(x), before)
        // A task cancelled before it starts trains nothing.
        let early = Task { [model] in
            var m = model
            withUnsafeCurrentTask { $0?.cancel() }
            return try await m.fit(data, epochs: 1)
        }
        do { _ = try await early.value; XCTFail("no CancellationError") } catch is CancellationError {}
    }

    func testFitChecksItsArgumentsAndDataFirst() async throws {
        var model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        let data = try DataSource(contentsOf: fitData)
        await assertThrowsXferError(.usage) { try await model.fit(data, epochs: 0) }
        await assertThrowsXferError(.usage) { try await model.fit(data, epochs: 1, validation: .split(1.5)) }
        await assertThrowsXferError(.usage) { try await model.fit(data, epochs: 1, callbacks: [.earlyStopping(patience: 1, monitor: .valLoss)]) }
        await assertThrowsXferError(.usage) { try await model.fit(data, epochs: 1, callbacks: [.saveBest(to: "/tmp/x.tflite")]) }
        // 32×32 images into a model of 64×64: the data's own error, before any epoch.
        var other = try KerasModel(contentsOf: Fixtures.path("k3_open_input.keras"), inputShape: [64, 64, 3])
        await assertThrowsXferError(.badInput) { try await other.fit(data, epochs: 1) }
    }

    func assertThrowsXferError(_ kind: XferError.Kind, file: StaticString = #filePath, line: UInt = #line,
                               _ body: () async throws -> Any) async {
        do {
            _ = try await body()
            XCTFail("no error", file: file, line: line)
        } catch let e as XferError {
            XCTAssertEqual(e.kind, kind, e.description, file: file, line: line)
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
    }

    /// Validation and callbacks reach the loop as the CLI's flags do: a split holds out samples,
    /// early stopping stops (checked on the Fashion job's data, whose classes are balanced).
    func testValidationAndCallbacks() async throws {
        var model = try KerasModel(contentsOf: repo("checkpoints/fashion/fashion_vgg.h5"))
        let train = try DataSource(contentsOf: repo("checkpoints/fashion/train"))
        try model.replaceTop(with: [.flatten, .dense(16, activation: .relu)], classes: train.classCount)
        let events = EventLog()
        let history = try await model.fit(train, epochs: 30, optimizer: .sgd(learningRate: 0.5), validation: .split(0.2),
                                          callbacks: [.earlyStopping(patience: 1, monitor: .valAccuracy)]) { events.add($0) }
        XCTAssertLessThan(history.count, 30)
        XCTAssertTrue(history.allSatisfy { $0.valLoss != nil && $0.valAccuracy != nil })
        XCTAssertTrue(events.all.contains { if case .message(let m) = $0 { return m.hasPrefix("early stopping") } else { return false } })
        XCTAssertEqual(model.classNames, train.classNames)
    }

    // MARK: evaluate and predict

    /// Keras's `model.evaluate` for every loss (checkpoints/losses/expected.json).
    func testEvaluateEqualsKerasEvaluate() throws {
        struct Case: Decodable { var model: String; var data: String; var evaluate: [String: Double] }
        let dir = Fixtures.root.appendingPathComponent("checkpoints/losses")
        let cases = try JSONDecoder().decode([String: Case].self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        XCTAssertGreaterThanOrEqual(cases.count, 10)
        for (name, c) in cases {
            let model = try KerasModel(contentsOf: dir.appendingPathComponent(c.model))
            let r = try model.evaluate(try DataSource(contentsOf: dir.appendingPathComponent(c.data)), batchSize: 4)
            XCTAssertEqual(r.loss, c.evaluate["loss"]!, accuracy: 1e-5 * max(1, c.evaluate["loss"]!), "\(name) loss")
            for (metric, value) in c.evaluate where metric != "loss" {
                let mine = r.metrics.first { $0.name == metric }?.value ?? .nan
                XCTAssertEqual(mine, value, accuracy: 1e-5 * max(1, abs(value)), "\(name) \(metric)")
            }
            XCTAssertEqual(r.description, r.line)
        }
    }

    /// Keras's `model.predict` on each fixture's batch (X.io.h5), as a tensor and as DATA.
    func testPredictOnABatchEqualsKerasPredict() throws {
        var checked = 0
        for entry in try Fixtures.index() where entry.error == nil {
            guard let io = entry.io else { continue }
            let o = Fixtures.options(entry)
            let model = try KerasModel(contentsOf: Fixtures.path(entry.file), inputShape: o.inputShape, architecture: o.config)
            let f = try HDF5File.open(Fixtures.path(io))
            let x = try f.floats("/x"), y = try f.floats("/y")
            let out = try model.predict(Tensor(shape: x.shape, values: x.values), batchSize: 2)
            let n = y.shape[0]
            XCTAssertEqual(out.shape, [n, y.values.count / n], entry.file)
            XCTAssertLessThanOrEqual(out.maxAbsDifference(Tensor(shape: out.shape, values: y.values)), 1e-4, entry.file)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 15)
        // As DATA: one Prediction per sample, its outputs Keras's, its class the argmax.
        let model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        let y = try HDF5File.open(Fixtures.path("k2_vgg_full.h5.io.h5")).floats("/y")
        let rows = try model.predict(try DataSource(contentsOf: Fixtures.path("k2_vgg_full.h5.io.h5")))
        let width = y.shape[1]
        for (i, p) in rows.enumerated() {
            let k = Array(y.values[(i * width)..<((i + 1) * width)])
            XCTAssertEqual(p.input, String(i))
            for (a, b) in zip(p.outputs, k) { XCTAssertEqual(a, b, accuracy: 1e-5) }
            XCTAssertEqual(p.classIndex, k.indices.max { k[$0] < k[$1] })
            XCTAssertEqual(p.probability ?? 0, k.max()!, accuracy: 1e-5)
        }
    }

    /// Keras reads the Fashion test images (decode, bilinear resize, caffe) and predicts them
    /// (checkpoints/api/predict_images.json): one image, and the folder in Keras's order.
    func testPredictImageAndFolderEqualKeras() throws {
        struct Reference: Decodable {
            var model: String; var folder: String
            var predictions: [Row]
            struct Row: Decodable { var file: String; var outputs: [Float]; var `class`: Int; var probability: Float }
        }
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: repo("checkpoints/api/predict_images.json"))))
        let model = try KerasModel(contentsOf: repo(ref.model))
        let all = try model.predict(folder: repo(ref.folder), batchSize: 16)
        XCTAssertEqual(all.map(\.input), ref.predictions.map(\.file))
        for (p, k) in zip(all, ref.predictions) {
            for (a, b) in zip(p.outputs, k.outputs) { XCTAssertEqual(a, b, accuracy: 1e-4, k.file) }
            XCTAssertEqual(p.classIndex, k.class, k.file)
        }
        let first = ref.predictions[0]
        let one = try model.predict(image: repo(ref.folder) + "/" + first.file)
        XCTAssertEqual(one.classIndex, first.class)
        XCTAssertEqual(one.probability ?? 0, first.probability, accuracy: 1e-4)
        XCTAssertEqual(try model.predict(image: URL(fileURLWithPath: repo(ref.folder) + "/" + first.file)).outputs, one.outputs)
        XCTAssertEqual(one.description, "\(repo(ref.folder))/\(first.file)\t\(first.class)\t" + String(format: "%.4f", Double(one.probability!)))
        XCTAssertEqual(one.top(2).first?.className, String(first.class))
    }

    func testPredictImageErrorsNameTheFile() throws {
        let model = try KerasModel(contentsOf: repo("checkpoints/fashion/fashion_vgg.h5"))
        let text = repo("checkpoints/images/broken/not_an_image.jpg")
        XCTAssertThrowsError(try model.predict(image: text)) { error in
            XCTAssertEqual((error as! XferError).subject, text)
            XCTAssertEqual((error as! XferError).kind, .badInput)
        }
        XCTAssertThrowsError(try model.predict(image: "/nonexistent.png"))
        XCTAssertThrowsError(try model.predict(folder: "/nonexistent"))
        var warnings: [String] = []
        XCTAssertThrowsError(try model.predict(folder: repo("checkpoints/images/broken")) { warnings.append($0) })
        XCTAssertEqual(warnings.count, 3, "\(warnings)")
    }

    // MARK: save and export

    /// The extension chooses the format; each file reads back and predicts what Keras predicts.
    func testSaveChoosesTheFormatByExtension() throws {
        let folder = try temporaryFolder()
        let model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        let io = try HDF5File.open(Fixtures.path("k2_vgg_full.h5.io.h5"))
        let x = try io.floats("/x"), y = try io.floats("/y")
        for (name, format) in [("m.h5", CheckpointFormat.keras2Model), ("m.keras", .keras3Archive), ("m.weights.h5", .keras3Weights)] {
            let url = folder.appendingPathComponent(name)
            try model.save(to: url)
            let back = try Checkpoint.load(url.path, options: .init(configPath: name.hasSuffix(".weights.h5") ? Fixtures.path("k2_vgg_full.h5") : nil))
            XCTAssertEqual(back.format, format, name)
            let again = KerasModel(back)
            let out = try again.predict(Tensor(shape: x.shape, values: x.values))
            XCTAssertLessThanOrEqual(out.maxAbsDifference(Tensor(shape: out.shape, values: y.values)), 1e-4, name)
        }
        let onnx = folder.appendingPathComponent("m.onnx").path
        try model.export(to: onnx)
        let proto = try Onnx_ModelProto(serializedBytes: try Data(contentsOf: URL(fileURLWithPath: onnx)))
        XCTAssertEqual(proto.graph.input.first?.name, "input")
        // A name xfer cannot write is refused before anything is written; so is an input.
        XCTAssertThrowsError(try model.save(to: folder.appendingPathComponent("m.tflite").path)) { error in
            XCTAssertEqual((error as! XferError).kind, .usage)
        }
        XCTAssertThrowsError(try model.save(to: Fixtures.path("k2_vgg_full.h5")))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder.path)),
                       ["m.h5", "m.keras", "m.weights.h5", "m.onnx"])
    }

    /// A fine-tuned model's class names, preprocessing and loss travel with it, and its saved
    /// optimizer state lets the CLI resume it.
    func testWhatTravelsWithASavedModel() async throws {
        var model = try KerasModel(contentsOf: repo("checkpoints/losses/bce_sigmoid.h5"))
        XCTAssertEqual(model.loss, .binaryCrossentropy)
        let data = try DataSource(contentsOf: repo("checkpoints/losses/bce_sigmoid_data.h5"))
        try await model.fit(data, epochs: 1, batchSize: 4)
        let path = try temporaryFolder().appendingPathComponent("tuned.h5").path
        try model.save(to: path)
        let back = try Checkpoint.load(path)
        XCTAssertEqual(back.compiledLoss, .binaryCrossentropy)
        XCTAssertEqual(try TrainingState.read(path)?.epochsDone, 1)
        XCTAssertEqual(try KerasModel(contentsOf: path).loss, .binaryCrossentropy)
        // Class names from an image folder travel too (the Fashion job's, on its train folder).
        var fashion = try KerasModel(contentsOf: repo("checkpoints/fashion/fashion_vgg.h5"))
        let train = try DataSource(contentsOf: repo("checkpoints/fashion/train"))
        try fashion.replaceTop(with: [.flatten], classes: train.classCount)
        try await fashion.fit(train, epochs: 1)
        let tuned = try temporaryFolder().appendingPathComponent("tuned.keras").path
        try fashion.save(to: tuned)
        let reread = try KerasModel(contentsOf: tuned)
        XCTAssertEqual(reread.classNames, train.classNames)
        XCTAssertEqual(reread.preprocess, .caffe)
        let p = try reread.predict(image: repo("checkpoints/fashion/test/8_bag/test_00031.png"))
        XCTAssertEqual(p.className, train.classNames![p.classIndex!])
    }

    // MARK: Errors

    /// Error text: the line and the hint the CLI prints, not "The operation could not be completed".
    func testErrorsAreLocalizedWithTheCLIsMessageAndHint() throws {
        XCTAssertThrowsError(try KerasModel(contentsOf: "/nonexistent/model.h5")) { error in
            let e = error as! XferError
            XCTAssertEqual(error.localizedDescription, e.description)
            XCTAssertTrue(error.localizedDescription.hasPrefix("/nonexistent/model.h5: "), error.localizedDescription)
            XCTAssertEqual((error as? LocalizedError)?.recoverySuggestion, e.hint)
        }
        let forged = XferError.badInput("a\u{1b}[2Jb.h5", "bad", hint: "line\nhint: forged")
        XCTAssertEqual(forged.errorDescription, "a\\u{1b}[2Jb.h5: bad")
        XCTAssertEqual(forged.recoverySuggestion, "line\\nhint: forged")
    }

    // MARK: Trainer

    /// Two `step`s equal two Keras `train_on_batch` calls with SGD and momentum
    /// (checkpoints/training: the batch `x`, one-hot `y`, Keras's loss and weights per step).
    func testTrainerStepEqualsTrainOnBatch() throws {
        var checked = 0
        for name in ["plain", "bn_k2", "bn_k3", "nested", "resnet_k3"] {
            let f = try HDF5File.open(Fixtures.root.appendingPathComponent("checkpoints/training/\(name).h5").path)
            let group = "/steps/sgd_momentum"
            guard f.kind(group) == .group else { continue }
            let cfg = try JSONSerialization.jsonObject(with: Data(try f.string(group, "config")!.utf8)) as! [String: Any]
            XCTAssertEqual(try f.string(group, "optimizer"), "SGD")
            let optimizer = OptimizerConfig.sgd(learningRate: Float(cfg["learning_rate"] as! Double),
                                                momentum: Float(cfg["momentum"] as? Double ?? 0), nesterov: cfg["nesterov"] as? Bool ?? false)
            var checkpoint = try Checkpoint.load(Fixtures.path(try f.string("/", "source")!))
            // The fixtures set Dropout rates to 0 (attribute dropout_zeroed) so training is deterministic.
            checkpoint.model = zeroDropout(checkpoint.model)
            let x = try f.floats("/x"), y = try f.floats("/y")
            let classes = y.shape[1]
            let labels = (0..<y.shape[0]).map { i in (0..<classes).max { y.values[i * classes + $0] < y.values[i * classes + $1] }! }
            let trainer = try Trainer(model: KerasModel(checkpoint), optimizer: optimizer)
            for step in 1...2 {
                let r = try trainer.step(Batch(inputs: Tensor(shape: x.shape, values: x.values), labels: labels))
                let kLoss = Double(try f.floats("\(group)/\(step)/loss").values[0])
                XCTAssertEqual(r.loss, kLoss, accuracy: 1e-5 * max(1, abs(kLoss)), "\(name) step \(step)")
            }
            for (path, values) in try TrainingNetwork(model: trainer.model.spec, seed: 0).currentWeights() {
                let k = try f.floats("\(group)/2/weights/\(path)").values
                var worst: Float = 0
                for i in k.indices { worst = max(worst, abs(values[i] - k[i]) / max(1, abs(k[i]))) }
                XCTAssertLessThanOrEqual(worst, 1e-5, "\(name) \(path)")
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 3)
    }

    func zeroDropout(_ m: ModelSpec) -> ModelSpec {
        var m = m
        for i in m.layers.indices {
            if var d = m.layers[i].op as? DropoutConfig {
                d.rate = 0; m.layers[i].kind = .dropout(d)
            } else if case .model(let inner) = m.layers[i].kind {
                m.layers[i].kind = .model(zeroDropout(inner))
            }
        }
        return m
    }

    /// `Trainer.evaluate` on all of DATA as one batch is Keras's `evaluate` loss
    /// (checkpoints/losses/expected.json), and changes nothing; the learning rate can be set.
    func testTrainerEvaluateAndLearningRate() throws {
        struct Case: Decodable { var evaluate: [String: Double] }
        let dir = Fixtures.root.appendingPathComponent("checkpoints/losses")
        let cases = try JSONDecoder().decode([String: Case].self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        let model = try KerasModel(contentsOf: dir.appendingPathComponent("mse.h5"))
        let data = try DataSource(contentsOf: dir.appendingPathComponent("mse_data.h5"))
        let trainer = try Trainer(model: model, optimizer: .adam(learningRate: 0.01))
        let all = data.batches(size: data.count)[0]
        let r = try trainer.evaluate(all)
        let keras = cases["mse"]!.evaluate
        XCTAssertEqual(r.loss, keras["loss"]!, accuracy: 1e-5 * max(1, keras["loss"]!))
        XCTAssertEqual(r.metric, keras["mae"]!, accuracy: 1e-5 * max(1, keras["mae"]!))
        XCTAssertEqual(try trainer.evaluate(all), r, "evaluate takes no step")
        XCTAssertEqual(trainer.learningRate, 0.01)
        trainer.learningRate = 0.001
        XCTAssertEqual(trainer.learningRate, 0.001)
        try trainer.step(all)
        XCTAssertLessThan(try trainer.evaluate(all).loss, r.loss)
    }

    /// The URL spellings reach the same files; a multi-label head's labels are the outputs above the threshold.
    func testURLsAndLabels() throws {
        let model = try KerasModel(contentsOf: repo("checkpoints/fashion/fashion_vgg.h5"))
        let folder = URL(fileURLWithPath: repo("checkpoints/fashion/test/8_bag"))
        XCTAssertEqual(try model.predict(folder: folder).map(\.outputs), try model.predict(folder: folder.path).map(\.outputs))
        let out = try temporaryFolder().appendingPathComponent("m.onnx")
        try model.export(to: out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.path))
        let multi = try KerasModel(contentsOf: repo("checkpoints/losses/multilabel.h5"))
        let rows = try multi.predict(try DataSource(contentsOf: repo("checkpoints/losses/multilabel_data.h5")))
        for p in rows {
            XCTAssertNil(p.classIndex)
            XCTAssertEqual(p.labels(above: 0.5).map(\.probability), p.outputs.filter { $0 > 0.5 })
        }
    }

    /// A loop of `step`s over DATA's batches in order is `fit` without shuffling: Keras's fit.
    func testTrainerLoopEqualsKerasFit() throws {
        var model = try KerasModel(contentsOf: Fixtures.path("k2_vgg_full.h5"))
        try model.freeze(before: "block1")
        let data = try DataSource(contentsOf: fitData)
        let trainer = try Trainer(model: model, optimizer: .sgd(learningRate: 0.05, momentum: 0.9))
        for _ in 0..<2 { for batch in data.batches(size: 4) { try trainer.step(batch) } }
        let f = try HDF5File.open(fitData)
        for (path, values) in try TrainingNetwork(model: trainer.model.spec, seed: 0).currentWeights() {
            let k = try f.floats("/fit/weights/\(path)").values
            var err: Float = 0
            for i in k.indices { err = max(err, abs(values[i] - k[i])) }
            XCTAssertLessThanOrEqual(err, 1e-5, path)
        }
        XCTAssertThrowsError(try trainer.step(Batch(inputs: Tensor(shape: [1, 8, 8, 3]), labels: [0])))
        XCTAssertThrowsError(try trainer.step(Batch(inputs: Tensor(shape: [1, 32, 32, 3]), labels: [7])))
        XCTAssertEqual(data.batches(size: 4, seed: 1).map(\.count), [4, 4, 2])
    }
}

/// Events collected from `fit`'s background thread.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [FitEvent] = []
    let reached = DispatchSemaphore(value: 0)
    let go = DispatchSemaphore(value: 0)
    func add(_ e: FitEvent) { lock.withLock { events.append(e) } }
    var all: [FitEvent] { lock.withLock { events } }
}
