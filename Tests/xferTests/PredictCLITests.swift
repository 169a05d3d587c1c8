// `xfer predict` on what users have (image files, flat folders, class folders), its CSV/JSON
// outputs, the preprocessing and color mode a model's images are read with, and labels matched
// by class name — against Keras's own predictions and evaluate (checkpoints/predict/, written
// by checkpoints/make_predict_fixtures.py).

import Foundation
import XCTest

final class PredictCLITests: XCTestCase {
    static let dir = CLI.root.appendingPathComponent("checkpoints/predict")
    static let sample = CLI.root.appendingPathComponent("checkpoints/images/sample")

    struct Expected: Decodable {
        struct Score: Decodable { var loss: Double; var accuracy: Double }
        var classes: [String]
        var files: [String]
        var colors5: [String: [Double]]
        var gray3: [String: [Double]]
        var evaluate_by_name: Score
        var evaluate_by_position: Score
    }

    static let expected: Expected = try! JSONDecoder().decode(
        Expected.self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))

    func run(_ args: [String]) throws -> Run { try CLI.run(args, cwd: Self.dir) }

    func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-predict-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func expectError(_ r: Run, _ status: Int32, _ words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, r.stderr, file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.hasPrefix("xfer: warning:") }
        XCTAssertTrue(lines.first?.hasPrefix("xfer: error: ") ?? false, r.stderr, file: file, line: line)
        XCTAssertTrue(lines.count == 1 || (lines.count == 2 && lines[1].hasPrefix("hint: ")), r.stderr, file: file, line: line)
        for w in words { XCTAssertTrue(lines.first?.contains(w) ?? false, "'\(r.stderr)' should say '\(w)'", file: file, line: line) }
    }

    /// `{"predictions": [{"file", "outputs", ...}]}` of `--output x.json`, by file.
    func jsonPredictions(_ path: String) throws -> [String: [String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        let list = object["predictions"] as! [[String: Any]]
        return Dictionary(uniqueKeysWithValues: list.map { ($0["file"] as! String, $0) })
    }

    func assertOutputs(_ got: [String: [String: Any]], _ want: [String: [Double]], prefix: String = "",
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Set(got.keys), Set(want.keys.map { prefix + $0 }), file: file, line: line)
        for (name, probs) in want {
            let outputs = got[prefix + name]?["outputs"] as? [Double] ?? []
            XCTAssertEqual(outputs.count, probs.count, name, file: file, line: line)
            for (a, b) in zip(outputs, probs) { XCTAssertEqual(a, b, accuracy: 1e-5, name, file: file, line: line) }
        }
    }

    // MARK: - What users have

    func testPredictOnAFlatFolderAFileAndAClassFolder() throws {
        let want = Self.expected.colors5
        // A flat folder of photos: one line per photo, its name, class and probability.
        let flat = try run(["predict", "colors5_named.h5", "photos/cat"])
        XCTAssertEqual(flat.status, 0, flat.stderr)
        let lines = flat.stdout.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
        XCTAssertEqual(lines.map { $0[0] }, ["cat0.png", "cat1.png", "cat2.png", "cat3.png"], flat.stdout)
        for cells in lines {
            XCTAssertEqual(cells.count, 3, flat.stdout)
            let p = want["cat/" + cells[0]]!
            let top = p.indices.max { p[$0] < p[$1] }!
            XCTAssertEqual(cells[1], Self.expected.classes[top])
            XCTAssertEqual(Double(cells[2])!, p[top], accuracy: 1e-4)
        }
        // One image file, named as given; --top-k.
        let one = try run(["predict", "colors5_named.h5", "photos/dog/dog1.png", "--top-k", "2"])
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertTrue(one.stdout.hasPrefix("photos/dog/dog1.png\tdog\t"), one.stdout)
        XCTAssertEqual(one.stdout.split(separator: "\t").count, 5, one.stdout)
        // A class folder (positional or --data) names photos below it; several PATHs by the path as given.
        let out = try tempDir()
        for (args, prefix) in [(["photos"], ""), (["--data", "photos"], ""), (["photos/cat", "photos/dog/"], "photos/")] {
            let json = out.appendingPathComponent("p.json").path
            let r = try run(["predict", "colors5.keras"] + args + ["--output", json])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stdout.contains("Wrote 8 predictions to \(json)"), r.stdout)
            assertOutputs(try jsonPredictions(json), want, prefix: prefix)
        }
    }

    func testCSVAndJSONOutputs() throws {
        let out = try tempDir()
        let csv = out.appendingPathComponent("p.csv").path, json = out.appendingPathComponent("p.json").path
        let c = try run(["predict", "colors5_named.h5", "photos", "--output", csv])
        XCTAssertEqual(c.status, 0, c.stderr)
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        XCTAssertEqual(rows.first, ["file", "class", "probability", "bird", "cat", "dog", "fox", "owl"])
        XCTAssertEqual(rows.count, 9)
        for row in rows.dropFirst() {
            let p = Self.expected.colors5[row[0]]!
            XCTAssertEqual(row[1], row[0].hasPrefix("cat/") ? "cat" : "dog")
            for (i, v) in p.enumerated() { XCTAssertEqual(Double(row[3 + i])!, v, accuracy: 1e-5, row[0]) }
        }
        let k = try run(["predict", "colors5_named.h5", "photos", "--top-k", "2", "--output", csv])
        XCTAssertEqual(k.status, 0, k.stderr)
        XCTAssertTrue(try String(contentsOfFile: csv, encoding: .utf8).hasPrefix("file,class_1,probability_1,class_2,probability_2,bird,"))
        let j = try run(["predict", "colors5_named.h5", "photos", "--top-k", "2", "--output", json])
        XCTAssertEqual(j.status, 0, j.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as! [String: Any]
        XCTAssertEqual(object["class_names"] as? [String], Self.expected.classes)
        XCTAssertEqual(object["head"] as? String, "softmax")
        let first = try jsonPredictions(json)["dog/dog0.png"]!
        XCTAssertEqual(first["class"] as? String, "dog")
        XCTAssertEqual((first["top_k"] as? [[String: Any]])?.count, 2)
        XCTAssertEqual(first["probability"] as! Double, Self.expected.colors5["dog/dog0.png"]![2], accuracy: 1e-5)
        // HDF5 as before; other extensions before any work.
        let h5 = try run(["predict", "colors5_named.h5", "photos", "--output", out.appendingPathComponent("p.h5").path])
        XCTAssertEqual(h5.status, 0, h5.stderr)
        expectError(try run(["predict", "colors5_named.h5", "photos", "--output", out.appendingPathComponent("p.txt").path]), 2,
                    ["--output", "p.txt", ".txt"])
    }

    func testBadPathsAreOneLine() throws {
        expectError(try run(["predict", "colors5.keras"]), 2, ["PATH", "no images"])
        expectError(try run(["predict", "colors5.keras", "photos/none.jpg"]), 3, ["photos/none.jpg", "no such file"])
        let notes = Self.sample.appendingPathComponent("dog/notes.txt").path
        expectError(try run(["predict", "colors5.keras", notes]), 3, [notes, "not an image"])
        let empty = try tempDir()
        expectError(try run(["predict", "colors5.keras", empty.path]), 3, [empty.path, "no images"])
        expectError(try run(["predict", "colors5.keras", "photos", "colors5_named.h5"]), 2, ["colors5_named.h5", "HDF5"])
        // A damaged image among good ones is a warning; the others are predicted.
        let mixed = try tempDir()
        try Data("not a picture".utf8).write(to: mixed.appendingPathComponent("bad.jpg"))
        try FileManager.default.copyItem(at: Self.dir.appendingPathComponent("photos/cat/cat0.png"), to: mixed.appendingPathComponent("good.png"))
        let r = try run(["predict", "colors5.keras", mixed.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("xfer: warning: \(mixed.path)/bad.jpg: not an image"), r.stderr)
        XCTAssertTrue(r.stdout.hasPrefix("good.png\t"), r.stdout)
    }

    // MARK: - What the model needs travels with it

    func testPreprocessingFollowsTheModelAndSaysWhy() throws {
        // A Keras model whose first layer is Rescaling(1/255): no preprocessing, and the line says why.
        let r = try run(["predict", "colors5.keras", "photos"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Images: rgb (the model takes 3 channels); preprocessing: none (the model's first layer 'rescaling' is a Rescaling"), r.stderr)
        // A model that does not rescale: caffe, VGG's, said as the default.
        let vgg = try CLI.run(["predict", "k2_vgg_full.h5", Self.sample.appendingPathComponent("dog").path])
        XCTAssertEqual(vgg.status, 0, vgg.stderr)
        XCTAssertTrue(vgg.stderr.contains("preprocessing: caffe (the default"), vgg.stderr)
        // --preprocess wins, and changes the answer.
        let caffe = try run(["predict", "colors5.keras", "photos", "--preprocess", "caffe"])
        XCTAssertTrue(caffe.stderr.contains("preprocessing: caffe (--preprocess)"), caffe.stderr)
        XCTAssertNotEqual(caffe.stdout, r.stdout)
    }

    func testFineTunedModelsRecordPreprocessingColorModeAndInputSize() throws {
        let out = try tempDir()
        for name in ["t.h5", "t.keras", "t.weights.h5"] {
            let tuned = out.appendingPathComponent(name).path
            let f = try run(["finetune", "colors5_named.h5", "--data", "photos", "--keep-top", "--epochs", "1", "--batch-size", "4",
                             "--output", tuned])
            XCTAssertEqual(f.status, 0, f.stderr)
            XCTAssertTrue(f.stdout.contains("preprocessing: none (the model's first layer"), f.stdout)
            guard !name.hasSuffix(".weights.h5") else { continue }
            let p = try run(["predict", tuned, "photos"])
            XCTAssertEqual(p.status, 0, p.stderr)
            XCTAssertTrue(p.stderr.contains("Images: rgb (recorded with the model); preprocessing: none (recorded with the model)"), p.stderr)
            let i = try run(["import", tuned])
            XCTAssertEqual(i.status, 0, i.stderr)
        }
        // The root attributes Keras ignores, in the .h5.
        let h5 = try String(decoding: Data(contentsOf: out.appendingPathComponent("t.h5")), as: UTF8.self)
        for attribute in ["color_mode", "input_shape", "preprocess", "class_names"] { XCTAssertTrue(h5.contains(attribute), attribute) }
    }

    func testInputSizeTravels() throws {
        // A model whose input size is open needs --input-shape once; the file xfer writes records it.
        let out = try tempDir()
        let weights = out.appendingPathComponent("w.weights.h5").path
        let w = try CLI.run(["import", "k3_open_input.keras", "--input-shape", "24,20,3", "--to", weights])
        XCTAssertEqual(w.status, 0, w.stderr)
        let back = try CLI.run(["import", weights, "--config", "k3_open_input.keras", "--json"])
        XCTAssertEqual(back.status, 0, back.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(back.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(object["input_shape"] as? [Int], [24, 20, 3])
        let without = try CLI.run(["import", "k3_open_input.keras", "--config", "k3_open_input.keras"])
        XCTAssertEqual(without.status, 3, "the Keras file itself records no size")
    }

    func testEvaluateMatchesLabelsByClassName() throws {
        // photos/ holds cat and dog, 2 of the model's 5 classes (bird, cat, dog, fox, owl).
        let r = try run(["evaluate", "colors5_named.h5", "--data", "photos", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let want = Self.expected.evaluate_by_name
        XCTAssertEqual(object["loss"] as! Double, want.loss, accuracy: 1e-4)
        XCTAssertEqual((object["metrics"] as! [String: Double])["accuracy"]!, want.accuracy, accuracy: 1e-6)
        XCTAssertNotEqual(want.accuracy, Self.expected.evaluate_by_position.accuracy, "the fixture tells name from position")
        // A folder the model has no class for is named.
        let other = try tempDir()
        for name in ["cat", "zebra"] {
            try FileManager.default.createDirectory(at: other.appendingPathComponent(name), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.dir.appendingPathComponent("photos/cat/cat0.png"),
                                             to: other.appendingPathComponent("\(name)/a.png"))
        }
        expectError(try run(["evaluate", "colors5_named.h5", "--data", other.path]), 3,
                    [other.path, "class folder zebra is not among the model's classes (bird, cat, dog, fox, owl)"])
        // Fine-tuning the model's own top keeps its classes: labels by name too.
        let tuned = other.appendingPathComponent("t.h5").path
        let f = try run(["finetune", "colors5_named.h5", "--data", "photos", "--keep-top", "--epochs", "1", "--lr", "0.0001",
                         "--batch-size", "8", "--no-shuffle", "--output", tuned])
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertTrue(f.stdout.contains("accuracy: 1.0000"), f.stdout)
    }

    // MARK: - --color-mode

    func testColorModeFollowsTheModelAsKerasLoadsIt() throws {
        // A 1-channel model: images read as grayscale, no preprocessing (caffe is per RGB channel).
        let out = try tempDir()
        let json = out.appendingPathComponent("g.json").path
        let r = try run(["predict", "gray3.keras", "photos", "--output", json])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("Images: grayscale (the model takes 1 channel); preprocessing: none (the images are grayscale"), r.stderr)
        assertOutputs(try jsonPredictions(json), Self.expected.gray3)
        let same = try run(["predict", "gray3.keras", "photos", "--color-mode", "grayscale", "--output", json])
        XCTAssertEqual(same.status, 0, same.stderr)
        assertOutputs(try jsonPredictions(json), Self.expected.gray3)
        // A mode that does not give the model's channels, or a preprocessing that needs RGB: exit 2.
        expectError(try run(["predict", "gray3.keras", "photos", "--color-mode", "rgb"]), 2,
                    ["--color-mode rgb", "3 channels per pixel but the model takes 1"])
        expectError(try run(["predict", "colors5.keras", "photos", "--color-mode", "grayscale"]), 2,
                    ["--color-mode grayscale", "1 channel per pixel but the model takes 3"])
        expectError(try run(["predict", "gray3.keras", "photos", "--preprocess", "caffe"]), 2, ["--preprocess caffe", "RGB"])
        expectError(try run(["predict", "gray3.keras", "photos", "--color-mode", "sepia"]), 2, ["sepia"])
        // Fine-tuning a 1-channel model on an image folder, and the mode travels with the output.
        let tuned = out.appendingPathComponent("g.keras").path
        let f = try run(["finetune", "gray3.keras", "--data", "photos", "--keep-top", "--epochs", "1", "--batch-size", "4", "--output", tuned])
        XCTAssertEqual(f.status, 0, f.stderr)
        let p = try run(["predict", tuned, "photos"])
        XCTAssertEqual(p.status, 0, p.stderr)
        XCTAssertTrue(p.stderr.contains("Images: grayscale (recorded with the model)"), p.stderr)
    }
}
