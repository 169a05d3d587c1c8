// Recognising a keras.applications architecture in a weights-only file.
//
// A weights-only file (tf-keras `save_weights("x.h5")`, Keras 3 `save_weights("x.weights.h5")`)
// holds no configuration, but its layers with weights, in order (legacy) or by path (Keras 3),
// and their weight shapes pin the architecture down. The architectures are data: Keras itself
// built every family and width variant (checkpoints/make_family_architectures.py) and its
// configurations and signatures are embedded (FamilyArchitectures.swift). A file matches one when
// every layer with weights agrees — name and shapes (legacy), path and shapes (Keras 3) — except
// that a top's classifier may have any number of classes.
//
// A transfer model saved weights-only (a base model nested in a Sequential or Functional model,
// then pooling, Dropout and Dense layers) is recognised the same way: the base inside its group,
// the head from the outer layers' names and the Dense weights. Weights say nothing about
// activations: the head's hidden Dense layers are taken as relu and its last as softmax (sigmoid
// for one unit), the Dropout rate as 0.5 — stated in the line that reports the inference.

import Foundation
import ZIPFoundation

/// One keras.applications architecture of the embedded catalog.
struct FamilyArchitecture: Sendable {
    let id: String
    let label: String
    let top: Bool
    let defaultInput: [Int]
    /// Layers with weights in `model.layers` order: name, Keras 3 `.weights.h5` path, shapes.
    var signature: [(name: String, path: String, shapes: [[Int]])]
    let config: String
    /// For a top model stored as the layers it adds: the id of its base (no top) entry.
    let base: String?
    /// The names the configuration gives the layers of `signature` (the signature's own, unless
    /// this entry holds tf-keras's names for them: DenseNet's `conv1/conv`, MobileNetV3's `Conv`).
    var configNames: [String]
    /// The names of `signature` inside a nested base, as a legacy file lists its weights: without
    /// the prefix of a model nested in the family (ConvNeXt's stem).
    var innerNames: [String]

    /// "MobileNetV2 (alpha 0.35, no top)".
    func describe(classes: Int? = nil) -> String {
        var extra: [String] = []
        if !top { extra.append("no top") } else if let classes { extra.append("\(classes) classes") }
        guard !extra.isEmpty else { return label }
        if label.hasSuffix(")") { return String(label.dropLast()) + ", " + extra.joined(separator: ", ") + ")" }
        return label + " (" + extra.joined(separator: ", ") + ")"
    }
}

/// The embedded catalog, decoded once.
struct FamilyCatalog: Sendable {
    let zip: Data
    let entries: [FamilyArchitecture]

    static let shared: FamilyCatalog? = try? FamilyCatalog()

    init() throws {
        guard let zip = Data(base64Encoded: familyArchitecturesZipBase64, options: .ignoreUnknownCharacters) else {
            throw XferError.runtime("xfer", "the embedded architecture catalog is not base64")
        }
        self.zip = zip
        let index = try Self.entry("index.json", in: zip)
        guard let list = try JSONSerialization.jsonObject(with: index) as? [[String: Any]] else {
            throw XferError.runtime("xfer", "the embedded architecture catalog has no index")
        }
        var entries: [FamilyArchitecture] = []
        for e in list {
            guard let id = e["id"] as? String, let label = e["label"] as? String, let top = e["top"] as? Bool,
                  let input = e["default_input"] as? [Int], let config = e["config"] as? String,
                  let sig = e["signature"] as? [[Any]] else { continue }
            let signature = sig.compactMap { s -> (String, String, [[Int]])? in
                guard s.count == 3, let n = s[0] as? String, let p = s[1] as? String, let sh = s[2] as? [[Int]] else { return nil }
                return (n, p, sh)
            }
            let names = signature.map(\.0)
            let arch = FamilyArchitecture(id: id, label: label, top: top, defaultInput: input, signature: signature,
                                          config: config, base: e["base"] as? String, configNames: names,
                                          innerNames: names.map { String($0.split(separator: "/").last ?? "") })
            entries.append(arch)
            // tf-keras names some families' layers differently: the same architecture under those names.
            if let legacy = e["legacy_names"] as? [String], legacy.count == signature.count {
                var v = arch
                v.signature = Swift.zip(arch.signature, legacy).map { ($1, $0.path, $0.shapes) }
                v.innerNames = legacy
                entries.append(v)
            }
        }
        self.entries = entries
    }

    private static func entry(_ name: String, in zip: Data) throws -> Data {
        let archive = try Archive(data: zip, accessMode: .read)
        guard let e = archive[name] else { throw XferError.runtime("xfer", "the embedded architecture catalog has no \(name)") }
        var data = Data()
        _ = try archive.extract(e, consumer: { data.append($0) })
        return data
    }

    /// The Keras model JSON of `arch`, with `classes` outputs when its top was matched with another count.
    func configJSON(_ arch: FamilyArchitecture, classes: Int?, renames: [String: String] = [:]) throws -> Data {
        var object = try JSONSerialization.jsonObject(with: Self.entry(arch.config, in: zip)) as? [String: Any] ?? [:]
        if let base = arch.base, let b = entries.first(where: { $0.id == base }) {
            // The base's configuration with the top's input and its added layers.
            let part = object
            object = try JSONSerialization.jsonObject(with: Self.entry(b.config, in: zip)) as? [String: Any] ?? [:]
            var config = object["config"] as? [String: Any] ?? [:]
            var layers = config["layers"] as? [Any] ?? []
            if let input = part["input"], !layers.isEmpty { layers[0] = input }
            layers += part["added"] as? [Any] ?? []
            config["layers"] = layers
            config["output_layers"] = part["output_layers"]
            object["config"] = config
        }
        if arch.top, let classes, let last = arch.signature.last {
            object = Self.withClasses(object, classifier: arch.configNames.last ?? last.name, classes: classes,
                                      stored: last.shapes.last?.last ?? 0)
        }
        return try JSONSerialization.data(withJSONObject: renames.isEmpty ? object : Self.renamed(object, renames))
    }

    /// Every string of the configuration that is a renamed layer's name (its own `name`, the
    /// references to it) spelled the new way.
    private static func renamed(_ value: Any, _ renames: [String: String]) -> Any {
        if let s = value as? String { return renames[s] ?? s }
        if let a = value as? [Any] { return a.map { renamed($0, renames) } }
        if let d = value as? [String: Any] { return d.mapValues { renamed($0, renames) } }
        return value
    }

    /// The classifier (`units` or `filters`) and a Reshape to (stored,) after it set to `classes`.
    private static func withClasses(_ model: [String: Any], classifier: String, classes: Int, stored: Int) -> [String: Any] {
        var model = model
        var config = model["config"] as? [String: Any] ?? [:]
        config["layers"] = (config["layers"] as? [[String: Any]] ?? []).map { layer in
            var layer = layer
            var c = layer["config"] as? [String: Any] ?? [:]
            if c["name"] as? String == classifier {
                for key in ["units", "filters"] where c[key] != nil { c[key] = classes }
            } else if layer["class_name"] as? String == "Reshape", let t = c["target_shape"] as? [Int], t == [stored] {
                c["target_shape"] = [classes]
            }
            layer["config"] = c
            return layer
        }
        model["config"] = config
        return model
    }
}

/// What a weights-only file shows of its layers.
struct WeightsOnlyLayout {
    struct Layer {
        /// The layer's name (legacy; Keras 3: the `name` attribute of its vars, else its path).
        var name: String
        /// Keras 3: its path in its container (`conv2d_3`); legacy: nil.
        var path: String?
        var shapes: [[Int]]
        /// A nested model: its layers with weights (legacy: by inner layer name, in file order;
        /// Keras 3: by path).
        var inner: [(key: String, shapes: [[Int]])]?
    }
    var legacy: Bool
    /// In file order: legacy `layer_names` (Keras's order), Keras 3 alphabetical.
    var layers: [Layer]

    static func legacy(_ file: HDF5File) throws -> WeightsOnlyLayout {
        var out: [Layer] = []
        for name in try file.strings("/", "layer_names") ?? [] {
            let group = "/" + name
            let weights = try file.strings(group, "weight_names") ?? []
            let shapes = try weights.map { try file.shape(group + "/" + $0) }
            // Inner layer names: "conv1/kernel:0" (a nested model) against "dense/kernel:0".
            // (tf-keras DenseNet's layers are themselves named `conv1/conv`.)
            let owners = weights.map { w -> String in
                var parts = w.split(separator: "/").map(String.init).dropLast()
                if parts.count > 1, parts.first == name { parts = parts.dropFirst() }
                return parts.isEmpty ? name : parts.joined(separator: "/")
            }
            var layer = Layer(name: name, shapes: shapes)
            if Set(owners).count > 1 {
                var inner: [(String, [[Int]])] = []
                var at: [String: Int] = [:]
                for (o, s) in zip(owners, shapes) {
                    if let i = at[o] { inner[i].1.append(s) } else { at[o] = inner.count; inner.append((o, [s])) }
                }
                layer.inner = inner
            }
            out.append(layer)
        }
        return WeightsOnlyLayout(legacy: true, layers: out)
    }

    static func keras3(_ file: HDF5File) throws -> WeightsOnlyLayout {
        let container = file.kind("/layers") == .group ? "/layers" : "/_layer_checkpoint_dependencies"
        func vars(_ path: String) throws -> [[Int]] {
            let v = path + "/vars"
            guard file.kind(v) == .group else { return [] }
            let keys = try file.children(v).filter { Int($0) != nil }.sorted { Int($0)! < Int($1)! }
            return try keys.map { try file.shape("\(v)/\($0)") }
        }
        func flat(_ container: String, prefix: String) throws -> [(String, [[Int]])] {
            var out: [(String, [[Int]])] = []
            for child in try file.children(container) {
                let path = "\(container)/\(child)"
                let s = try vars(path)
                if !s.isEmpty { out.append((prefix + child, s)) }
                if file.kind(path + "/layers") == .group { out += try flat(path + "/layers", prefix: prefix + child + "/") }
            }
            return out
        }
        var out: [Layer] = []
        for child in try file.children(container) {
            let path = "\(container)/\(child)"
            let name = file.kind(path + "/vars") == .group ? ((try? file.string(path + "/vars", "name")) ?? nil) ?? child : child
            var layer = Layer(name: name, path: child, shapes: try vars(path))
            if file.kind(path + "/layers") == .group { layer.inner = try flat(path + "/layers", prefix: "") }
            out.append(layer)
        }
        return WeightsOnlyLayout(legacy: false, layers: out)
    }
}

/// The architecture inferred for a weights-only file.
struct FamilyInference {
    var model: ModelSpec
    /// What the line on stderr says: "MobileNetV2 (alpha 0.35, no top)", or the transfer model's parts.
    var description: String
    /// The input size when `--input-shape` is not given.
    var defaultInput: [Int]
    /// What the weights could not tell (a transfer model's activations and Dropout rate).
    var assumed: String?
}

extension FamilyInference {
    /// The name without Keras's uniquifying counter (`normalization_1` → `normalization`).
    static func stem(_ name: String) -> String {
        if let m = name.wholeMatch(of: #/(.*\D)_\d+/#) { return String(m.1) }
        return name
    }

    /// What a file's entries are keyed by: layer names (`outer/inner` inside a nested model), the
    /// innermost layer names (the weights of a legacy nested base name only those), Keras 3 paths.
    enum Key { case name, innerName, path }

    /// How far `entries` (key, shapes) agree with `arch`: nil mismatch when they all do (`classes`
    /// set when only a top's classifier width differs), else the first disagreement. `ordered`
    /// entries are in model order (legacy `layer_names`; names may differ by Keras's counter),
    /// others are looked up by key.
    static func compare(_ entries: [(key: String, shapes: [[Int]])], _ arch: FamilyArchitecture, key: Key, ordered: Bool)
        -> (matched: Int, mismatch: String?, classes: Int?) {
        var expected: [(key: String, shapes: [[Int]])] = []
        for (i, s) in arch.signature.enumerated() {
            switch key {
            case .name: expected.append((s.name, s.shapes))
            case .path: expected.append((s.path, s.shapes))
            case .innerName: expected.append((arch.innerNames[i], s.shapes))
            }
        }
        var got = entries
        let tolerant = key != .path
        if !ordered {
            let pairs = paired(entries, expected.map(\.key), tolerant: tolerant)
            got = pairs.compactMap { $0 }
            if got.count != entries.count || got.count != expected.count {
                let matched = zip(expected, got).prefix { $0.key == $1.key && $0.shapes == $1.shapes }.count
                if let missing = zip(expected, pairs).first(where: { $1 == nil })?.0 {
                    return (matched, "it has no weights for '\(missing.key)'", nil)
                }
                let extra = Set(entries.map(\.key)).subtracting(expected.map(\.key)).sorted().first ?? "?"
                return (matched, "'\(extra)' is not one of its layers", nil)
            }
        }
        let text = { (s: [[Int]]) in s.map { shapeText($0) }.joined(separator: ", ") }
        var matched = 0
        for (i, (e, g)) in zip(expected, got).enumerated() {
            let nameOK = e.key == g.key || (tolerant && stem(e.key) == stem(g.key))
            if nameOK && e.shapes == g.shapes { matched += 1; continue }
            // The last layer of a top: the classifier, any number of classes.
            if arch.top, i == expected.count - 1, got.count == expected.count, nameOK, e.shapes.count == g.shapes.count,
               let c = g.shapes.first?.last,
               zip(e.shapes, g.shapes).allSatisfy({ $0.dropLast() == $1.dropLast() && $1.last == c }) {
                return (matched + 1, nil, c)
            }
            if !nameOK { return (matched, "layer '\(g.key)' where it has '\(e.key)'", nil) }
            return (matched, "layer '\(g.key)' has weights \(text(g.shapes)), it expects \(text(e.shapes))", nil)
        }
        if got.count > expected.count { return (matched, "layer '\(got[expected.count].key)' is not one of its layers", nil) }
        if got.count < expected.count { return (matched, "it has no weights for '\(expected[got.count].key)'", nil) }
        return (matched, nil, nil)
    }

    /// For each expected key, the file's entry: the one of that key, else (`tolerant`) the first
    /// unclaimed one that differs only by Keras's counter (`normalization_1` for `normalization`:
    /// a second model built in one tf-keras session).
    static func paired(_ entries: [(key: String, shapes: [[Int]])], _ keys: [String], tolerant: Bool) -> [(key: String, shapes: [[Int]])?] {
        var byKey = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        let wanted = Set(keys)
        var byStem: [String: [(key: String, shapes: [[Int]])]] = [:]
        if tolerant { for e in entries where !wanted.contains(e.key) { byStem[stem(e.key), default: []].append(e) } }
        return keys.map { k in
            if let e = byKey.removeValue(forKey: k) { return e }
            guard tolerant, var list = byStem[stem(k)], !list.isEmpty else { return nil }
            let e = list.removeFirst()
            byStem[stem(k)] = list
            return e
        }
    }

    /// The layer names of `arch` that the file spells with another counter, to be renamed so
    /// (the weights of a nested base are read by name).
    static func renames(_ entries: [(key: String, shapes: [[Int]])], _ arch: FamilyArchitecture, key: Key, ordered: Bool) -> [String: String] {
        guard key != .path else { return [:] }
        let keys = key == .name ? arch.signature.map(\.name) : arch.innerNames
        let got: [(key: String, shapes: [[Int]])?] = ordered ? entries.map { $0 } : paired(entries, keys, tolerant: true)
        var out: [String: String] = [:]
        for (i, g) in got.enumerated() where i < keys.count {
            guard let g else { continue }
            // The configuration's name of the layer (innermost, for a layer of a nested model)
            // and the file's (a legacy nested base's entries are keyed by its inner names).
            let config = arch.configNames[i]
            let own = String(config.split(separator: "/").last ?? "")
            let theirs = key == .name && config.contains("/") ? String(g.key.split(separator: "/").last ?? "") : g.key
            if own != theirs { out[own] = theirs }
        }
        return out
    }

    /// The architecture as a model, with `classes` outputs if given.
    static func model(_ catalog: FamilyCatalog, _ arch: FamilyArchitecture, classes: Int?, renames: [String: String] = [:],
                      source: String) throws -> ModelSpec {
        try parseKerasModelConfig(try catalog.configJSON(arch, classes: classes, renames: renames),
                                  source: "\(source) (inferred \(arch.describe()))")
    }

    /// The architecture `entries` match exactly, else the closest one and why it does not fit.
    static func match(_ entries: [(key: String, shapes: [[Int]])], key: Key, ordered: Bool, catalog: FamilyCatalog,
                      topAllowed: Bool = true) -> (found: (arch: FamilyArchitecture, classes: Int?)?, closest: String?) {
        var best: (FamilyArchitecture, Int, String)?
        for arch in catalog.entries where topAllowed || !arch.top {
            let r = compare(entries, arch, key: key, ordered: ordered)
            guard let m = r.mismatch else { return ((arch, r.classes), nil) }
            if r.matched > (best?.1 ?? 0) { best = (arch, r.matched, m) }
        }
        guard let best else { return (nil, nil) }
        return (nil, "closest is \(best.0.describe()): \(best.1) of its \(best.0.signature.count) layers with weights agree, then \(best.2)")
    }

    /// Infers the architecture of a weights-only file, or nil when no family fits (`closest` then
    /// says which came nearest).
    static func infer(_ layout: WeightsOnlyLayout, source: String) throws -> (FamilyInference?, closest: String?) {
        guard let catalog = FamilyCatalog.shared else { return (nil, nil) }
        // A plain family: every layer with weights is one of its layers (a model nested in it,
        // as ConvNeXt's stem, lists its own as `outer/inner`).
        let entries = layout.layers.flatMap { l -> [(key: String, shapes: [[Int]])] in
            let key = layout.legacy ? l.name : l.path ?? l.name
            if let inner = l.inner { return inner.map { ("\(key)/\($0.key)", $0.shapes) } }
            return l.shapes.isEmpty ? [] : [(key, l.shapes)]
        }
        guard !entries.isEmpty else { return (nil, nil) }
        let plain = match(entries, key: layout.legacy ? .name : .path, ordered: layout.legacy, catalog: catalog)
        if let found = plain.found {
            let renames = renames(entries, found.arch, key: layout.legacy ? .name : .path, ordered: layout.legacy)
            var model = try model(catalog, found.arch, classes: found.classes, renames: renames, source: source)
            model.name = found.arch.id
            return (FamilyInference(model: model, description: found.arch.describe(classes: found.classes),
                                    defaultInput: found.arch.defaultInput), nil)
        }
        // A transfer model: one nested base, a head of known layers.
        let nested = layout.layers.filter { $0.inner != nil }
        guard nested.count == 1, let base = nested.first, let inner = base.inner else { return (nil, plain.closest) }
        let r = match(inner, key: layout.legacy ? .innerName : .path, ordered: false, catalog: catalog, topAllowed: false)
        guard let found = r.found else {
            return (nil, r.closest.map { "its nested model '\(base.name)': \($0)" } ?? plain.closest)
        }
        let renames = renames(inner, found.arch, key: layout.legacy ? .innerName : .path, ordered: false)
        var baseModel = try model(catalog, found.arch, classes: nil, renames: renames, source: source)
        baseModel.name = base.name
        let (head, said) = try self.head(layout, source: source)
        let layers = [LayerSpec(name: base.name, className: "Functional", kind: .model(baseModel))] + head
        let model = ModelSpec(name: "sequential", className: "Sequential", inputShape: found.arch.defaultInput, layers: layers)
        return (FamilyInference(model: model, description: "\(found.arch.describe()) inside '\(base.name)', then \(said)",
                                defaultInput: found.arch.defaultInput,
                                assumed: "the head's activations and Dropout rate assumed"), nil)
    }

    /// The outer layers other than the base, in model order: legacy files keep it; Keras 3 files
    /// list layers alphabetically, so the order is pooling, then the Dense layers by their counter,
    /// with the Dropout layers before the last of them (at inference Dropout is the identity).
    private static func head(_ layout: WeightsOnlyLayout, source: String) throws -> ([LayerSpec], String) {
        enum Part { case pool(LayerSpec), dense(LayerSpec), dropout(LayerSpec), other(LayerSpec) }
        var parts: [(Int, Part)] = []
        let outer = layout.layers.filter { $0.inner == nil }
        let denseCount = outer.filter { $0.shapes.count == 2 && $0.shapes[0].count == 2 }.count
        var denseSeen = 0
        for (i, l) in outer.enumerated() {
            let kind = stem(layout.legacy ? l.name : l.path ?? l.name)
            if l.shapes.count == 2, l.shapes[0].count == 2, l.shapes[1] == [l.shapes[0][1]] {
                denseSeen += 1
                let lastDense = denseSeen == denseCount
                let units = l.shapes[0][1]
                let act: Activation = lastDense ? (units == 1 ? .sigmoid : .softmax) : .relu
                let order = layout.legacy ? i : 100 + Int(l.path.flatMap { $0.wholeMatch(of: #/.*_(\d+)/#).map { min(Int($0.1) ?? 0, 1 << 30) } } ?? 0)
                parts.append((order, .dense(LayerSpec(name: l.name, op: DenseConfig(units: units, useBias: true, activation: act)))))
                continue
            }
            guard l.shapes.isEmpty else {
                throw XferError.badInput(source, "weights only, and the layer '\(l.name)' after the base (weights \(l.shapes.map { shapeText($0) }.joined(separator: ", "))) is not one xfer infers",
                                         hint: "give --config MODEL.json (model.to_json()) or a checkpoint that carries the architecture")
            }
            switch kind {
            case "input", "input_layer": continue
            case "global_average_pooling2d":
                parts.append((layout.legacy ? i : 0, .pool(LayerSpec(name: l.name, op: GlobalAveragePooling2DConfig(keepdims: false)))))
            case "global_max_pooling2d":
                parts.append((layout.legacy ? i : 0, .pool(LayerSpec(name: l.name, op: GlobalMaxPooling2DConfig(keepdims: false)))))
            case "flatten":
                parts.append((layout.legacy ? i : 0, .pool(LayerSpec(name: l.name, op: FlattenConfig()))))
            case "dropout":
                parts.append((layout.legacy ? i : -1, .dropout(LayerSpec(name: l.name, op: DropoutConfig(rate: 0.5)))))
            default:
                throw XferError.badInput(source, "weights only, and the layer '\(l.name)' after the base is not one xfer infers (pooling, Flatten, Dropout, Dense)",
                                         hint: "give --config MODEL.json (model.to_json()) or a checkpoint that carries the architecture")
            }
        }
        var layers: [LayerSpec]
        if layout.legacy {
            layers = parts.sorted { $0.0 < $1.0 }.map { p in
                switch p.1 { case .pool(let l), .dense(let l), .dropout(let l), .other(let l): return l }
            }
        } else {
            let pools = parts.compactMap { if case .pool(let l) = $0.1 { return l } else { return nil } }
            let denses = parts.filter { if case .dense = $0.1 { return true } else { return false } }.sorted { $0.0 < $1.0 }
                .compactMap { if case .dense(let l) = $0.1 { return l } else { return nil } }
            var dropouts = parts.compactMap { if case .dropout(let l) = $0.1 { return l } else { return nil } }
                .sorted { $0.name < $1.name }
            layers = pools
            for (k, d) in denses.enumerated() {
                if denses.count - k <= dropouts.count, !dropouts.isEmpty { layers.append(dropouts.removeFirst()) }
                layers.append(d)
            }
        }
        guard layers.contains(where: { $0.kind.op is DenseConfig }) else {
            throw XferError.badInput(source, "weights only: a nested base with no Dense layer after it",
                                     hint: "give --config MODEL.json (model.to_json())")
        }
        let said = layers.map { l -> String in
            if let d = l.kind.op as? DenseConfig { return "Dense \(d.units) (\(d.activation.rawValue))" }
            if l.kind.op is DropoutConfig { return "Dropout (0.5)" }
            return l.className
        }.joined(separator: " → ")
        return (layers, said)
    }

    /// The ZeroPadding2D layers keras.applications pads with `imagenet_utils.correct_pad`, whose
    /// padding depends on the size of the image reaching them (EfficientNet, MobileNetV2/V3,
    /// NASNet): the stored configurations fixed it for the size they were built at.
    static func correctPadName(_ name: String) -> Bool {
        name == "stem_conv_pad" || name.hasSuffix("dwconv_pad") || name.hasSuffix("depthwise/pad")
            || name.hasSuffix("depthwise_pad") || name.wholeMatch(of: #/block_\d+_pad/#) != nil
            || name.hasPrefix("separable_conv_1_pad_") || name.hasPrefix("reduction_pad_1_")
    }

    /// `correct_pad(x, k)` for an input of `input` (H, W, C): k // 2 after, one less before on an
    /// even side; k // 2 is the stored padding's bottom and right.
    static func correctPad(_ pad: ZeroPadding2DConfig, input: [Int]) -> ZeroPadding2DConfig {
        let (ch, cw) = (pad.bottom, pad.right)
        return ZeroPadding2DConfig(top: ch - (1 - input[0] % 2), bottom: ch, left: cw - (1 - input[1] % 2), right: cw)
    }

    /// `model` with input `shape`, and every model nested in it (a transfer model's base,
    /// ConvNeXt's stem and downsampling blocks) given the size that reaches it: the sizes the
    /// stored configuration fixed for them are opened first; the `correct_pad` paddings are
    /// worked out for the sizes reaching them, as Keras builds the model at that input size.
    static func withInputShape(_ model: ModelSpec, _ shape: [Int]) -> ModelSpec {
        func opened(_ m: ModelSpec) -> ModelSpec {
            var m = m
            for i in m.layers.indices {
                if case .model(var inner) = m.layers[i].kind {
                    inner.inputShape = inner.inputShape.enumerated().map { $0.offset == inner.inputShape.count - 1 ? $0.element : -1 }
                    m.layers[i].kind = .model(opened(inner))
                }
            }
            return m
        }
        // The input of layer i from the layers before it (Keras lists them in an order where each
        // comes after those it reads), layer i itself standing as an Identity: the layers after
        // it, and a nested model at i, need not fit yet (NASNet's adjust blocks, whose own
        // padding is fixed, do not until the correct_pad before them is worked out).
        func input(ofLayer i: Int, _ m: ModelSpec) throws -> [Int] {
            var upTo = m
            upTo.layers = Array(m.layers[...i])
            upTo.layers[i].kind = .op(IdentityConfig())
            if upTo.output != nil { upTo.output = TensorRef(layer: m.layers[i].name) }
            return try upTo.layerInputShapes()[i]
        }
        func settled(_ m: ModelSpec) throws -> ModelSpec {
            var m = m
            for i in m.layers.indices {
                if case .model(var inner) = m.layers[i].kind {
                    inner.inputShape = try input(ofLayer: i, m)
                    m.layers[i].kind = .model(try settled(inner))
                } else if let pad = m.layers[i].kind.op as? ZeroPadding2DConfig, correctPadName(m.layers[i].name) {
                    let shape = try input(ofLayer: i, m)
                    // The sizes after it change on an odd side: the layers after it see them.
                    if shape.count == 3 { m.layers[i].kind = .op(correctPad(pad, input: shape)) }
                }
            }
            return m
        }
        var model = opened(model)
        model.inputShape = shape
        // A size that does not fit is reported where the weights are read.
        return (try? settled(model)) ?? model
    }
}
