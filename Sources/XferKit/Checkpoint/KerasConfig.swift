// Keras model JSON (`model_config` of a full-model .h5, `config.json` of a .keras,
// `model.to_json()`) → `ModelSpec` without weights.
//
// Both flavours are read (docs/KERAS-FORMATS.md A.2.1–A.2.3): Keras 2's
// `{"class_name", "config"}` with `batch_input_shape` and list-form
// `inbound_nodes`, and Keras 3's `{"module", "class_name", "config", ...}` with
// `batch_shape`, DTypePolicy dicts and `{"args", "kwargs"}` nodes.
// Sequential and Functional models (one input, one output) are read here; each layer's own
// config is read by its op (Ops/Registry.swift finds it by class name), through the
// checked accessors of KerasLayerConfig (Ops/LayerOp.swift).

import Foundation

typealias JSONObject = [String: Any]

/// Parses a Keras model JSON. `source` names the file in errors; `kerasVersion`, the version
/// that wrote it when the file records one (else the JSON's flavour decides).
package func parseKerasModelConfig(_ json: Data, source: String, kerasVersion: String? = nil) throws -> ModelSpec {
    guard let top = try? JSONSerialization.jsonObject(with: json) as? JSONObject else {
        throw XferError.badInput(source, "the model configuration is not valid JSON",
                                 hint: "give a file written by Keras (model.to_json() or a saved model)")
    }
    return try KerasConfigParser(source: source, keras3: kerasVersion.map { $0.hasPrefix("3") }).model(top, parentName: nil)
}

struct KerasConfigParser {
    let source: String
    /// Written by Keras 3 (nil: unknown, judged by the JSON's flavour, `"module"` keys).
    var keras3: Bool? = nil

    func fail(_ what: String, hint: String? = nil) -> XferError {
        XferError.badInput(source, what, hint: hint)
    }

    /// Whether a model's own `trainable` flag survives loading the file: Keras 3 keeps it on a
    /// Functional model; tf-keras, and Keras 3 for a Sequential, do not. (It never reaches into
    /// the model's layers either way: ModelSpec.weightCounts.)
    func keepsModelFlag(_ entry: JSONObject, className: String) -> Bool {
        (keras3 ?? (entry["module"] != nil)) && className != "Sequential"
    }

    // MARK: Models

    func model(_ entry: JSONObject, parentName: String?) throws -> ModelSpec {
        let className = entry["class_name"] as? String ?? ""
        guard let config = entry["config"] as? JSONObject else {
            throw fail("model configuration has no 'config'")
        }
        let name = config["name"] as? String ?? (parentName ?? "model")
        // A model's own `trainable`, as Keras shows it after loading the file.
        let trainable = keepsModelFlag(entry, className: className) ? (config["trainable"] as? Bool ?? true) : true
        switch className {
        case "Sequential":
            return try sequential(config, name: name, trainable: trainable, buildShape: buildInputShape(entry))
        case "Functional", "Model":
            return try functional(config, name: name, className: className, trainable: trainable)
        default:
            throw fail("model class '\(className)' is not supported",
                       hint: "xfer reads Sequential and Functional models")
        }
    }

    private func buildInputShape(_ entry: JSONObject) -> [Int]? {
        if let bc = entry["build_config"] as? JSONObject, let s = bc["input_shape"] as? [Any] { return dims(s) }
        if let c = entry["config"] as? JSONObject, let s = c["build_input_shape"] as? [Any] { return dims(s) }
        return nil
    }

    private func sequential(_ config: JSONObject, name: String, trainable: Bool, buildShape: [Int]?) throws -> ModelSpec {
        guard let entries = config["layers"] as? [JSONObject] else {
            throw fail("Sequential model '\(name)' has no layer list")
        }
        var inputShape: [Int]? = buildShape
        var layers: [LayerSpec] = []
        for e in entries {
            let cls = e["class_name"] as? String ?? ""
            let cfg = e["config"] as? JSONObject ?? [:]
            if cls == "InputLayer" {
                inputShape = batchShape(cfg) ?? inputShape
                continue  // Sequential.layers omits the InputLayer
            }
            if layers.isEmpty, inputShape == nil, let s = batchShape(cfg) { inputShape = s }
            layers.append(try layer(e))
        }
        if inputShape == nil, let first = layers.first, case .model(let inner) = first.kind { inputShape = inner.inputShape }
        guard let shape = inputShape else {
            throw fail("Sequential model '\(name)' does not record its input shape",
                       hint: "give --input-shape H,W,C")
        }
        try checkUniqueNames(layers, model: name)
        return ModelSpec(name: name, className: "Sequential", inputShape: try checkedInputShape(shape, model: name),
                         layers: layers, trainable: trainable)
    }

    private func functional(_ config: JSONObject, name: String, className: String, trainable: Bool) throws -> ModelSpec {
        guard let entries = config["layers"] as? [JSONObject] else {
            throw fail("Functional model '\(name)' has no layer list")
        }
        var inputShape: [Int]?
        var layers: [LayerSpec] = []
        for e in entries {
            let cls = e["class_name"] as? String ?? ""
            let cfg = e["config"] as? JSONObject ?? [:]
            var spec = try layer(e)
            if cls == "InputLayer" {
                guard inputShape == nil else {
                    throw fail("model '\(name)' has more than one input", hint: "xfer runs models with one input")
                }
                inputShape = batchShape(cfg)
            } else {
                let nodes = try inboundNodes(e, layer: spec.name)
                spec.calls = nodes.map(\.inputs)
                spec.callTrainingFalse = nodes.first?.trainingFalse ?? false
            }
            layers.append(spec)
        }
        guard let shape = inputShape else {
            throw fail("Functional model '\(name)' has no InputLayer with a shape")
        }
        let outputs = tensorRefs(config["output_layers"])
        guard outputs.count == 1 else {
            throw fail("model '\(name)' has \(outputs.count) outputs", hint: "xfer runs models with one output")
        }
        try checkUniqueNames(layers, model: name)
        return ModelSpec(name: name, className: className == "Model" ? "Functional" : className,
                         inputShape: try checkedInputShape(shape, model: name), layers: layers, trainable: trainable,
                         output: outputs[0])
    }

    struct Node { var inputs: [TensorRef]; var trainingFalse: Bool }

    /// `output_layers`: Keras 2 `[["name", 0, 0]]`, Keras 3 `[["name", 0, 0]]` or a single `["name", 0, 0]`.
    private func tensorRefs(_ value: Any?) -> [TensorRef] {
        guard let list = value as? [Any] else { return [] }
        if let ref = tensorRef(list) { return [ref] }
        return list.compactMap { ($0 as? [Any]).flatMap(tensorRef) }
    }

    /// `["name", node, tensor, ...]`.
    private func tensorRef(_ list: [Any]) -> TensorRef? {
        guard list.count >= 3, let n = list[0] as? String, let node = exactInt(list[1]), let t = exactInt(list[2]) else { return nil }
        return TensorRef(layer: n, node: node, tensor: t)
    }

    /// Both node formats: Keras 2 `[[["prev", 0, 0, {kwargs}], ...]]` (one list of tensors per call),
    /// Keras 3 `[{"args": [...], "kwargs": {...}}]` whose keras tensors carry `keras_history`.
    private func inboundNodes(_ entry: JSONObject, layer: String) throws -> [Node] {
        guard let raw = entry["inbound_nodes"] as? [Any] else { return [] }
        return try raw.map { node -> Node in
            if let k3 = node as? JSONObject {
                var refs: [TensorRef] = []
                collectHistory(k3["args"] as Any, into: &refs)
                let kwargs = k3["kwargs"] as? JSONObject ?? [:]
                return Node(inputs: refs, trainingFalse: (kwargs["training"] as? Bool) == false)
            }
            guard var tensors = node as? [Any] else {
                throw fail("layer '\(layer)': an inbound node that is not a list", hint: "the model configuration is damaged")
            }
            // tf-keras writes a call of one tensor with constants (TFOpLambda) as the tensor
            // itself, `["prev", 0, 0, {kwargs}]`, not as a list of tensors; a second tensor
            // (`x + y`) is its kwargs' `y`.
            if tensors.first is String {
                if tensors.count == 4, let kw = tensors[3] as? JSONObject, let y = kw["y"] as? [Any], tensorRef(y) != nil {
                    tensors = [Array(tensors.prefix(3)), y]
                } else {
                    tensors = [tensors]
                }
            }
            var refs: [TensorRef] = []
            var trainingFalse = false
            for t in tensors {
                guard let t = t as? [Any], let ref = tensorRef(t) else {
                    throw fail("layer '\(layer)': an inbound tensor that is not [name, node, tensor]",
                               hint: "the model configuration is damaged; save the model again with Keras")
                }
                refs.append(ref)
                if t.count > 3, let kw = t[3] as? JSONObject, (kw["training"] as? Bool) == false { trainingFalse = true }
            }
            return Node(inputs: refs, trainingFalse: trainingFalse)
        }
    }

    /// The keras tensors in a Keras 3 call's `args`, in order (a merge layer gets a list of them).
    private func collectHistory(_ value: Any, into refs: inout [TensorRef]) {
        if let obj = value as? JSONObject {
            if obj["class_name"] as? String == "__keras_tensor__",
               let cfg = obj["config"] as? JSONObject, let h = cfg["keras_history"] as? [Any], let ref = tensorRef(h) {
                refs.append(ref)
            } else {
                for key in obj.keys.sorted() { collectHistory(obj[key]!, into: &refs) }
            }
        } else if let arr = value as? [Any] {
            for v in arr { collectHistory(v, into: &refs) }
        }
    }

    // MARK: Layers

    func layer(_ entry: JSONObject) throws -> LayerSpec {
        let cls = entry["class_name"] as? String ?? "?"
        let cfg = entry["config"] as? JSONObject ?? [:]
        let name = cfg["name"] as? String ?? entry["name"] as? String ?? "?"
        let isModel = ["Sequential", "Functional", "Model"].contains(cls)
        let keepsFlag = !isModel || keepsModelFlag(entry, className: cls)
        let trainable = keepsFlag ? (cfg["trainable"] as? Bool ?? true) : true
        let keras = KerasLayerConfig(source: source, className: cls, name: name, values: cfg,
                                     keras3: keras3 ?? (entry["module"] != nil),
                                     call: (entry["inbound_nodes"] as? [Any])?.first)
        if let df = cfg["data_format"] as? String, df != "channels_last" {
            throw keras.unsupported("data_format '\(df)' is not supported (channels_last only)")
        }
        let kind: LayerKind
        if let merge = TensorOpConfig.mergeOfTwoTensors(keras, module: entry["module"] as? String) {
            // `x + y` of two tensors (ConvNeXt's residual): the merge layer of the same math.
            return LayerSpec(name: name, className: merge.className, kind: .op(merge), trainable: trainable)
        }
        if cls == "InputLayer" {
            kind = .input
        } else if isModel {
            kind = .model(try model(entry, parentName: name))
        } else if (entry["module"] as? String)?.hasPrefix("keras.src.ops") == true {
            // A Keras 3 operation (`x / 127.5`), not the layer of the same class name (Add, Multiply, ...).
            kind = .op(try TensorOpConfig(keras3: keras))
        } else if let op = layerOpsByClassName[cls] {
            kind = .op(try op.init(keras: keras))
        } else {
            throw fail("layer '\(name)' has class \(cls), which xfer does not support",
                       hint: "supported: \(supportedLayerClasses.joined(separator: ", ")), nested Sequential/Functional")
        }
        return LayerSpec(name: name, className: cls == "Model" ? "Functional" : cls, kind: kind, trainable: trainable)
    }

    // MARK: Values

    /// An input layer's shape without the batch axis; a size Keras leaves open (`None`,
    /// as in `Input((None, None, 3))`) is −1 until `--input-shape` fills it in.
    func batchShape(_ cfg: JSONObject) -> [Int]? {
        func open(_ list: [Any]) -> [Int]? { dims(list.map { $0 is NSNull ? -1 : $0 }) }
        for key in ["batch_input_shape", "batch_shape"] {
            if let s = cfg[key] as? [Any], s.count >= 2 { return open(Array(s.dropFirst())) }
        }
        if let s = cfg["input_shape"] as? [Any] { return open(s) }
        if let s = cfg["shape"] as? [Any] { return open(s) }
        return nil
    }

    /// Drops a leading `null` (batch) if the list has one; nil if any other entry is not a number.
    func dims(_ list: [Any]) -> [Int]? {
        var l = list
        if let f = l.first, f is NSNull { l.removeFirst() }
        let ints = l.compactMap { exactInt($0) }
        return ints.count == l.count ? ints : nil
    }

    /// An input shape as xfer can run it: rank 1 to 4, each size 1...maximumSize or open (−1).
    func checkedInputShape(_ shape: [Int], model: String) throws -> [Int] {
        guard (1...4).contains(shape.count), shape.allSatisfy({ $0 == -1 || (1...Self.maximumSize).contains($0) }) else {
            throw fail("model '\(model)': input shape \(shapeText(shape)) is not a shape xfer can run",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        return shape
    }

    /// Keras refuses two layers of one model with the same name; so does xfer (their weights
    /// would land in one place).
    func checkUniqueNames(_ layers: [LayerSpec], model: String) throws {
        var seen = Set<String>()
        for l in layers where !seen.insert(l.name).inserted {
            throw fail("model '\(model)' has two layers named '\(l.name)'",
                       hint: "layer names must be unique; the model configuration is damaged")
        }
    }

    /// The largest size xfer accepts from a configuration (KerasLayerConfig.maximumSize).
    static let maximumSize = KerasLayerConfig.maximumSize
}
