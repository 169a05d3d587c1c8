// Models that take no images — a feature vector (F,) or a sequence (T, F) — through the built
// binary, against Keras (checkpoints/nonimage, made by checkpoints/make_nonimage_fixtures.py):
// import gives Keras's counts, predict on an HDF5 x of the model's input shape gives Keras's
// predict (≤ 1e-4), evaluate Keras's evaluate, and two epochs of finetune --no-shuffle Keras's
// fit (every weight ≤ 1e-5, the printed losses Keras's), in tf-keras .h5 and Keras 3 .keras.
// Data of another shape, and image-only options, are refused with one line.

import Foundation
import XCTest
import XferKit

final class NonImageCLITests: XCTestCase {
    let dir = CLI.root.appendingPathComponent("checkpoints/nonimage")
    let files = ["issue_k2.h5", "issue_k3.keras", "mlp_k2.h5", "mlp_k3.keras", "seq_k2.h5", "seq_k3.keras",
                 "seq_pool_k2.h5", "seq_pool_k3.keras", "seq_conv_k2.h5", "seq_conv_k3.keras"]

    func run(_ args: [String]) throws -> Run { try CLI.run(args, cwd: dir) }
    func data(_ model: String) -> String { (model as NSString).deletingPathExtension + "_data.h5" }

    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-nonimage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: d) }
        return d
    }

    func testImportGivesKerasCounts() throws {
        struct Counts: Decodable { var total_params: Int; var trainable_params: Int; var non_trainable_params: Int }
        let expected = try JSONDecoder().decode([String: Counts].self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        for file in files {
            let r = try run(["import", file, "--json"])
            XCTAssertEqual(r.status, 0, "\(file): \(r.stderr)")
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let k = try XCTUnwrap(expected[file], file)
            XCTAssertEqual(obj["total_params"] as? Int, k.total_params, file)
            XCTAssertEqual(obj["trainable_params"] as? Int, k.trainable_params, file)
            XCTAssertEqual(obj["non_trainable_params"] as? Int, k.non_trainable_params, file)
        }
        // The issue's own example: Sequential([Dense(10, trainable=False, input_shape=(100,)), BatchNormalization()]).
        XCTAssertEqual(expected["issue_k2.h5"]?.total_params, 1_050)
        XCTAssertEqual(expected["issue_k2.h5"]?.trainable_params, 20)
    }

    func testPredictEqualsKerasPredict() throws {
        let tmp = try tempDir()
        for file in files {
            let out = tmp.appendingPathComponent(file + ".h5").path
            let r = try run(["predict", file, "--data", data(file), "--output", out])
            XCTAssertEqual(r.status, 0, "\(file): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Images:"), "no image settings for non-image data: \(r.stderr)")
            let mine = try HDF5File.open(out).floats("/predictions")
            let keras = try HDF5File.open(dir.appendingPathComponent(data(file)).path).floats("/keras/predict")
            XCTAssertEqual(mine.shape, keras.shape, file)
            let err = zip(mine.values, keras.values).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err, 1e-4, file)
        }
    }

    func testEvaluateEqualsKerasEvaluate() throws {
        for file in files where !file.hasPrefix("issue") {
            let r = try run(["evaluate", file, "--data", data(file), "--loss", "sparse_categorical_crossentropy", "--json"])
            XCTAssertEqual(r.status, 0, "\(file): \(r.stderr)")
            let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            let metrics = try XCTUnwrap(obj["metrics"] as? [String: Double], r.stdout)
            let f = try HDF5File.open(dir.appendingPathComponent(data(file)).path)
            XCTAssertEqual(try XCTUnwrap(obj["loss"] as? Double), Double(try f.floats("/keras/evaluate_loss").values[0]), accuracy: 1e-5, file)
            XCTAssertEqual(try XCTUnwrap(metrics["accuracy"]), Double(try f.floats("/keras/evaluate_accuracy").values[0]), accuracy: 1e-6, file)
            XCTAssertEqual(try XCTUnwrap(metrics["top_2_accuracy"]), Double(try f.floats("/keras/evaluate_top2").values[0]), accuracy: 1e-6, file)
        }
    }

    func testFinetuneEqualsKerasFit() throws {
        let tmp = try tempDir()
        // seq_conv: Conv1D, BatchNormalization(scale=False) of a sequence, Flatten, BatchNormalization(center=False).
        for file in ["mlp_k2.h5", "mlp_k3.keras", "seq_k2.h5", "seq_k3.keras", "seq_conv_k2.h5", "seq_conv_k3.keras"] {
            let f = try HDF5File.open(dir.appendingPathComponent(data(file)).path)
            let args = try JSONDecoder().decode([String].self, from: Data(try XCTUnwrap(f.string("/", "xfer_args")).utf8))
            for ext in ["h5", "keras"] {
                let out = tmp.appendingPathComponent("\(file).\(ext)").path
                let r = try run(["finetune"] + args + ["--output", out])
                XCTAssertEqual(r.status, 0, "\(file): \(r.stderr)")
                for (i, l) in try f.floats("/fit/history_loss").values.enumerated() {
                    XCTAssertTrue(r.stdout.contains(String(format: "epoch %d/2 - loss: %.4f", i + 1, l)), "\(file) epoch \(i + 1): Keras \(l): \(r.stdout)")
                }
                let model = try Checkpoint.load(out).model
                var checked = 0
                for l in model.flattenedLayers() {
                    for w in l.layer.weights {
                        let k = try f.floats("/fit/weights/\(l.layer.name)/\(w.role.rawValue)").values
                        let err = k.indices.map { abs(w.values[$0] - k[$0]) / max(1, abs(k[$0])) }.max() ?? 0
                        XCTAssertLessThanOrEqual(err, 1e-5, "\(file) → .\(ext) \(l.layer.name)/\(w.role.rawValue)")
                        checked += 1
                    }
                }
                let kerasWeights = try f.children("/fit/weights").map { try f.children("/fit/weights/\($0)").count }.reduce(0, +)
                XCTAssertEqual(checked, kerasWeights, "\(file): every weight Keras has")
            }
        }
    }

    /// With the first Dense frozen the feature cache holds its outputs, vectors and sequences
    /// alike, and training from it gives the weights of training without it.
    func testFeatureCacheOnVectorsAndSequences() throws {
        let tmp = try tempDir()
        for file in ["mlp_k2.h5", "seq_k3.keras"] {
            var weights: [[String: [Float]]] = []
            for cache in [true, false] {
                let out = tmp.appendingPathComponent("\(file)-\(cache).h5").path
                let r = try run(["finetune", file, "--data", data(file), "--keep-top", "--freeze-until", "bn1",
                                 "--loss", "sparse_categorical_crossentropy", "--no-shuffle", "--batch-size", "4", "--epochs", "2",
                                 "--optimizer", "adam", "--lr", "0.01", "--output", out] + (cache ? [] : ["--no-cache"]))
                XCTAssertEqual(r.status, 0, "\(file): \(r.stderr)")
                XCTAssertEqual(r.stdout.contains("Feature cache: the frozen prefix runs once"), cache, r.stdout)
                var w: [String: [Float]] = [:]
                for l in try Checkpoint.load(out).model.flattenedLayers() {
                    for x in l.layer.weights { w["\(l.layer.name)/\(x.role.rawValue)"] = x.values }
                }
                weights.append(w)
            }
            XCTAssertEqual(Set(weights[0].keys), Set(weights[1].keys))
            for (k, v) in weights[0] {
                let err = zip(v, weights[1][k]!).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(err, 1e-6, "\(file) \(k)")
            }
        }
    }

    /// A new head on a sequence base: `gap`/`gmp` are the 1-D poolings there; a model without a
    /// convolutional base says to keep its top.
    func testNewHeadOnASequenceBase() throws {
        let tmp = try tempDir()
        for head in ["gap,dense:8:relu", "gmp", "flatten"] {
            let out = tmp.appendingPathComponent("head.keras").path
            let r = try run(["finetune", "seq_pool_k2.h5", "--data", "seq_pool_k2_data.h5", "--head", head, "--epochs", "1",
                             "--batch-size", "4", "--output", out])
            XCTAssertEqual(r.status, 0, "\(head): \(r.stderr)")
            XCTAssertTrue(r.stdout.contains("Feature cache: the frozen prefix runs once"), r.stdout)
            let p = try run(["predict", out, "--data", "seq_pool_k2_data.h5"])
            XCTAssertEqual(p.status, 0, p.stderr)
            XCTAssertEqual(p.stdout.split(separator: "\n").count, 12)
        }
        let r = try run(["finetune", "mlp_k2.h5", "--data", "mlp_k2_data.h5", "--epochs", "1"])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stderr.contains("no base to fine-tune") && r.stderr.contains("--keep-top"), r.stderr)
    }

    func testDataOfAnotherShapeOrImageOptionsAreRefused() throws {
        // (N, 100) data for a model of (8,) inputs; sequences for a vector model; images for a sequence model.
        for (model, wrong) in [("mlp_k2.h5", "issue_k2_data.h5"), ("mlp_k3.keras", "seq_k3_data.h5"), ("seq_k2.h5", "mlp_k2_data.h5")] {
            let r = try run(["predict", model, "--data", wrong])
            XCTAssertEqual(r.status, 3, "\(model) on \(wrong): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("xfer: error: \(wrong): x holds samples of shape"), r.stderr)
            XCTAssertLessThanOrEqual(r.stderr.split(separator: "\n").count, 2, r.stderr)
        }
        let images = CLI.root.appendingPathComponent("checkpoints/fashion/train").path
        let r = try run(["predict", "mlp_k2.h5", images])
        XCTAssertEqual(r.status, 3, r.stderr)
        XCTAssertTrue(r.stderr.contains("holds images (H, W, C) but the model takes input (8,)"), r.stderr)
        let p = try run(["predict", "seq_k2.h5", "--data", "seq_k2_data.h5", "--preprocess", "caffe"])
        XCTAssertEqual(p.status, 2, p.stderr)
        XCTAssertTrue(p.stderr.contains("--preprocess caffe: works on images"), p.stderr)
    }

    func testDeployWritersTakeNonImageModels() throws {
        let tmp = try tempDir()
        for file in ["mlp_k2.h5", "seq_k3.keras", "seq_pool_k2.h5"] {
            for ext in ["keras", "h5", "weights.h5"] {
                let out = tmp.appendingPathComponent("\(file).\(ext)").path
                let r = try run(["export", file, "--to", out])
                XCTAssertEqual(r.status, 0, "\(file) → .\(ext): \(r.stderr)")
                let back = try run(["predict", out, "--data", data(file)] + (ext == "weights.h5" ? ["--config", file] : []))
                XCTAssertEqual(back.status, 0, "\(file) → .\(ext): \(back.stderr)")
            }
        }
    }
}
