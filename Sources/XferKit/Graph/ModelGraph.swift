// A model opened up into what the engine runs: one node per layer call, nested models
// inlined, in an order where every node comes after the nodes it reads (topological).
//
// Values are numbered: 0 is the model's input, node i writes value i + 1. A Sequential model
// (and a nested one) is a chain; a Functional model is wired by its layers' `calls` (Keras's
// inbound nodes). Everything a reader of the file could get wrong is checked here, once: a
// reference to a layer that does not exist, a call that is not there, a cycle, more than one
// input or output, shapes that do not fit.
//
// Keras's rules kept as metadata on each node:
// - which weights train: a layer's own flag and the top model's; a nested model's own flag does
//   not reach into its layers (Keras 3 keeps the flag per variable, tf-keras drops a nested
//   model's flag on load: ModelSpec.weightCounts) — `trainable` below is the one place;
// - a layer inside a nested model called with `training=False`, or itself called so, always
//   runs in inference mode.

/// One call of one layer.
package struct GraphNode: Sendable {
    /// `name`, or `outer/inner` for a layer of a nested model: the key of its weights.
    package var path: String
    package var layer: LayerSpec
    /// Which call of the layer this is (a shared layer is called more than once).
    package var call: Int
    /// The values it reads, in the order Keras passes them.
    package var inputs: [Int]
    /// The value it writes (its index + 1).
    package var output: Int
    package var inputShapes: [[Int]]
    package var outputShape: [Int]
    /// Its weights train (Keras's rule, see the file header); false for weightless layers.
    package var trainable: Bool
    /// Inside a nested model called with `training=False`: inference mode always.
    package var inferenceOnly: Bool
}

/// A model as the engine runs it.
package struct ModelGraph: Sendable {
    package private(set) var nodes: [GraphNode] = []
    /// Shape of each value (value 0: the input).
    package private(set) var valueShapes: [[Int]]
    /// The value the model outputs.
    package private(set) var output = 0
    /// Per layer path (nested models included, under their own path): the input and output
    /// shapes of its first call, for weight layouts and the summary table.
    package private(set) var layerShapes: [String: (inputs: [[Int]], output: [Int])] = [:]

    package var inputShape: [Int] { valueShapes[0] }
    package var outputShape: [Int] { valueShapes[output] }

    /// Opens up `model`; `source` names the file in errors.
    package init(_ model: ModelSpec, source: String? = nil) throws {
        valueShapes = [model.inputShape]
        output = try inline(model, input: 0, prefix: "", enclosingTrainable: model.trainable, inference: false,
                            source: source ?? "model '\(model.name)'")
    }

    /// Replaces the layer a node runs (the trainer strips the final softmax); shapes must stay.
    mutating func replaceLayer(ofNode i: Int, with layer: LayerSpec) { nodes[i].layer = layer }

    /// The consumers of each value, by node index.
    package func consumers() -> [[Int]] {
        var c = [[Int]](repeating: [], count: valueShapes.count)
        for (i, n) in nodes.enumerated() { for v in n.inputs { c[v].append(i) } }
        return c
    }

    private mutating func add(_ layer: LayerSpec, path: String, call: Int, inputs: [Int], trainable: Bool,
                              inference: Bool, source: String) throws -> Int {
        let shapes = inputs.map { valueShapes[$0] }
        let out: [Int]
        do {
            out = try layer.outputShape(inputs: shapes)
        } catch let e as XferError {
            throw XferError.badInput(source, "layer '\(layer.name)': \(e.message)", hint: e.hint)
        }
        let value = valueShapes.count
        valueShapes.append(out)
        nodes.append(GraphNode(path: path, layer: layer, call: call, inputs: inputs, output: value,
                               inputShapes: shapes, outputShape: out, trainable: trainable && layer.trainable && layer.hasWeights,
                               inferenceOnly: inference))
        if layerShapes[path] == nil { layerShapes[path] = (shapes, out) }
        return value
    }

    /// Adds `model`'s nodes reading `input`; returns the value of its output.
    private mutating func inline(_ model: ModelSpec, input: Int, prefix: String, enclosingTrainable: Bool,
                                 inference: Bool, source: String) throws -> Int {
        func call(_ layer: LayerSpec, _ k: Int, _ inputs: [Int]) throws -> Int {
            let path = prefix + layer.name
            if case .model(let inner) = layer.kind {
                guard inputs.count == 1 else {
                    throw XferError.badInput(source, "nested model '\(layer.name)' is given \(inputs.count) inputs",
                                             hint: "xfer runs models with one input")
                }
                let given = valueShapes[inputs[0]]
                let fits = inner.inputShape.count == given.count && zip(inner.inputShape, given).allSatisfy { $0 == $1 || $0 < 0 }
                guard fits || inner.inputShape.isEmpty else {
                    throw XferError.badInput(source, "nested model '\(layer.name)' expects input \(shapeText(inner.inputShape)) but is given \(shapeText(given))")
                }
                let out = try inline(inner, input: inputs[0], prefix: path + "/", enclosingTrainable: enclosingTrainable,
                                     inference: inference || layer.callTrainingFalse, source: source)
                if layerShapes[path] == nil { layerShapes[path] = ([given], valueShapes[out]) }
                return out
            }
            // A layer called with training=False (tf-keras's functional API) runs in inference mode.
            return try add(layer, path: path, call: k, inputs: inputs, trainable: enclosingTrainable,
                           inference: inference || layer.callTrainingFalse, source: source)
        }

        guard let outputRef = model.output else {
            // A chain: each layer takes the previous one's output.
            var current = input
            for layer in model.layers {
                if case .input = layer.kind { continue }
                current = try call(layer, 0, [current])
            }
            return current
        }

        // A graph: resolve each call once all the tensors it reads exist.
        var produced: [String: [Int]] = [:]   // layer name -> value of each call
        let byName = Dictionary(model.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func value(_ ref: TensorRef, for reader: String) throws -> Int? {
            guard let layer = byName[ref.layer] else {
                throw XferError.badInput(source, "layer '\(reader)' of model '\(model.name)' reads '\(ref.layer)', which the model does not have",
                                         hint: "the model configuration is damaged; save the model again with Keras")
            }
            guard ref.tensor == 0 else {
                throw XferError.badInput(source, "layer '\(reader)' reads output \(ref.tensor) of '\(ref.layer)', which has one output")
            }
            guard let calls = produced[ref.layer] else { return nil }
            let expected = max(layer.calls.count, 1)
            // One call: any node index names it (tf-keras numbers a nested model's call 1, its own
            // creation being node 0); several: the node index is the call.
            let k = expected == 1 ? 0 : ref.node
            guard k >= 0, k < expected else {
                throw XferError.badInput(source, "layer '\(reader)' reads call \(ref.node) of '\(ref.layer)', which is called \(expected) time(s)",
                                         hint: "the model configuration is damaged; save the model again with Keras")
            }
            return k < calls.count ? calls[k] : nil
        }
        var pending: [(layer: LayerSpec, call: Int)] = []
        var inputs = 0
        for layer in model.layers {
            if case .input = layer.kind {
                inputs += 1
                produced[layer.name] = [input]
            } else {
                guard !layer.calls.isEmpty else {
                    throw XferError.badInput(source, "layer '\(layer.name)' of model '\(model.name)' is never called",
                                             hint: "the model configuration is damaged; save the model again with Keras")
                }
                for k in layer.calls.indices { pending.append((layer, k)) }
            }
        }
        guard inputs == 1 else {
            throw XferError.badInput(source, "model '\(model.name)' has \(inputs) inputs", hint: "xfer runs models with one input")
        }
        while !pending.isEmpty {
            var progressed = false
            var rest: [(layer: LayerSpec, call: Int)] = []
            for p in pending {
                // A call waits for the earlier calls of its own layer too, so values keep call order.
                guard (produced[p.layer.name]?.count ?? 0) == p.call else { rest.append(p); continue }
                var values: [Int] = []
                for ref in p.layer.calls[p.call] {
                    guard let v = try value(ref, for: p.layer.name) else { break }
                    values.append(v)
                }
                guard values.count == p.layer.calls[p.call].count else { rest.append(p); continue }
                guard !values.isEmpty else {
                    throw XferError.badInput(source, "layer '\(p.layer.name)' of model '\(model.name)' is called with no input")
                }
                let v = try call(p.layer, p.call, values)
                produced[p.layer.name, default: []].append(v)
                progressed = true
            }
            guard progressed else {
                let names = Set(rest.map(\.layer.name)).sorted().prefix(5).joined(separator: ", ")
                throw XferError.badInput(source, "model '\(model.name)': layers \(names) read each other in a cycle",
                                         hint: "the model configuration is damaged; save the model again with Keras")
            }
            pending = rest
        }
        guard let out = try value(outputRef, for: "the model's output") else {
            throw XferError.badInput(source, "model '\(model.name)' outputs '\(outputRef.layer)', which is never computed")
        }
        return out
    }
}
