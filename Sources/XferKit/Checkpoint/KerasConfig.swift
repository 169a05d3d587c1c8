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
                                    "ReLU", "LeakyReLU", "Softmax", "Rescaling", "ZeroPadding2D",
                                    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]

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
            guard let tensors = node as? [Any] else {
                throw fail("layer '\(layer)': an inbound node that is not a list", hint: "the model configuration is damaged")
            }
            var refs: [TensorRef] = []
            var trainingFalse = false
            for t in tensors {
                guard let t = t as? [Any], let ref = tensorRef(t) else {
                    throw fail("layer '\(layer)': an inbound tensor that is not [name, node, tensor]",
                               hint: "xfer reads layers wired by tensors; op layers such as tf.__operators__ are not supported")
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
            if let g = cfg["groups"], exactInt(g) != 1 { throw unsupported("grouped convolution (groups=\(describe(g)))") }
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
            // Keras: "rate must be a float in the range [0, 1)".
            let rate = try double(cfg, "rate", name, in: 0...1)
            guard rate < 1 else { throw fail("layer '\(name)': Dropout rate 1 drops everything; it must be below 1") }
            kind = .dropout(DropoutConfig(rate: Float(rate), seed: exactInt(cfg["seed"])))
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
                momentum: Float(try double(cfg, "momentum", name, in: 0...1, default: 0.99)),
                epsilon: Float(try double(cfg, "epsilon", name, in: 1e-30...1e30, default: 1e-3)),
                center: cfg["center"] as? Bool ?? true, scale: cfg["scale"] as? Bool ?? true, axis: axis))
        case "Activation":
            kind = .activation(try activation(cfg["activation"], name, cls))
        case "ReLU":
            let maxValue = cfg["max_value"] == nil || cfg["max_value"] is NSNull ? nil : Float(try double(cfg, "max_value", name, in: 0...1e30))
            kind = .relu(ReLUConfig(maxValue: maxValue, negativeSlope: Float(try double(cfg, "negative_slope", name, default: 0)),
                                    threshold: Float(try double(cfg, "threshold", name, default: 0))))
        case "Rescaling":
            guard let scale = cfg["scale"] as? Double, scale.isFinite else {
                throw unsupported("a per-channel scale (\(cfg["scale"] ?? "none")) is not supported (one number only)")
            }
            guard let offset = cfg["offset"] == nil ? 0 : cfg["offset"] as? Double, offset.isFinite else {
                throw unsupported("a per-channel offset (\(cfg["offset"]!)) is not supported (one number only)")
            }
            kind = .rescaling(scale: Float(scale), offset: Float(offset))
        case "LeakyReLU":
            // x, or slope·x below 0: ReLU with a negative slope (tf-keras `alpha`, Keras 3 `negative_slope`).
            let slope = try double(cfg, cfg["negative_slope"] != nil ? "negative_slope" : "alpha", name, default: 0.3)
            kind = .relu(ReLUConfig(maxValue: nil, negativeSlope: Float(slope), threshold: 0))
        case "Softmax":
            let axis = cfg["axis"] as? Int ?? (cfg["axis"] as? [Int]).flatMap { $0.count == 1 ? $0[0] : nil } ?? -1
            guard axis == -1 else { throw unsupported("softmax over axis \(axis) is not supported (the last axis only)") }
            kind = .activation(.softmax)
        case "ZeroPadding2D":
            kind = .zeroPadding2D(try zeroPadding(cfg["padding"] ?? 1, name))
        case "Add": kind = .merge(.add)
        case "Subtract": kind = .merge(.subtract)
        case "Multiply": kind = .merge(.multiply)
        case "Average": kind = .merge(.average)
        case "Maximum": kind = .merge(.maximum)
        case "Minimum": kind = .merge(.minimum)
        case "Concatenate":
            let axis = cfg["axis"] == nil ? -1 : exactInt(cfg["axis"])
            guard let axis, axis != 0 else { throw unsupported("Concatenate axis \(describe(cfg["axis"] ?? "?")) is not supported") }
            kind = .merge(.concatenate(axis: axis))
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

    /// The largest size (filters, units, kernel, stride, padding, input side) xfer accepts from a
    /// configuration. Real models stay far below; the bound keeps every shape computation and
    /// every product of sizes inside Int64, so nothing read from a file can trap.
    static let maximumSize = 1 << 24

    /// A whole number in `minimum...maximumSize`; fractions, strings, huge and negative values are refused.
    private func size(_ value: Any?, _ layer: String, _ key: String, minimum: Int = 1) throws -> Int {
        guard let v = exactInt(value) else {
            throw fail("layer '\(layer)': \(value == nil ? "missing" : "invalid") '\(key)'\(value.map { " (\(describe($0)))" } ?? "")",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        guard v >= minimum, v <= Self.maximumSize else {
            throw fail("layer '\(layer)': '\(key)' is \(v); it must be between \(minimum) and \(Self.maximumSize)",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        return v
    }

    /// An integer written as a JSON number without a fraction (JSONSerialization gives NSNumber).
    private func exactInt(_ value: Any?) -> Int? {
        guard let n = value as? NSNumber, !isBoolean(n) else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) < 9e15 else { return nil }
        return Int(d)
    }

    /// JSON `true`/`false` also come as NSNumber; their type code is "c".
    private func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    /// A short, printable rendering of a configuration value for an error message.
    private func describe(_ value: Any) -> String {
        let text = value is NSNull ? "null" : "\(value)"
        return text.count > 40 ? String(text.prefix(40)) + "…" : text
    }

    private func int(_ cfg: JSONObject, _ key: String, _ layer: String) throws -> Int {
        try size(cfg[key], layer, key)
    }

    /// A finite number in `range` (a rate, a momentum, an epsilon).
    private func double(_ cfg: JSONObject, _ key: String, _ layer: String, in range: ClosedRange<Double> = -1e30...1e30,
                        default fallback: Double? = nil) throws -> Double {
        guard let raw = cfg[key] ?? fallback, !(raw is NSNull) || fallback != nil else {
            throw fail("layer '\(layer)': missing '\(key)'", hint: "the model configuration is damaged; save the model again with Keras")
        }
        let value = raw is NSNull ? fallback : (raw as? NSNumber).flatMap { isBoolean($0) ? nil : $0.doubleValue }
        guard let v = value, v.isFinite, range.contains(v) else {
            throw fail("layer '\(layer)': '\(key)' is \(describe(raw)); it must be a number in \(range.lowerBound)...\(range.upperBound)",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        return v
    }

    private func pair(_ value: Any?, _ layer: String, _ key: String, minimum: Int = 1) throws -> (h: Int, w: Int) {
        if let l = value as? [Any] {
            guard l.count == 2 else { throw fail("layer '\(layer)': '\(key)' must be one number or two, not \(l.count)") }
            return (try size(l[0], layer, key, minimum: minimum), try size(l[1], layer, key, minimum: minimum))
        }
        let v = try size(value, layer, key, minimum: minimum)
        return (v, v)
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
        if let l = value as? [Any], l.count == 2 {
            if l[0] is [Any] || l[1] is [Any] {
                let (t, bo) = try pair(l[0], layer, "padding", minimum: 0)
                let (le, r) = try pair(l[1], layer, "padding", minimum: 0)
                return ZeroPadding2DConfig(top: t, bottom: bo, left: le, right: r)
            }
            let (a, b) = try pair(l, layer, "padding", minimum: 0)
            return ZeroPadding2DConfig(top: a, bottom: a, left: b, right: b)
        }
        let v = try size(value, layer, "padding", minimum: 0)
        return ZeroPadding2DConfig(top: v, bottom: v, left: v, right: v)
    }
}
