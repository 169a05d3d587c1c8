// The freezing planner: which layers train, which are frozen, what replaces the
// top, and what each layer will have to run.
//
// Rules (docs/CONTRACT.md `xfer finetune`, Keras semantics):
// - The base is every layer up to the last convolution/pooling layer (a nested model that
//   contains one is part of the base), together with the BatchNormalization/activation/
//   padding/merge layers that directly follow it (a residual block ends in Add, ReLU). The top
//   is everything after; on a graph the new head is a chain on the base's last output.
// - Without `--keep-top`, the top is replaced by a new head (default
//   `flatten,dense:256:relu,dropout:0.5`) ending in a Dense of `classes` units whose activation
//   the loss implies (softmax; sigmoid for binary/multi-label; linear for regression),
//   initialised as Keras does: glorot-uniform kernels, zero biases (seeded).
// - `--freeze-until NAME` freezes every layer before the first layer named NAME or starting
//   with `NAME_` (layers inside a nested base count); without it the whole base is frozen.
//   `--freeze`/`--trainable` then set single layers.
// - BatchNormalization's moving mean/variance are never trainable, and a frozen BN layer runs
//   in inference mode (Keras: `training and self.trainable`). MLX and PyTorch keep a frozen
//   BN in training mode; xfer follows Keras.

import Foundation

/// What `xfer finetune` was asked to do with the layers.
package struct FreezeOptions: Sendable {
    package var freezeUntil: String?
    package var freeze: [String]
    package var trainable: [String]
    package var keepTop: Bool
    package var head: [HeadLayer]
    /// Units of the final layer of a new head.
    package var classes: Int
    /// Activation of the final layer of a new head: softmax (categorical cross-entropy),
    /// sigmoid (binary, multi-label), linear (regression, or a loss from the logits).
    package var finalActivation: Activation = .softmax
    package var seed: UInt64
    /// Keep the model as it is, trainable flags included (resuming a run xfer wrote).
    package var keepFlags = false

    package init(freezeUntil: String? = nil, freeze: [String] = [], trainable: [String] = [], keepTop: Bool = false,
                head: [HeadLayer] = [.flatten, .dense(units: 256, activation: .relu), .dropout(rate: 0.5)],
                classes: Int, seed: UInt64 = 0) {
        self.freezeUntil = freezeUntil; self.freeze = freeze; self.trainable = trainable
        self.keepTop = keepTop; self.head = head; self.classes = classes; self.seed = seed
    }
}

/// The planned model and, per executed layer (nested models flattened), what it runs.
package struct FreezePlan: Sendable {
    package var model: ModelSpec
    /// Per layer call (nested models opened up, in the order they run), what runs: from the
    /// model's `ExecutionPlan`, which the trainer and the feature cache follow too.
    package var work: [(name: String, work: LayerWork)]
    /// Index (in `work`) of the first layer whose weights train, nil if nothing trains.
    package var lowestTrainable: Int?
    /// BatchNormalization layers that are frozen and so run in inference mode.
    package var frozenBatchNorms: [String]
    /// Forward FLOPs per sample of the frozen prefix (what needs no gradient), and of all layers.
    package var prefixFLOPs: Double = 0
    package var totalFLOPs: Double = 0
    /// Per convolution layer, the core it runs on under the current `Convolution.path`:
    /// "winograd", or "im2col (why)".
    package var convolutionPaths: [String: String] = [:]
}

extension ModelSpec {
    /// Every layer in execution order, nested models replaced by their layers (the nested
    /// model's own entry is not listed), each trainable by its own flag and `enclosingTrainable`
    /// (the top model's). A nested model's own flag does not reach into its layers, as in
    /// Keras (`ModelSpec.weightCounts`).
    package func flattenedLayers(enclosingTrainable: Bool = true) -> [(layer: LayerSpec, trainable: Bool)] {
        layers.flatMap { l -> [(layer: LayerSpec, trainable: Bool)] in
            if case .model(let m) = l.kind { return m.flattenedLayers(enclosingTrainable: enclosingTrainable) }
            return [(l, enclosingTrainable && l.trainable)]
        }
    }

    /// Every layer name, nested ones included, in order (for `--freeze-until` and error messages).
    package var allLayerNames: [String] {
        layers.flatMap { l -> [String] in
            if case .model(let m) = l.kind { return [l.name] + m.allLayerNames }
            return [l.name]
        }
    }
}

/// Plans fine-tuning of `model`: freezes, replaces the top, and says what runs.
package func planFineTuning(_ source: ModelSpec, options: FreezeOptions, cacheAllowed: Bool = true) throws -> FreezePlan {
    var model = source
    // 1. Base and top.
    // A model without convolution or pooling layers (a Dense model of feature vectors) has no
    // base: it trains with --keep-top, nothing frozen unless asked.
    let foundEnd = baseEndIndex(model)
    func requireBase() throws -> Int {
        guard let foundEnd else {
            throw XferError.badInput(model.name, "has no convolution or pooling layer, so there is no base to fine-tune",
                                     hint: "use --keep-top to train the model as it is (--freeze-until NAME freezes the layers before NAME)")
        }
        return foundEnd
    }
    if !options.keepTop && !options.keepFlags {
        let baseEnd = try requireBase()
        let baseOutput = model.layers[baseEnd].name
        model.layers = Array(model.layers[...baseEnd])
        if model.isGraph { model.output = TensorRef(layer: baseOutput) }
        var shape = try model.outputShape()
        var rng = SeededRandom(seed: options.seed, stream: .headInit)
        var used = Set(model.allLayerNames)
        func unique(_ base: String) -> String {
            var name = base, k = 1
            while used.contains(name) { name = "\(base)_\(k)"; k += 1 }
            used.insert(name)
            return name
        }
        let finalLayer = HeadLayer.dense(units: options.classes, activation: options.finalActivation)
        for (i, h) in (options.head + [finalLayer]).enumerated() {
            let isFinal = i == options.head.count
            var layer: LayerSpec
            switch h {
            case .flatten:
                layer = LayerSpec(name: unique("flatten"), op: FlattenConfig())
            // On a sequence base (T, C) `gap`/`gmp` are the 1-D poolings.
            case .globalAveragePooling where shape.count == 2:
                layer = LayerSpec(name: unique("global_average_pooling1d"), op: GlobalAveragePooling1DConfig(keepdims: false))
            case .globalMaxPooling where shape.count == 2:
                layer = LayerSpec(name: unique("global_max_pooling1d"), op: GlobalMaxPooling1DConfig(keepdims: false))
            case .globalAveragePooling:
                layer = LayerSpec(name: unique("global_average_pooling2d"), op: GlobalAveragePooling2DConfig(keepdims: false))
            case .globalMaxPooling:
                layer = LayerSpec(name: unique("global_max_pooling2d"), op: GlobalMaxPooling2DConfig(keepdims: false))
            case .dropout(let rate):
                layer = LayerSpec(name: unique("dropout"), op: DropoutConfig(rate: rate))
            case .dense(let units, let activation):
                guard shape.count == 1 else {
                    throw XferError.usage("--head", "a dense layer needs a flat input but gets \(shapeText(shape))",
                                          hint: "start the head with flatten or gap")
                }
                let fanIn = shape[0]
                let limit = Float((6.0 / Double(fanIn + units)).squareRoot())
                let kernel = (0..<(fanIn * units)).map { _ in rng.uniform(-limit, limit) }
                layer = LayerSpec(name: unique(isFinal ? "predictions" : "dense"),
                                  op: DenseConfig(units: units, activation: activation),
                                  weights: [WeightSpec(role: .kernel, shape: [fanIn, units], values: kernel),
                                            WeightSpec(role: .bias, shape: [units], values: [Float](repeating: 0, count: units))])
            }
            shape = try layer.outputShape(input: shape)
            if let previous = model.output {
                // A graph: the head is a chain on the base's output.
                layer.calls = [[previous]]
                model.output = TensorRef(layer: layer.name)
            }
            model.layers.append(layer)
        }
    }

    // 2. Freezing.
    let names = model.allLayerNames
    if options.keepFlags { return try describe(model, cacheAllowed: cacheAllowed) }
    func check(_ name: String, _ flag: String) throws {
        guard names.contains(name) else {
            throw XferError.usage(flag, "no layer named '\(name)'", hint: "layers: " + names.joined(separator: ", "))
        }
    }
    var frozenNames = Set<String>()
    if let until = options.freezeUntil {
        guard let first = names.firstIndex(where: { $0 == until || $0.hasPrefix(until + "_") || $0.hasPrefix(until + "/") }) else {
            throw XferError.usage("--freeze-until", "no layer named '\(until)' or starting with '\(until)_'",
                                  hint: "layers: " + names.joined(separator: ", "))
        }
        frozenNames = Set(names[..<first])
    } else if let baseEnd = foundEnd {
        // The whole base (its layers and the nested models in it).
        for l in model.layers[...min(baseEnd, model.layers.count - 1)] {
            frozenNames.insert(l.name)
            if case .model(let m) = l.kind { frozenNames.formUnion(m.allLayerNames) }
        }
    }
    for n in options.freeze { try check(n, "--freeze") }
    for n in options.trainable { try check(n, "--trainable") }
    frozenNames.formUnion(options.freeze)
    frozenNames.subtract(options.trainable)
    model = applyFlags(model, frozen: frozenNames)
    return try describe(model, cacheAllowed: cacheAllowed)
}

/// What each layer of a planned model runs: its execution plan, by layer.
private func describe(_ model: ModelSpec, cacheAllowed: Bool) throws -> FreezePlan {
    let graph = try ModelGraph(model)
    let execution = ExecutionPlan(graph: graph, cacheAllowed: cacheAllowed)
    let work = graph.nodes.indices.map { (graph.nodes[$0].layer.name, execution.work[$0]) }
    let lowest = graph.nodes.firstIndex { $0.trainable }
    let frozenBN = graph.nodes.filter { $0.layer.op is BatchNormConfig && !$0.trainable }.map(\.layer.name)
    var plan = FreezePlan(model: model, work: work, lowestTrainable: lowest, frozenBatchNorms: frozenBN)
    for (i, node) in graph.nodes.enumerated() {
        let f = node.layer.forwardFLOPs(input: node.inputShapes[0])
        plan.totalFLOPs += f
        if execution.inPrefix(i, of: graph) { plan.prefixFLOPs += f }
        if let conv = node.layer.op as? Conv2DConfig, conv.groups == 1, let g = ConvGeometry(input: node.inputShapes[0], conv) {
            plan.convolutionPaths[node.layer.name] = ConvolutionChoice(g).description
        } else if let conv = node.layer.op as? Conv2DConfig, conv.groups > 1, conv.groups != node.inputShapes[0].last {
            // Grouped layers run each group on im2col (Engine/Layers/GroupedConv2D.swift).
            plan.convolutionPaths[node.layer.name] = "im2col (grouped)"
        }
    }
    return plan
}

/// Index of the last top-level layer of the base; nil without convolution or pooling layers.
private func baseEndIndex(_ model: ModelSpec) -> Int? {
    func isFeature(_ l: LayerSpec) -> Bool {
        switch l.kind {
        case .input: return false
        case .op(let op): return op.isFeature
        case .model(let m): return m.layers.contains(where: isFeature)
        }
    }
    guard var end = model.layers.lastIndex(where: isFeature) else { return nil }
    // Layers that finish the last block (normalisation, activation) belong to the base.
    while end + 1 < model.layers.count, model.layers[end + 1].op?.finishesBlock == true { end += 1 }
    return end
}

private func applyFlags(_ model: ModelSpec, frozen: Set<String>) -> ModelSpec {
    var m = model
    for i in m.layers.indices {
        if case .model(let inner) = m.layers[i].kind {
            let planned = applyFlags(inner, frozen: frozen)
            m.layers[i].kind = .model(planned)
            // A nested model stays trainable while anything inside it trains, as after Keras's
            // `base.trainable = True` followed by per-layer freezing.
            let anyTrainable = planned.flattenedLayers().contains { $0.trainable && $0.layer.hasWeights }
            m.layers[i].trainable = anyTrainable || !frozen.contains(m.layers[i].name)
        } else {
            m.layers[i].trainable = !frozen.contains(m.layers[i].name)
        }
    }
    m.trainable = true
    return m
}
