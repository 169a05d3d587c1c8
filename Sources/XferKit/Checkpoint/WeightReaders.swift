// Putting a file's weights into the layers of a `ModelSpec`, checking every shape.
//
// Legacy .h5 (docs/KERAS-FORMATS.md A.1.7): Keras pairs the k-th layer that has weights
// with the k-th entry of `layer_names` whose `weight_names` is not empty; names are
// ignored, and so they are here. A nested model's group lists all inner weights
// trainable-first (A.1.5), so inner weights are matched by the layer name inside
// their dataset path instead, with Keras's order as the fallback.
//
// Keras 3 .weights.h5 (A.3.1): paths are derived from the model, not from names:
// `layers/<snake_case(class)>[_k]/vars/<i>`, one counter per class and container.

import Foundation

struct LegacyWeightReader {
    let file: HDF5File
    /// "/" for save_weights files, "/model_weights" for full models.
    let root: String
    let values: WeightValues
    private(set) var nonFinite = NonFiniteLog()

    init(file: HDF5File, root: String, values: WeightValues) {
        self.file = file; self.root = root; self.values = values
    }

    mutating func share(_ log: NonFiniteLog) { nonFinite = log }

    private func groupPath(_ name: String) -> String { root == "/" ? "/\(name)" : "\(root)/\(name)" }

    func assign(to model: inout ModelSpec) throws {
        let names = try file.strings(root, "layer_names") ?? []
        var fileLayers: [(name: String, weights: [String])] = []
        for name in names {
            let w = try file.strings(groupPath(name), "weight_names") ?? []
            if !w.isEmpty { fileLayers.append((name, w)) }
        }
        let shapes = try model.layerInputShapes()
        let weighted = model.layers.indices.filter { model.layers[$0].hasWeights }
        guard weighted.count == fileLayers.count else {
            throw XferError.badInput(file.path,
                "holds weights for \(fileLayers.count) layers but the architecture has \(weighted.count) layers with weights",
                hint: "the checkpoint and the architecture (--config) do not belong together")
        }
        for (index, fileLayer) in zip(weighted, fileLayers) {
            let group = groupPath(fileLayer.name)
            if case .model(var inner) = model.layers[index].kind {
                try assignNested(&inner, group: group, names: fileLayer.weights, outerTrainable: model.layers[index].trainable)
                model.layers[index].kind = .model(inner)
            } else {
                let layer = model.layers[index]
                let expected = layer.expectedWeights(input: shapes[index])
                guard expected.count == fileLayer.weights.count else {
                    throw XferError.badInput(file.path,
                        "\(group): layer '\(layer.name)' (\(layer.className)) expects \(expected.count) weights, the file has \(fileLayer.weights.count)",
                        hint: "the checkpoint and the architecture do not belong together")
                }
                model.layers[index].weights = try zip(expected, fileLayer.weights).map { exp, stored in
                    try readWeight(group + "/" + stored, stored: stored, layer: layer.name, expected: exp)
                }
            }
        }
    }

    func readWeight(_ dataset: String, stored: String, layer: String,
                    expected: ExpectedWeight) throws -> WeightSpec {
        guard file.kind(dataset) == .dataset else {
            throw XferError.badInput(file.path, "\(dataset): weight of layer '\(layer)' is missing",
                                     hint: "the file is damaged or was not written by Keras")
        }
        let shape = try file.shape(dataset)
        guard shape == expected.shape else {
            throw XferError.badInput(file.path,
                "\(dataset): layer '\(layer)' \(expected.role) has shape \(shapeText(shape)), expected \(shapeText(expected.shape))",
                hint: "the weights do not fit this architecture (check --input-shape or --config)")
        }
        var data: [Float] = []
        switch values {
        case .load:
            data = try file.floats(dataset).values
            if data.contains(where: { !$0.isFinite }) { nonFinite.paths.append(dataset) }
        case .verify:
            var finite = true
            if let ok = try file.withContiguousFloats(dataset, { allFinite($0) }) {
                finite = ok
            } else {
                try file.scanFloats(dataset) { chunk in
                    if finite, !allFinite(chunk) { finite = false }
                }
            }
            if !finite { nonFinite.paths.append(dataset) }
        case .skip:
            break
        }
        return WeightSpec(role: expected.role, storedName: stored, shape: shape, values: data,
                          isTrainableKind: expected.trainableKind)
    }

    /// A nested model's group: weights listed flat, matched to inner layers by name.
    private func assignNested(_ model: inout ModelSpec, group: String, names: [String], outerTrainable: Bool) throws {
        // role and layer name from "block1_conv1/kernel:0" or "vgg16/block1_conv1/kernel".
        var byLayer: [String: [String: String]] = [:]
        let innerNames = Set(allWeightedLayerNames(model))
        var matched = true
        for stored in names {
            let parts = stored.split(separator: "/").map(String.init)
            guard let last = parts.last else { matched = false; break }
            let role = String(last.split(separator: ":").first ?? Substring(last))
            guard let layer = parts.dropLast().last(where: { innerNames.contains($0) }) else { matched = false; break }
            byLayer[layer, default: [:]][role] = stored
        }
        if matched {
            try assignByName(&model, group: group, byLayer: byLayer)
        } else {
            try assignByOrder(&model, group: group, names: names, outerTrainable: outerTrainable)
        }
    }

    private func allWeightedLayerNames(_ model: ModelSpec) -> [String] {
        model.layers.flatMap { l -> [String] in
            if case .model(let m) = l.kind { return allWeightedLayerNames(m) }
            return l.hasWeights ? [l.name] : []
        }
    }

    private func assignByName(_ model: inout ModelSpec, group: String, byLayer: [String: [String: String]]) throws {
        let shapes = try model.layerInputShapes()
        for i in model.layers.indices {
            if case .model(var inner) = model.layers[i].kind {
                try assignByName(&inner, group: group, byLayer: byLayer)
                model.layers[i].kind = .model(inner)
                continue
            }
            let layer = model.layers[i]
            let expected = layer.expectedWeights(input: shapes[i])
            if expected.isEmpty { continue }
            let stored = byLayer[layer.name] ?? [:]
            model.layers[i].weights = try expected.map { exp in
                guard let name = stored[exp.role.rawValue] else {
                    throw XferError.badInput(file.path, "\(group): no \(exp.role) for layer '\(layer.name)'",
                                             hint: "the checkpoint and the architecture do not belong together")
                }
                return try readWeight(group + "/" + name, stored: name, layer: layer.name, expected: exp)
            }
        }
    }

    /// Keras's own order for a nested model: every trainable weight (layer by layer), then every
    /// non-trainable one (A.1.5).
    private func assignByOrder(_ model: inout ModelSpec, group: String, names: [String], outerTrainable: Bool) throws {
        var slots: [(path: [Int], index: Int, exp: ExpectedWeight, trainable: Bool)] = []
        func collect(_ m: ModelSpec, prefix: [Int], trainable: Bool) throws {
            let shapes = try m.layerInputShapes()
            for (i, l) in m.layers.enumerated() {
                let t = trainable && l.trainable
                if case .model(let inner) = l.kind { try collect(inner, prefix: prefix + [i], trainable: t); continue }
                for (k, e) in l.expectedWeights(input: shapes[i]).enumerated() {
                    slots.append((prefix + [i], k, e, t && e.trainableKind))
                }
            }
        }
        try collect(model, prefix: [], trainable: outerTrainable && model.trainable)
        let ordered = slots.filter { $0.trainable } + slots.filter { !$0.trainable }
        guard ordered.count == names.count else {
            throw XferError.badInput(file.path, "\(group): nested model '\(model.name)' has \(names.count) weights in the file, the architecture \(ordered.count)",
                                     hint: "the checkpoint and the architecture do not belong together")
        }
        for (slot, stored) in zip(ordered, names) {
            let w = try readWeight(group + "/" + stored, stored: stored, layer: "\(model.name)", expected: slot.exp)
            setWeight(&model, path: slot.path, index: slot.index, weight: w)
        }
    }

    private func setWeight(_ model: inout ModelSpec, path: [Int], index: Int, weight: WeightSpec) {
        let i = path[0]
        if path.count > 1, case .model(var inner) = model.layers[i].kind {
            setWeight(&inner, path: Array(path.dropFirst()), index: index, weight: weight)
            model.layers[i].kind = .model(inner)
            return
        }
        var ws = model.layers[i].weights
        // Slots after `index` hold a copy until their own weight is read (every slot is).
        while ws.count <= index { ws.append(weight) }
        ws[index] = weight
        model.layers[i].weights = ws
    }
}

/// True if no value is NaN or infinite: a float is non-finite exactly when its exponent bits
/// are all ones, and a max-reduction over the masked bits vectorises.
/// Large arrays are split over the processors (reading a mapped file faults its pages in, and
/// that work then runs in parallel too).
func allFinite(_ values: UnsafeBufferPointer<Float>) -> Bool {
    let pieces = values.count > (4 << 20) ? ProcessInfo.processInfo.activeProcessorCount : 1
    if pieces == 1 { return allFiniteSerial(values) }
    let per = (values.count + pieces - 1) / pieces
    let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: pieces)
    defer { results.deallocate() }
    DispatchQueue.concurrentPerform(iterations: pieces) { i in
        let lo = i * per, hi = min(values.count, lo + per)
        results[i] = lo >= hi || allFiniteSerial(UnsafeBufferPointer(rebasing: values[lo..<hi]))
    }
    return results.allSatisfy { $0 }
}

@inline(__always)
private func allFiniteSerial(_ values: UnsafeBufferPointer<Float>) -> Bool {
    values.withMemoryRebound(to: UInt32.self) { bits in
        var m: UInt32 = 0
        for b in bits { m = max(m, b & 0x7F80_0000) }
        return m != 0x7F80_0000
    }
}

/// Datasets found to hold NaN or infinite values.
final class NonFiniteLog { var paths: [String] = [] }

struct Keras3WeightReader {
    let file: HDF5File
    let values: WeightValues
    let nonFinite = NonFiniteLog()

    func assign(to model: inout ModelSpec) throws {
        // Files from TF 2.13 put layers under `_layer_checkpoint_dependencies`.
        let container = file.kind("/layers") == .group ? "/layers" : "/_layer_checkpoint_dependencies"
        try assign(&model, container: container)
    }

    private func assign(_ model: inout ModelSpec, container: String) throws {
        let shapes = try model.layerInputShapes()
        var seen: [String: Int] = [:]
        for i in model.layers.indices {
            let layer = model.layers[i]
            let snake = kerasSnakeCase(layer.className)
            let k = seen[snake, default: 0]
            seen[snake] = k + 1
            let path = "\(container)/\(k == 0 ? snake : "\(snake)_\(k)")"
            if case .model(var inner) = layer.kind {
                try assign(&inner, container: path + "/layers")
                model.layers[i].kind = .model(inner)
                continue
            }
            let expected = layer.expectedWeights(input: shapes[i])
            if expected.isEmpty { continue }
            let vars = path + "/vars"
            guard file.kind(vars) == .group else {
                throw XferError.badInput(file.path, "\(vars): weights of layer '\(layer.name)' (\(layer.className)) are missing",
                                         hint: "the checkpoint and the architecture do not belong together")
            }
            let stored = try file.children(vars).filter { Int($0) != nil }
            guard stored.count == expected.count else {
                throw XferError.badInput(file.path, "\(vars): layer '\(layer.name)' expects \(expected.count) weights, the file has \(stored.count)",
                                         hint: "the checkpoint and the architecture do not belong together")
            }
            var reader = LegacyWeightReader(file: file, root: "/", values: values)
            reader.share(nonFinite)
            model.layers[i].weights = try expected.enumerated().map { j, exp in
                try reader.readWeight("\(vars)/\(j)", stored: "\(vars)/\(j)", layer: layer.name, expected: exp)
            }
        }
    }
}

/// Keras 3 `utils/naming.py::to_snake_case`.
func kerasSnakeCase(_ name: String) -> String {
    var s = name.replacingOccurrences(of: #"\W+"#, with: "", options: .regularExpression)
    s = s.replacingOccurrences(of: #"(.)([A-Z][a-z]+)"#, with: "$1_$2", options: .regularExpression)
    s = s.replacingOccurrences(of: #"([a-z])([A-Z])"#, with: "$1_$2", options: .regularExpression)
    return s.lowercased()
}
