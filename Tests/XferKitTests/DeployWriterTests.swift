// The files people deploy: Keras 3 `.keras` / `.weights.h5` and ONNX. Each reads back into
// xfer identically, carries the class names and preprocessing, and is laid out as Keras 3
// itself lays out the same model (the Keras-written `k3_*.keras` fixtures are the oracle).
// That Keras 3 and onnxruntime load them and predict the same is checked by
// checkpoints/check_deploy_outputs.py.

import SwiftProtobuf
import XCTest
import ZIPFoundation
@testable import XferKit

final class DeployWriterTests: XCTestCase {
    let metadata = ModelMetadata(classNames: ["cat", "dog", "bird"], preprocess: .caffe)

    func load(_ entry: Fixtures.Entry) throws -> Checkpoint {
        let o = Fixtures.options(entry)
        return try Checkpoint.load(Fixtures.path(entry.file), options: .init(inputShape: o.inputShape, configPath: o.config))
    }

    func predictions(_ model: ModelSpec, _ io: String) throws -> [Float] {
        let predictor = try Predictor(model: model)
        return try predictor.predict(try DataSource(path: Fixtures.path(io))).probabilities.values
    }

    func maxError(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    /// Every fixture written as .keras and .weights.h5 reads back with the same weights and
    /// predictions, and with its metadata.
    func testKeras3OutputsReadBackIdentically() throws {
        let dir = try Fixtures.tempDir(self)
        for entry in try Fixtures.index() where entry.error == nil && entry.io != nil {
            let original = try load(entry)
            let archive = dir.appendingPathComponent("\(entry.name).keras").path
            let weights = dir.appendingPathComponent("\(entry.name).weights.h5").path
            try ModelWriter.write(original.model, to: archive, metadata: metadata)
            try ModelWriter.write(original.model, to: weights, metadata: metadata)

            let a = try Checkpoint.load(archive)
            XCTAssertEqual(a.format, .keras3Archive)
            XCTAssertEqual(a.kerasVersion, Keras3Writer.kerasVersion)
            XCTAssertEqual(a.classNames, metadata.classNames)
            XCTAssertEqual(a.preprocess, .caffe)
            let w = try Checkpoint.load(weights, options: .init(configPath: archive))
            XCTAssertEqual(w.format, .keras3Weights)
            XCTAssertEqual(w.classNames, metadata.classNames)
            XCTAssertEqual(w.preprocess, .caffe)
            for back in [a, w] {
                XCTAssertEqual(try ModelSummary(back.model).totalParams, try ModelSummary(original.model).totalParams, entry.file)
                XCTAssertEqual(try ModelSummary(back.model).trainableParams, try ModelSummary(original.model).trainableParams, entry.file)
                let e = maxError(try predictions(original.model, entry.io!), try predictions(back.model, entry.io!))
                XCTAssertEqual(e, 0, "\(entry.file) → \(back.path)")
            }
        }
    }

    /// The .keras archive is what Keras 3 writes: three stored members in Keras's order.
    func testArchiveHasKerasMembersInOrder() throws {
        let dir = try Fixtures.tempDir(self)
        let out = dir.appendingPathComponent("m.keras").path
        try Keras3Writer.writeArchive(try Checkpoint.load(Fixtures.path("k2_zoo.h5")).model, to: out, metadata: metadata)
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        XCTAssertEqual(Array(data.prefix(4)), [0x50, 0x4B, 0x03, 0x04])
        // Local headers in order: name at offset 30, compression method 0 (stored) at offset 8.
        var names: [String] = []
        var offset = 0
        while offset + 30 <= data.count, data[offset] == 0x50, data[offset + 1] == 0x4B, data[offset + 2] == 3, data[offset + 3] == 4 {
            func u16(_ at: Int) -> Int { Int(data[offset + at]) | Int(data[offset + at + 1]) << 8 }
            func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
            XCTAssertEqual(u16(8), 0, "members are stored, as Keras writes them")
            let nameLength = u16(26), extra = u16(28)
            names.append(String(decoding: data[(offset + 30)..<(offset + 30 + nameLength)], as: UTF8.self))
            offset += 30 + nameLength + extra + u32(18)
        }
        XCTAssertEqual(names, ["metadata.json", "config.json", "model.weights.h5"])
    }

    /// All dataset and group paths of an HDF5 file (the `vars` groups with their `name`).
    func tree(_ file: HDF5File, _ group: String = "/") throws -> [String] {
        var out: [String] = []
        for child in try file.children(group) {
            let path = (group == "/" ? "" : group) + "/" + child
            if group == "/" && (child == "optimizer" || child == TrainingState.group.dropFirst()) { continue }
            if file.kind(path) == .group {
                let name = file.hasAttribute(path, "name") ? " name=\(try file.string(path, "name") ?? "")" : ""
                out.append(path + name)
                out += try tree(file, path)
            } else {
                out.append("\(path) \(try file.shape(path))")
            }
        }
        return out
    }

    /// xfer's model.weights.h5 has Keras 3's own paths, names and shapes for every Keras 3 fixture.
    func testWeightsLayoutIsKeras3s() throws {
        let dir = try Fixtures.tempDir(self)
        for entry in try Fixtures.index() where entry.error == nil && entry.file.hasSuffix(".keras") {
            let out = dir.appendingPathComponent("\(entry.name).keras").path
            try Keras3Writer.writeArchive(try load(entry).model, to: out)
            let keras = try CheckpointReader(path: Fixtures.path(entry.file), options: .init(values: .skip)).archiveWeights()
            let mine = try CheckpointReader(path: out, options: .init(values: .skip)).archiveWeights()
            XCTAssertEqual(try tree(mine), try tree(keras), entry.file)
        }
    }

    /// What matters in config.json, projected from each layer entry (recursively): module, class,
    /// registered name, layer name, trainable flag, the calls' keras_history and `training`.
    func projection(_ object: Any) -> [String] {
        guard let o = object as? [String: Any] else { return [] }
        var lines: [String] = []
        let config = o["config"] as? [String: Any] ?? [:]
        let registered = o["registered_name"].map { $0 is NSNull ? "null" : "\($0)" } ?? "-"
        lines.append("\(o["module"] ?? "-") \(o["class_name"] ?? "-") \(registered) \(config["name"] ?? "-") trainable=\(config["trainable"] ?? "-")")
        if let nodes = o["inbound_nodes"] as? [[String: Any]] {
            for node in nodes {
                func histories(_ v: Any) -> [String] {
                    if let list = v as? [Any] { return list.flatMap(histories) }
                    if let t = v as? [String: Any], let c = t["config"] as? [String: Any], let h = c["keras_history"] as? [Any] {
                        return ["\(h)"]
                    }
                    return []
                }
                let training = (node["kwargs"] as? [String: Any])?["training"].map { "\($0)" } ?? "-"
                lines.append("  call \(histories(node["args"] ?? [])) training=\(training)")
            }
        }
        if let ins = config["input_layers"] { lines.append("  inputs \(ins)") }
        if let outs = config["output_layers"] { lines.append("  outputs \(outs)") }
        for layer in config["layers"] as? [Any] ?? [] { lines += projection(layer) }
        return lines
    }

    /// config.json agrees with what Keras 3 wrote for the same model, for every Keras 3 fixture.
    func testConfigIsSerialisedAsKeras3Does() throws {
        let dir = try Fixtures.tempDir(self)
        for entry in try Fixtures.index() where entry.error == nil && entry.file.hasSuffix(".keras") {
            let out = dir.appendingPathComponent("\(entry.name).keras").path
            try Keras3Writer.writeArchive(try load(entry).model, to: out)
            func config(_ path: String) throws -> Any {
                let archive = try XCTUnwrap(Archive(url: URL(fileURLWithPath: path), accessMode: .read))
                var data = Data()
                _ = try archive.extract(try XCTUnwrap(archive["config.json"])) { data.append($0) }
                return try JSONSerialization.jsonObject(with: data)
            }
            XCTAssertEqual(projection(try config(out)), projection(try config(Fixtures.path(entry.file))), entry.file)
        }
    }

    // MARK: ONNX

    func testONNXGraphHasNHWCInputOpsetAndMetadata() throws {
        let model = try Checkpoint.load(Fixtures.path("k2_vgg_bn.h5")).model
        let bytes = try ONNXWriter.serialize(model, metadata: metadata)
        let proto = try Onnx_ModelProto(serializedBytes: bytes)
        XCTAssertEqual(proto.opsetImport.first?.version, 17)
        let input = proto.graph.input[0].type.tensorType.shape.dim
        XCTAssertEqual(input.first?.dimParam, "batch")
        XCTAssertEqual(input.dropFirst().map(\.dimValue), model.inputShape.map(Int64.init))
        let output = proto.graph.output[0].type.tensorType.shape.dim
        XCTAssertEqual(output.dropFirst().map(\.dimValue), try model.outputShape().map(Int64.init))
        let props = Dictionary(uniqueKeysWithValues: proto.metadataProps.map { ($0.key, $0.value) })
        XCTAssertEqual(props["class_names"], #"["cat","dog","bird"]"#)
        XCTAssertEqual(props["preprocess"], "caffe")
        XCTAssertEqual(props["input_layout"], "NHWC")
        let ops = Set(proto.graph.node.map(\.opType))
        XCTAssertTrue(ops.isSuperset(of: ["Transpose", "Conv", "BatchNormalization", "MaxPool", "Flatten", "Gemm", "Softmax"]), "\(ops)")
        XCTAssertFalse(ops.contains("Dropout"), "inference: Dropout is the identity")
    }

    /// Every op of Ops/Registry.swift has an ONNX mapping: exporting every fixture succeeds.
    func testEveryFixtureExports() throws {
        for entry in try Fixtures.index() where entry.error == nil {
            XCTAssertNoThrow(try ONNXWriter.serialize(try load(entry).model), entry.file)
        }
    }

    /// A setting without an ONNX mapping is one error naming the layer (exit 3).
    func testUnsupportedSettingNamesTheLayer() throws {
        let bn = LayerSpec(name: "odd_norm", op: BatchNormConfig(), weights: [
            WeightSpec(role: .gamma, shape: [5], values: [Float](repeating: 1, count: 5)),
            WeightSpec(role: .beta, shape: [5], values: [Float](repeating: 0, count: 5)),
            WeightSpec(role: .movingMean, shape: [5], values: [Float](repeating: 0, count: 5), isTrainableKind: false),
            WeightSpec(role: .movingVariance, shape: [5], values: [Float](repeating: 1, count: 5), isTrainableKind: false),
        ])
        // A rank-4 sample: ONNX normalises axis 1, and only images and sequences are transposed to it.
        let model = ModelSpec(name: "m", className: "Sequential", inputShape: [2, 3, 4, 5], layers: [bn])
        XCTAssertThrowsError(try ONNXWriter.serialize(model)) { error in
            let e = error as? XferError
            XCTAssertEqual(e?.kind, .badInput)
            XCTAssertTrue(e?.message.contains("odd_norm") ?? false, "\(error)")
            XCTAssertTrue(e?.message.contains("BatchNormalization") ?? false, "\(error)")
        }
    }

    // MARK: Formats by extension

    func testFormatIsChosenByExtension() throws {
        XCTAssertEqual(ModelFileFormat(path: "a/b.h5"), .kerasH5)
        XCTAssertEqual(ModelFileFormat(path: "b.HDF5"), .kerasH5)
        XCTAssertEqual(ModelFileFormat(path: "b.keras"), .keras)
        XCTAssertEqual(ModelFileFormat(path: "b.weights.h5"), .kerasWeights)
        XCTAssertEqual(ModelFileFormat(path: "b.onnx"), .onnx)
        for bad in ["b.tflite", "b", "b.json", ".h5", "b.pb", "saved_model/"] {
            XCTAssertNil(ModelFileFormat(path: bad), bad)
            XCTAssertThrowsError(try ModelFileFormat(outputPath: bad, flag: "--output")) { error in
                XCTAssertEqual((error as? XferError)?.kind, .usage, bad)
            }
        }
    }

    func testFailedArchiveWriteLeavesNothingBehind() throws {
        let dir = try Fixtures.tempDir(self)
        let model = try Checkpoint.load(Fixtures.path("k2_zoo.h5")).model
        XCTAssertThrowsError(try ModelWriter.write(model, to: dir.appendingPathComponent("missing/out.keras").path))
        XCTAssertThrowsError(try ModelWriter.write(model, to: dir.appendingPathComponent("missing/out.onnx").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }
}
