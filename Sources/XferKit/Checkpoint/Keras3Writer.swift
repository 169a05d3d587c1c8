// Writing a model in Keras 3's native formats (docs/KERAS-FORMATS.md A.3):
//
//   .weights.h5   what `model.save_weights("x.weights.h5")` writes and `model.load_weights`
//                 reads on the same architecture:
//                   /vars                                attr name = the model's name
//                   /layers/<snake_case class>[_k]/vars  attr name = the layer's name; datasets
//                                                        "0", "1", ... in creation order
//                   /layers/functional/layers/...        a nested model's own layers
//   .keras        the zip `model.save("x.keras")` writes, stored (not deflated), in Keras's order:
//                 metadata.json, config.json (the model serialised as Keras 3 does: module,
//                 class_name, config, registered_name, build_config, DTypePolicy objects,
//                 `{"args", "kwargs"}` inbound nodes with `__keras_tensor__` entries) and
//                 model.weights.h5 (the layout above). `keras.models.load_model` opens it.
//
// What travels with the model and Keras ignores: class names, the preprocessing mode, the color
// mode, the input size and the
// loss (root attributes of the .weights.h5; an "xfer" object in metadata.json), and the training state for
// `--resume` (the group /xfer_training_state beside the weights). A .keras archive keeps exactly
// the three members, since Keras reads a fourth as assets.
//
// Both are written through `writeAtomically` (Support/AtomicWrite.swift).

import Foundation
import ZIPFoundation

package enum Keras3Writer {
    /// The Keras version recorded in metadata.json: the Keras 3 the files are tested with.
    package static let kerasVersion = "3.15.1"

    /// Writes `model` as a Keras 3 `.weights.h5` at `path`.
    package static func writeWeights(_ model: ModelSpec, to path: String, protecting inputs: [String] = [],
                                    metadata: ModelMetadata = .init(), trainingState: TrainingState? = nil) throws {
        try writeAtomically(path, protecting: inputs, create: HDF5File.create) { file in
            try writeWeightsFile(model, to: file, metadata: metadata, trainingState: trainingState)
        }
    }

    /// Writes `model` as a Keras 3 `.keras` archive at `path`.
    package static func writeArchive(_ model: ModelSpec, to path: String, protecting inputs: [String] = [],
                                    metadata: ModelMetadata = .init(), trainingState: TrainingState? = nil) throws {
        let config = try JSONSerialization.data(withJSONObject: try Keras3ConfigWriter.model(model), options: [.sortedKeys])
        var meta: [String: Any] = ["keras_version": kerasVersion, "date_saved": dateSaved()]
        let extra = metadata.json
        if !extra.isEmpty { meta["xfer"] = extra }
        let metaData = try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys])
        // The weights file is made in memory, then stored in the archive.
        let weightsFile = try HDF5File.createInMemory(path: "\(path): model.weights.h5")
        try writeWeightsFile(model, to: weightsFile, metadata: metadata, trainingState: trainingState)
        let weights = try weightsFile.fileImage()
        // The archive is built in memory (stored members, as Keras writes them), then written atomically.
        let zip: Data
        do {
            let archive = try Archive(data: Data(), accessMode: .create)
            for (name, data) in [("metadata.json", metaData), ("config.json", config), ("model.weights.h5", weights)] {
                try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count),
                                     compressionMethod: .none, bufferSize: 1 << 20) { position, size in
                    data.subdata(in: Int(position)..<Int(position) + size)
                }
            }
            guard let bytes = archive.data else { throw XferError.runtime(path, "cannot build the archive") }
            zip = bytes
        } catch let e as XferError {
            throw e
        } catch {
            throw XferError.runtime(path, "cannot build the archive (\(error))")
        }
        try writeAtomically(path, protecting: inputs, contents: zip)
    }

    static func writeWeightsFile(_ model: ModelSpec, to file: HDF5File, metadata: ModelMetadata,
                                 trainingState: TrainingState?) throws {
        try metadata.writeAttributes(to: file)
        if let loss = metadata.loss {
            let json = try JSONSerialization.data(withJSONObject: loss.kerasConfig, options: [.sortedKeys])
            try file.setString("/", "loss", String(decoding: json, as: UTF8.self), utf8: true)
        }
        try writeVars(model, inner: "", to: file)
        if let trainingState { try trainingState.write(to: file) }
        try file.flush()
    }

    /// `_save_state` of Keras 3 for `model` at `inner` ("" for the file's root).
    private static func writeVars(_ model: ModelSpec, inner: String, to file: HDF5File) throws {
        try vars(inner, name: model.name, file)
        let container = inner + "/layers"
        try file.createGroup(container)
        var seen: [String: Int] = [:]
        for layer in Keras3ConfigWriter.kerasLayers(model) {
            // Path components are snake_case class names, numbered per container (A.3.1): the
            // reader (Keras3WeightReader) walks the same way.
            let snake = kerasSnakeCase(Keras3ConfigWriter.className(layer))
            let k = seen[snake, default: 0]
            seen[snake] = k + 1
            let path = "\(container)/\(k == 0 ? snake : "\(snake)_\(k)")"
            try file.createGroup(path)
            if case .model(let m) = layer.kind {
                try writeVars(m, inner: path, to: file)
                continue
            }
            let group = try vars(path, name: layer.name, file)
            // Creation order, which every kind here keeps as kernel, bias / gamma, beta, moving statistics.
            let ordered = WeightRole.allCases.compactMap { layer.weight($0) }
            for (i, w) in ordered.enumerated() {
                try file.write("\(group)/\(i)", shape: w.shape, floats: w.values)
            }
        }
    }

    @discardableResult
    private static func vars(_ inner: String, name: String, _ file: HDF5File) throws -> String {
        let group = inner.isEmpty ? "/vars" : inner + "/vars"
        try file.createGroup(group)
        try file.setString(group, "name", name, utf8: true)
        return group
    }

    private static func dateSaved() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd@HH:mm:ss"
        return f.string(from: Date())
    }
}

/// The Keras 3 serialisation of a model (`serialization_lib.serialize_keras_object`, A.2.2), as
/// `config.json` holds it. Each layer's keys are written by its op (`LayerOp.writeKeras`); the
/// few Keras 3 spells differently are renamed here.
enum Keras3ConfigWriter {
    static let dtypePolicy: [String: Any] = [
        "module": "keras", "class_name": "DTypePolicy", "config": ["name": "float32"], "registered_name": NSNull(),
    ]

    /// `[null, H, W, C]`, open sizes as null.
    static func batchShape(_ shape: [Int]) -> [Any] {
        [NSNull()] + shape.map { $0 < 0 ? NSNull() as Any : $0 as Any }
    }

    /// The Keras 3 class of a layer: a nested model is a `Functional` (old files say `Model`)
    /// or a `Sequential`; an op is written under its own class, an alias under its canonical name.
    static func className(_ l: LayerSpec) -> String {
        switch l.kind {
        case .input: return "InputLayer"
        case .model(let m): return m.className == "Sequential" ? "Sequential" : "Functional"
        case .op(let op): return type(of: op).kerasClassNames.contains(l.className) ? l.className : op.kerasClassName
        }
    }

    /// The layers as Keras 3's `model.layers` lists them: a Functional model with its InputLayer
    /// (one is added when a chain was built without it), a Sequential without.
    static func kerasLayers(_ m: ModelSpec) -> [LayerSpec] {
        let layers = m.layers.filter { if case .input = $0.kind { return m.className != "Sequential" } else { return true } }
        if m.className != "Sequential", !layers.contains(where: { if case .input = $0.kind { return true } else { return false } }) {
            return [LayerSpec(name: inputName(m), className: "InputLayer", kind: .input)] + layers
        }
        return layers
    }

    /// The InputLayer's name: the model's own, else Keras 3's automatic one.
    static func inputName(_ m: ModelSpec) -> String {
        m.layers.first(where: { if case .input = $0.kind { return true } else { return false } })?.name ?? "input_layer"
    }

    /// The top model's serialisation.
    static func model(_ m: ModelSpec) throws -> [String: Any] {
        let graph = try ModelGraph(m)
        return serialize(m, graph: graph, prefix: "", inputShape: m.inputShape, trainable: m.trainable)
    }

    static func inputLayer(_ name: String, shape: [Int]) -> [String: Any] {
        ["module": "keras.layers", "class_name": "InputLayer", "registered_name": NSNull(),
         "config": ["batch_shape": batchShape(shape), "dtype": "float32", "sparse": false, "ragged": false,
                    "name": name, "optional": false] as [String: Any]]
    }

    private static func serialize(_ m: ModelSpec, graph: ModelGraph, prefix: String, inputShape: [Int], trainable: Bool) -> [String: Any] {
        func shapes(_ l: LayerSpec) -> (inputs: [[Int]], output: [Int]) {
            if case .input = l.kind { return ([inputShape], inputShape) }
            return graph.layerShapes[prefix + l.name] ?? ([inputShape], inputShape)
        }
        func entry(_ l: LayerSpec) -> [String: Any] {
            let s = shapes(l)
            switch l.kind {
            case .input:
                var e = inputLayer(l.name, shape: inputShape)
                if m.className == "Sequential" { return e }
                e["name"] = l.name
                e["inbound_nodes"] = [Any]()
                return e
            case .model(let inner):
                // Keras 3 keeps a nested model's own flag and each inner layer's beside it (a
                // frozen base with one layer unfrozen trains that layer), as Keras writes them.
                return serialize(inner, graph: graph, prefix: prefix + l.name + "/", inputShape: s.inputs[0],
                                 trainable: inner.trainable)
            case .op(let t as TensorOpConfig):
                return ["module": t.keras3Module, "class_name": t.keras3ClassName,
                        "config": t.keras3Config.merging(["name": l.name]) { $1 },
                        "registered_name": t.keras3ClassName]
            case .op(let op):
                let cls = className(l)
                var c: [String: Any] = ["name": l.name, "trainable": l.trainable, "dtype": dtypePolicy]
                op.writeKeras(&c, className: cls)
                // tf-keras's LeakyReLU takes `alpha`, Keras 3's `negative_slope`.
                if cls == "LeakyReLU", let a = c.removeValue(forKey: "alpha") { c["negative_slope"] = a }
                // Keras 3's SpatialDropout layers take no `trainable` argument (their get_config
                // leaves it out, and from_config would fail on it).
                if cls.hasPrefix("SpatialDropout") { c.removeValue(forKey: "trainable") }
                let built: Any = op.takesSeveralInputs ? s.inputs.map(batchShape) : batchShape(s.inputs[0])
                let registration = op.keras3Registration
                return ["module": registration?.module ?? "keras.layers", "class_name": registration?.name ?? cls, "config": c,
                        "registered_name": registration.map { $0.name as Any } ?? NSNull(),
                        "build_config": ["input_shape": built]]
            }
        }

        let layers = kerasLayers(m)
        if m.className == "Sequential" {
            let config: [String: Any] = ["name": m.name, "trainable": trainable, "dtype": dtypePolicy,
                                         "layers": [inputLayer(inputName(m), shape: inputShape)] + layers.map(entry),
                                         "build_input_shape": batchShape(inputShape)]
            return ["module": "keras", "class_name": "Sequential", "config": config, "registered_name": NSNull(),
                    "build_config": ["input_shape": batchShape(inputShape)]]
        }

        // A Functional model: every layer's calls as Keras 3 nodes. A chain built without calls
        // links each layer to the one before.
        let input = inputName(m)
        var calls: [String: [[TensorRef]]] = [:]
        var output: TensorRef
        if let out = m.output {
            for l in layers { calls[l.name] = l.calls }
            output = out
        } else {
            var previous = input
            for l in layers {
                if case .input = l.kind { continue }
                calls[l.name] = [[TensorRef(layer: previous)]]
                previous = l.name
            }
            output = TensorRef(layer: previous)
        }
        let byName = Dictionary(layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // Keras 3 numbers the calls of a layer inside this model from 0, nested models too.
        func history(_ ref: TensorRef) -> [Any] {
            let count = calls[ref.layer]?.count ?? 0
            return [ref.layer, count > 1 ? ref.node : 0, 0]
        }
        func tensor(_ ref: TensorRef) -> [String: Any] {
            let shape = byName[ref.layer].map { shapes($0).output } ?? inputShape
            return ["class_name": "__keras_tensor__",
                    "config": ["shape": batchShape(shape), "dtype": "float32", "keras_history": history(ref)] as [String: Any]]
        }
        var entries: [[String: Any]] = []
        for l in layers {
            var e = entry(l)
            e["name"] = l.name
            if case .input = l.kind {
                e["inbound_nodes"] = [Any]()
            } else {
                let several = l.op?.takesSeveralInputs ?? false
                let kwargs: [String: Any] = l.callTrainingFalse ? ["training": false] : [:]
                e["inbound_nodes"] = (calls[l.name] ?? []).map { refs -> [String: Any] in
                    var args: [Any] = several ? [refs.map(tensor)] : refs.map(tensor)
                    if let t = l.op as? TensorOpConfig {
                        // The constant is the call's other argument (Keras 3 operations).
                        if let c = t.constantArgument(keras3: true, rank: shapes(l).inputs[0].count + 1) { args.append(c) }
                    }
                    return ["args": args, "kwargs": kwargs]
                }
            }
            entries.append(e)
        }
        let config: [String: Any] = ["name": m.name, "trainable": trainable, "layers": entries,
                                     "input_layers": [input, 0, 0], "output_layers": history(output)]
        return ["module": "keras.src.models.functional", "class_name": "Functional", "config": config,
                "registered_name": "Functional", "build_config": ["input_shape": NSNull()]]
    }
}
