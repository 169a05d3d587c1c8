// Keras model JSON (`model_config` of a full-model .h5, `config.json` of a .keras,
// `model.to_json()`) → `ModelSpec` without weights.
//
// Both flavours are read (docs/KERAS-FORMATS.md A.2.1–A.2.3): Keras 2's
// `{"class_name", "config"}` with `batch_input_shape` and list-form
// `inbound_nodes`, and Keras 3's `{"module", "class_name", "config", ...}` with
// `batch_shape`, DTypePolicy dicts and `{"args", "kwargs"}` nodes.
// Only chains are accepted: Sequential models, and Functional models in which
// every layer has one input (what VGG-style and transfer models are).

import Foundation

typealias JSONObject = [String: Any]

/// The Keras layer classes xfer reads (besides Sequential/Functional models of them).
public let supportedLayerClasses = ["InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                                    "GlobalMaxPooling2D", "Flatten", "Dense", "Dropout", "BatchNormalization", "Activation",
                                    "ReLU", "LeakyReLU", "Softmax", "Rescaling", "ZeroPadding2D"]

/// Parses a Keras model JSON. `source` names the file in errors; `kerasVersion`, the version
/// that wrote it when the file records one (else the JSON's flavour decides).
public func parseKerasModelConfig(_ json: Data, source: String, kerasVersion: String? = nil) throws -> ModelSpec {
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
        return ModelSpec(name: name, className: "Sequential", inputShape: shape, layers: layers, trainable: trainable)
    }

    private func functional(_ config: JSONObject, name: String, className: String, trainable: Bool) throws -> ModelSpec {
        guard let entries = config["layers"] as? [JSONObject] else {
            throw fail("Functional model '\(name)' has no layer list")
        }
        var inputShape: [Int]?
        var layers: [LayerSpec] = []
        var previous: String?
        for e in entries {
            let cls = e["class_name"] as? String ?? ""
            let cfg = e["config"] as? JSONObject ?? [:]
            let layerName = e["name"] as? String ?? cfg["name"] as? String ?? "?"
            let nodes = try inboundNodes(e, layer: layerName)
            if cls == "InputLayer" {
                guard inputShape == nil else {
                    throw fail("model '\(name)' has more than one input", hint: "xfer supports single-input chains")
                }
                inputShape = batchShape(cfg)
            } else {
                guard nodes.count == 1, nodes[0].inputs.count == 1 else {
                    throw fail("layer '\(layerName)' of model '\(name)' is \(nodes.count == 1 ? "fed by several tensors" : "called \(nodes.count) times")",
                               hint: "xfer supports models whose layers form a single chain")
                }
                guard nodes[0].inputs[0] == previous else {
                    throw fail("layer '\(layerName)' of model '\(name)' does not follow '\(previous ?? "the input")'",
                               hint: "xfer supports models whose layers form a single chain")
                }
            }
            var spec = try layer(e)
            if let node = nodes.first { spec.callTrainingFalse = node.trainingFalse }
            layers.append(spec)
            previous = layerName
        }
        guard let shape = inputShape else {
            throw fail("Functional model '\(name)' has no InputLayer with a shape")
        }
        return ModelSpec(name: name, className: className == "Model" ? "Functional" : className,
                         inputShape: shape, layers: layers, trainable: trainable)
    }

    struct Node { var inputs: [String]; var trainingFalse: Bool }

    /// Both node formats: Keras 2 `[[["prev", 0, 0, {kwargs}]]]`, Keras 3 `[{"args": [...], "kwargs": {...}}]`.
    private func inboundNodes(_ entry: JSONObject, layer: String) throws -> [Node] {
        guard let raw = entry["inbound_nodes"] as? [Any] else { return [] }
        return raw.map { node -> Node in
            if let k3 = node as? JSONObject {
                var names: [String] = []
                collectHistory(k3["args"] as Any, into: &names)
                let kwargs = k3["kwargs"] as? JSONObject ?? [:]
                return Node(inputs: names, trainingFalse: (kwargs["training"] as? Bool) == false)
            }
            let tensors = node as? [Any] ?? []
            var names: [String] = []
            var trainingFalse = false
            for t in tensors {
                guard let t = t as? [Any], let n = t.first as? String else { continue }
                names.append(n)
                if t.count > 3, let kw = t[3] as? JSONObject, (kw["training"] as? Bool) == false { trainingFalse = true }
            }
            return Node(inputs: names, trainingFalse: trainingFalse)
        }
    }

    private func collectHistory(_ value: Any, into names: inout [String]) {
        if let obj = value as? JSONObject {
            if obj["class_name"] as? String == "__keras_tensor__",
               let cfg = obj["config"] as? JSONObject, let h = cfg["keras_history"] as? [Any], let n = h.first as? String {
                names.append(n)
            } else {
                for v in obj.values { collectHistory(v, into: &names) }
            }
        } else if let arr = value as? [Any] {
            for v in arr { collectHistory(v, into: &names) }
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
        func unsupported(_ why: String) -> XferError {
            fail("layer '\(name)' (\(cls)): \(why)", hint: "xfer does not run this layer; see `xfer import --help` for the supported kinds")
        }
        if let df = cfg["data_format"] as? String, df != "channels_last" {
            throw unsupported("data_format '\(df)' is not supported (channels_last only)")
        }
        let kind: LayerKind
        switch cls {
        case "InputLayer":
            kind = .input
        case "Conv2D", "Convolution2D":
            if let g = cfg["groups"] as? Int, g != 1 { throw unsupported("grouped convolution (groups=\(g))") }
            kind = .conv2D(Conv2DConfig(
                filters: try int(cfg, "filters", name),
                kernelSize: try pair(cfg["kernel_size"], name, "kernel_size"),
                strides: try pair(cfg["strides"] ?? 1, name, "strides"),
                padding: try padding(cfg, name),
                dilation: try pair(cfg["dilation_rate"] ?? 1, name, "dilation_rate"),
                useBias: cfg["use_bias"] as? Bool ?? true,
                activation: try activation(cfg["activation"], name, cls)))
        case "Dense":
            kind = .dense(DenseConfig(units: try int(cfg, "units", name), useBias: cfg["use_bias"] as? Bool ?? true,
                                      activation: try activation(cfg["activation"], name, cls)))
        case "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D":
            let pool = try pair(cfg["pool_size"] ?? 2, name, "pool_size")
            let strides = cfg["strides"].flatMap { $0 is NSNull ? nil : $0 }
            let config = Pool2DConfig(poolSize: pool, strides: try strides.map { try pair($0, name, "strides") },
                                      padding: try padding(cfg, name))
            kind = cls.hasPrefix("Max") ? .maxPooling2D(config) : .averagePooling2D(config)
        case "GlobalAveragePooling2D", "GlobalAvgPool2D":
            kind = .globalAveragePooling2D(keepdims: cfg["keepdims"] as? Bool ?? false)
        case "GlobalMaxPooling2D", "GlobalMaxPool2D":
            kind = .globalMaxPooling2D(keepdims: cfg["keepdims"] as? Bool ?? false)
        case "Flatten":
            kind = .flatten
        case "Dropout":
            kind = .dropout(DropoutConfig(rate: Float(try double(cfg, "rate", name)), seed: cfg["seed"] as? Int))
        case "BatchNormalization":
            if cfg["renorm"] as? Bool == true { throw unsupported("batch renormalization is not supported") }
            if cfg["synchronized"] as? Bool == true { /* same math on one device */ }
            // Whether the axis is the last one is checked against the input's rank (Shapes.swift).
            let axis: Int
            switch cfg["axis"] {
            case nil: axis = -1
            case let a as Int: axis = a
            case let a as [Int] where a.count == 1: axis = a[0]
            default: throw unsupported("normalising over several axes (\(cfg["axis"]!)) is not supported")
            }
            kind = .batchNormalization(BatchNormConfig(
                momentum: Float(cfg["momentum"] as? Double ?? 0.99), epsilon: Float(cfg["epsilon"] as? Double ?? 1e-3),
                center: cfg["center"] as? Bool ?? true, scale: cfg["scale"] as? Bool ?? true, axis: axis))
        case "Activation":
            kind = .activation(try activation(cfg["activation"], name, cls))
        case "ReLU":
            let maxValue = (cfg["max_value"] as? Double).map { Float($0) }
            kind = .relu(ReLUConfig(maxValue: maxValue, negativeSlope: Float(cfg["negative_slope"] as? Double ?? 0),
                                    threshold: Float(cfg["threshold"] as? Double ?? 0)))
        case "Rescaling":
            guard let scale = cfg["scale"] as? Double else {
                throw unsupported("a per-channel scale (\(cfg["scale"] ?? "none")) is not supported (one number only)")
            }
            guard let offset = cfg["offset"] == nil ? 0 : cfg["offset"] as? Double else {
                throw unsupported("a per-channel offset (\(cfg["offset"]!)) is not supported (one number only)")
            }
            kind = .rescaling(scale: Float(scale), offset: Float(offset))
        case "LeakyReLU":
            // x, or slope·x below 0: ReLU with a negative slope (tf-keras `alpha`, Keras 3 `negative_slope`).
            let slope = cfg["negative_slope"] as? Double ?? cfg["alpha"] as? Double ?? 0.3
            kind = .relu(ReLUConfig(maxValue: nil, negativeSlope: Float(slope), threshold: 0))
        case "Softmax":
            let axis = cfg["axis"] as? Int ?? (cfg["axis"] as? [Int]).flatMap { $0.count == 1 ? $0[0] : nil } ?? -1
            guard axis == -1 else { throw unsupported("softmax over axis \(axis) is not supported (the last axis only)") }
            kind = .activation(.softmax)
        case "ZeroPadding2D":
            kind = .zeroPadding2D(try zeroPadding(cfg["padding"] ?? 1, name))
        case "Sequential", "Functional", "Model":
            kind = .model(try model(entry, parentName: name))
        default:
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
        let ints = l.compactMap { $0 as? Int }
        return ints.count == l.count ? ints : nil
    }

    private func int(_ cfg: JSONObject, _ key: String, _ layer: String) throws -> Int {
        guard let v = cfg[key] as? Int else { throw fail("layer '\(layer)': missing or invalid '\(key)'") }
        return v
    }

    private func double(_ cfg: JSONObject, _ key: String, _ layer: String) throws -> Double {
        guard let v = cfg[key] as? Double else { throw fail("layer '\(layer)': missing or invalid '\(key)'") }
        return v
    }

    private func pair(_ value: Any?, _ layer: String, _ key: String) throws -> (h: Int, w: Int) {
        if let v = value as? Int { return (v, v) }
        if let l = value as? [Any], l.count == 2, let a = l[0] as? Int, let b = l[1] as? Int { return (a, b) }
        throw fail("layer '\(layer)': invalid '\(key)'")
    }

    private func padding(_ cfg: JSONObject, _ layer: String) throws -> Padding {
        let p = (cfg["padding"] as? String ?? "valid").lowercased()
        guard let v = Padding(rawValue: p) else { throw fail("layer '\(layer)': padding '\(p)' is not supported (valid or same)") }
        return v
    }

    private func activation(_ value: Any?, _ layer: String, _ cls: String) throws -> Activation {
        var name: String?
        if value == nil || value is NSNull { name = "linear" }
        else if let s = value as? String { name = s }
        else if let d = value as? JSONObject {
            // Keras 3 may serialise a built-in activation as {"class_name": "function", "config": "relu", ...}.
            name = d["config"] as? String ?? (d["config"] as? JSONObject)?["name"] as? String ?? d["class_name"] as? String
        }
        guard let n = name, let a = Activation(kerasName: n) else {
            throw fail("layer '\(layer)' (\(cls)): activation '\(name ?? "?")' is not supported",
                       hint: "supported: " + Activation.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return a
    }

    private func zeroPadding(_ value: Any, _ layer: String) throws -> ZeroPadding2DConfig {
        if let v = value as? Int { return ZeroPadding2DConfig(top: v, bottom: v, left: v, right: v) }
        if let l = value as? [Any], l.count == 2 {
            if let a = l[0] as? Int, let b = l[1] as? Int { return ZeroPadding2DConfig(top: a, bottom: a, left: b, right: b) }
            if let a = l[0] as? [Any], let b = l[1] as? [Any], a.count == 2, b.count == 2,
               let t = a[0] as? Int, let bo = a[1] as? Int, let le = b[0] as? Int, let r = b[1] as? Int {
                return ZeroPadding2DConfig(top: t, bottom: bo, left: le, right: r)
            }
        }
        throw fail("layer '\(layer)': invalid ZeroPadding2D padding")
    }
}
