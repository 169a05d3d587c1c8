// The model-centred API: a Keras model read from any checkpoint kind, acted on with Keras's
// verbs (freeze, replace the top, summary, fit, evaluate, predict, save). It is a value: the
// methods that change it are `mutating`, and copies are independent.
//
// It is a thin layer over the engine the `xfer` command runs, so a program and the command
// line give the same model: `Checkpoint.load` reads it, `planFineTuning` freezes it and
// replaces its top (the CLI's `--freeze-until`, `--freeze`, `--trainable`, `--head`), and
// `ModelWriter` writes it in the format of the file name's extension.
//
// Freezing and the top are kept as requests on the model they started from (`source`) and
// planned again after each change, so their order does not matter: `freeze(before:)` then
// `replaceTop(with:classes:)` gives what one `xfer finetune --freeze-until --head` gives.

import Foundation

/// A Keras model: its architecture, weights, class names and preprocessing.
///
/// Read it from any checkpoint Keras writes, freeze part of it, replace its top, train it and
/// save it, as a Keras user would:
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
/// try model.freeze(before: "block3")
/// try model.replaceTop(with: [.flatten, .dense(64, activation: .relu), .dropout(0.5)], classes: 5)
/// print(model.summary())
/// ```
///
/// `KerasModel` is a value type: assigning it copies the model, and only `mutating` methods
/// (``freeze(before:)``, ``replaceTop(with:classes:loss:seed:)``, ``fit(_:epochs:batchSize:optimizer:validation:callbacks:shuffle:seed:progress:)``)
/// change it.
public struct KerasModel: Sendable {
    /// The model that freezing and a new top start from: as read, or as the last `fit` left it.
    var source: ModelSpec
    /// A new top asked for by `replaceTop` (nil: keep the model's own top).
    var head: (layers: [HeadLayer], classes: Int, seed: UInt64)?
    /// `freeze(before:)`.
    var freezeUntil: String?
    /// `freeze(layers:)` / `unfreeze(layers:)`, in call order (the last one for a name wins).
    var overrides: [(name: String, trainable: Bool)] = []
    /// What runs, trains and is written: `source` with the requests above applied.
    package private(set) var spec: ModelSpec
    /// Whether the loss was chosen here (`replaceTop`, `fit`) and so travels with the saved model.
    var lossChosen = false
    /// The optimizer of the last `fit`, and where it stopped (written with the Keras formats, so
    /// `xfer finetune --resume` continues the run).
    var trainingState: TrainingState?
    /// The file the model was read from, nil for a model made in code.
    public let path: String?
    /// The checkpoint as read, its model left out (the model is `spec`): what it records for its
    /// inputs (color mode, input size), which every file written from it carries on.
    var header: Checkpoint
    /// The channels the model's images are decoded to, when recorded or set by training.
    package var colorMode: ColorMode?

    /// The class name of each output, in output order, when the checkpoint records them (a
    /// model xfer fine-tuned) or after ``fit(_:epochs:batchSize:optimizer:validation:callbacks:shuffle:seed:progress:)``
    /// on an image folder (its subfolder names).
    public var classNames: [String]?
    /// The preprocessing the model's images need (`preprocess_input` mode), when the checkpoint
    /// records it or training set it. When nil, ``predict(image:)-(String)`` chooses as `xfer predict`
    /// does: none when the model's first layer rescales its inputs, else ``PreprocessMode/caffe``.
    public var preprocess: PreprocessMode?
    /// The loss: what training minimises and how ``evaluate(_:batchSize:)`` and `predict` read the
    /// outputs. As read: the loss the checkpoint was compiled with, else what its last
    /// activation implies (softmax: categorical cross-entropy; sigmoid: binary; linear: mse).
    public private(set) var loss: LossConfig

    /// Reads the checkpoint at `path`: a Keras 2 `.h5` (weights only, or a full model), a Keras 3
    /// `.weights.h5` or a `.keras` archive, nested models included.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k3_vgg.keras")
    /// print(model.layers.map(\.name))
    /// ```
    ///
    /// - Parameters:
    ///   - path: the checkpoint file.
    ///   - inputShape: (height, width, channels) for a checkpoint without an architecture (a VGG
    ///     weights file: default 224, 224, 3) or whose input size is open (`Input((None, None, 3))`).
    ///   - architecture: for a weights-only file of another network, a Keras model JSON
    ///     (`model.to_json()`) or a checkpoint that carries the architecture.
    /// - Throws: ``XferError`` naming the file: missing, damaged, not a Keras checkpoint, an
    ///   unsupported layer, weights that do not fit (the message `xfer import` prints).
    public init(contentsOf path: String, inputShape: [Int]? = nil, architecture: String? = nil) throws {
        if let inputShape, inputShape.count != 3 || inputShape.contains(where: { $0 <= 0 }) {
            throw XferError.usage("inputShape", "\(inputShape) is not (height, width, channels) with three positive numbers",
                                  hint: "e.g. inputShape: [224, 224, 3]")
        }
        let checkpoint = try Checkpoint.load(path, options: CheckpointLoadOptions(inputShape: inputShape, configPath: architecture))
        self.init(checkpoint)
    }

    /// Reads the checkpoint at `url` (a file URL); see ``init(contentsOf:inputShape:architecture:)-(String,_,_)``.
    ///
    /// ```swift
    /// let url = URL(fileURLWithPath: "checkpoints/fixtures/k2_vgg_full.h5")
    /// let model = try KerasModel(contentsOf: url)
    /// ```
    public init(contentsOf url: URL, inputShape: [Int]? = nil, architecture: URL? = nil) throws {
        try self.init(contentsOf: url.path, inputShape: inputShape, architecture: architecture?.path)
    }

    /// The model of a checkpoint read by the engine (the CLI's commands start here).
    package init(_ checkpoint: Checkpoint) {
        source = checkpoint.model
        spec = checkpoint.model
        path = checkpoint.path
        classNames = checkpoint.classNames
        preprocess = checkpoint.preprocess
        colorMode = checkpoint.colorMode
        loss = checkpoint.compiledLoss ?? impliedLoss(of: checkpoint.model)
        header = checkpoint
        header.model = ModelSpec(name: checkpoint.model.name, className: checkpoint.model.className, inputShape: checkpoint.model.inputShape, layers: [])
    }

    /// The checkpoint this model would be if read back: its model, and what it records.
    var checkpoint: Checkpoint {
        var c = header
        c.model = spec
        c.classNames = classNames
        c.preprocess = preprocess
        c.colorMode = colorMode
        return c
    }

    /// How the model's images are read (decoded, preprocessed), as `xfer predict` chooses it: what
    /// the model records, else what its input implies (`Checkpoint/InputSettings.swift`).
    var imageSettings: InputSettings { InputSettings(for: checkpoint, preprocess: nil, colorMode: nil) }

    /// The same model read with `loss` (nil: its own), as `xfer predict --loss` / `evaluate --loss` read it.
    package func withLoss(_ loss: LossConfig?) -> KerasModel {
        var m = self
        if let loss { m.loss = loss }
        return m
    }

    /// The model's name (Keras's `model.name`).
    public var name: String { spec.name }

    /// (height, width, channels) of one input image.
    public var inputShape: [Int] { spec.inputShape }

    /// The number of values the model outputs per sample (the classes of a classifier).
    public var outputCount: Int { (try? ModelGraph(spec).outputShape.reduce(1, *)) ?? 0 }

    // MARK: - Layers and freezing

    /// One layer as Keras's `model.summary()` lists it.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_transfer_nested.h5")
    /// for layer in model.layers { print(layer.parent ?? "-", layer.name, layer.type, layer.parameters, layer.trainable) }
    /// ```
    public struct LayerInfo: Sendable, Equatable {
        /// The layer's name (`block1_conv1`).
        public var name: String
        /// Its Keras class (`Conv2D`, `Functional` for a nested model).
        public var type: String
        /// Whether training changes its weights (Keras's `layer.trainable`).
        public var trainable: Bool
        /// Its weight count (Keras's `count_params()`).
        public var parameters: Int
        /// The nested model it belongs to, nil for a layer of the model itself.
        public var parent: String?
    }

    /// Every layer, nested models' layers after their model, in Keras's order.
    ///
    /// ```swift
    /// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// try model.freeze(before: "block3")
    /// print(model.layers.filter(\.trainable).map(\.name))   // block3_conv1, ...
    /// ```
    public var layers: [LayerInfo] {
        guard let summary = try? ModelSummary(spec) else { return [] }
        return summary.rows.map { LayerInfo(name: $0.name, type: $0.type, trainable: $0.trainable, parameters: $0.params, parent: $0.parent) }
    }

    /// Total, trainable and non-trainable parameter counts, as Keras's `model.summary()` gives them.
    public var parameterCounts: (total: Int, trainable: Int, nonTrainable: Int) {
        guard let s = try? ModelSummary(spec) else { return (0, 0, 0) }
        return (s.totalParams, s.trainableParams, s.nonTrainableParams)
    }

    /// The Keras-style table of the layers (name, type, output shape, parameters, trainable) and
    /// Keras's Total / Trainable / Non-trainable counts, as `xfer import` prints it.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// print(model.summary())
    /// ```
    public func summary() -> String {
        (try? ModelSummary(spec).render()) ?? "\(spec.name): \(spec.layers.count) layers"
    }

    /// Freezes every layer before the first one named `layer` or starting with `layer_`
    /// (`"block3"` → `block3_conv1`), layers of a nested model included, and makes the layers
    /// from there on trainable: the CLI's `--freeze-until`.
    ///
    /// ```swift
    /// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// try model.freeze(before: "block3")
    /// ```
    ///
    /// A frozen BatchNormalization layer runs in inference mode and keeps its moving statistics,
    /// as in Keras. - Throws: ``XferError`` (`.usage`) when no layer has that name, listing the layers.
    public mutating func freeze(before layer: String) throws {
        var next = self
        next.freezeUntil = layer
        try next.replan()
        self = next
    }

    /// Freezes the named layers (a nested model's name freezes every layer in it), after
    /// ``freeze(before:)``: the CLI's `--freeze`.
    ///
    /// ```swift
    /// var model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// try model.freeze(layers: ["block1_conv1", "block1_conv2"])
    /// ```
    /// - Throws: ``XferError`` (`.usage`) naming a layer the model does not have.
    public mutating func freeze(layers names: [String]) throws {
        try setTrainable(false, names)
    }

    /// Makes the named layers trainable (a nested model's name: every layer in it), after
    /// ``freeze(before:)``: the CLI's `--trainable`.
    ///
    /// ```swift
    /// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// try model.freeze(before: "block4")
    /// try model.unfreeze(layers: ["block3_conv2"])
    /// ```
    /// - Throws: ``XferError`` (`.usage`) naming a layer the model does not have.
    public mutating func unfreeze(layers names: [String]) throws {
        try setTrainable(true, names)
    }

    private mutating func setTrainable(_ trainable: Bool, _ names: [String]) throws {
        var next = self
        next.overrides += names.map { ($0, trainable) }
        try next.replan()
        self = next
    }

    /// Replaces the model's top (everything after the last convolution/pooling block) with
    /// `layers` and a final Dense layer of `classes` units, initialised as Keras initialises a
    /// new layer (Glorot-uniform kernels, zero biases, seeded). The loss decides the final
    /// activation: softmax for categorical cross-entropy, sigmoid for binary cross-entropy,
    /// linear for regression or a loss `fromLogits`. Unless ``freeze(before:)`` says otherwise,
    /// the whole base is frozen: the CLI's `--head` with `--classes` and `--loss`.
    ///
    /// ```swift
    /// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// try model.replaceTop(with: [.globalAveragePooling, .dense(64, activation: .relu)], classes: 1,
    ///                      loss: .binaryCrossentropy)
    /// ```
    ///
    /// - Throws: ``XferError`` (`.usage`) when a dense layer would get an image (start with
    ///   `.flatten` or `.globalAveragePooling`), or `classes` is not positive; (`.badInput`)
    ///   when the model has no convolution or pooling base.
    public mutating func replaceTop(with layers: [HeadLayer], classes: Int, loss: LossConfig = .categoricalCrossentropy,
                                    seed: UInt64 = 0) throws {
        guard classes > 0 else { throw XferError.usage("classes", "is \(classes); a head needs at least one output") }
        for layer in layers { try layer.check() }
        var next = self
        next.head = (layers, classes, seed)
        next.loss = loss
        next.lossChosen = true
        // The new outputs are new classes: their names come with the training data.
        next.classNames = nil
        try next.replan()
        self = next
    }

    /// Plans `source` with the requests, as one `xfer finetune` command line would, and keeps
    /// the result in `spec`. Errors name the method, not the CLI flag.
    private mutating func replan() throws {
        // The last request for a name wins; `--freeze` / `--trainable` take disjoint lists.
        var last: [String: Bool] = [:]
        for o in overrides { last[o.name] = o.trainable }
        let names = source.allLayerNames
        do {
            if head != nil || freezeUntil != nil {
                var options = FreezeOptions(freezeUntil: freezeUntil,
                                            freeze: overrides.map(\.name).filter { last[$0] == false }.uniqued(),
                                            trainable: overrides.map(\.name).filter { last[$0] == true }.uniqued(),
                                            keepTop: head == nil, head: head?.layers ?? [],
                                            classes: head?.classes ?? 1, seed: head?.seed ?? 0)
                options.finalActivation = loss.fromLogits ? .linear : loss.activation
                spec = try planFineTuning(source, options: options).model
            } else {
                // No plan: the checkpoint's own flags, with the layers named set as Keras's
                // `layer.trainable = ...` sets them (a nested model: every layer inside it).
                for o in overrides where !names.contains(o.name) {
                    throw XferError.usage(o.trainable ? "--trainable" : "--freeze", "no layer named '\(o.name)'",
                                          hint: "layers: " + names.joined(separator: ", "))
                }
                spec = setFlags(source, last, inherited: nil)
            }
        } catch var e as XferError {
            let method = ["--freeze-until": "freeze(before:)", "--freeze": "freeze(layers:)", "--trainable": "unfreeze(layers:)",
                          "--head": "replaceTop(with:)"]
            if let m = method[e.subject] { e.subject = m }
            throw e
        }
    }

    /// `model` with each layer named in `flags` (and every layer inside a nested model named
    /// there) set to its flag; a nested model is trainable while anything inside it trains.
    private func setFlags(_ model: ModelSpec, _ flags: [String: Bool], inherited: Bool?) -> ModelSpec {
        var m = model
        for i in m.layers.indices {
            let own = flags[m.layers[i].name] ?? inherited
            if case .model(let inner) = m.layers[i].kind {
                let planned = setFlags(inner, flags, inherited: own)
                m.layers[i].kind = .model(planned)
                if let own { m.layers[i].trainable = own || planned.flattenedLayers().contains { $0.trainable && $0.layer.hasWeights } }
            } else if let own {
                m.layers[i].trainable = own
            }
        }
        return m
    }

    /// The trained model becomes the one later requests start from (its head is part of it now).
    mutating func adopt(_ trained: ModelSpec) {
        source = trained
        spec = trained
        head = nil
        header.recordedInputShape = trained.inputShape
    }

    /// This model as a training run left it (`fit`, `xfer finetune`): `trained`, with the classes,
    /// preprocessing, color mode and loss of `metadata`, and the optimizer's `state`; what
    /// ``save(to:)-(String)`` then writes is what the run trained.
    package func trained(_ trained: ModelSpec, metadata: ModelMetadata, state: TrainingState?) -> KerasModel {
        var m = self
        m.adopt(trained)
        m.classNames = metadata.classNames
        m.preprocess = metadata.preprocess
        m.colorMode = metadata.colorMode
        if let loss = metadata.loss { m.loss = loss; m.lossChosen = true }
        m.trainingState = state
        return m
    }

    // MARK: - Saving

    /// What travels with the model in every format.
    var metadata: ModelMetadata {
        var m = checkpoint.recordedMetadata
        if lossChosen { m.loss = loss }
        if let optimizer = trainingState?.optimizer, lossChosen { m = m.compiled(with: optimizer) }
        return m
    }

    /// Writes the model, atomically, in the format of the file name's extension: `.h5` (a Keras 2
    /// full model, `tf_keras.models.load_model` opens it), `.keras` (Keras 3's archive),
    /// `.weights.h5` (Keras 3's `load_weights`), `.onnx` (inference). The class names, the
    /// preprocessing and the loss travel with it; after ``fit(_:epochs:batchSize:optimizer:validation:callbacks:shuffle:seed:progress:)``
    /// the Keras formats also hold the optimizer state, so `xfer finetune --resume` continues the run.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// try model.save(to: "/tmp/vgg.keras")
    /// ```
    ///
    /// - Throws: ``XferError``: `.usage` for a name whose extension is none of these (checked
    ///   before anything is written) or that is one of the files the model was read from;
    ///   `.badInput` for an `.onnx` of a layer ONNX export cannot map; `.runtime` when the disk is full.
    public func save(to path: String) throws {
        try write(to: path, trainingState: trainingState, caller: "save(to:)")
    }

    /// ``save(to:)-(String)`` to a file URL.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// try model.save(to: URL(fileURLWithPath: "/tmp/vgg.h5"))
    /// ```
    public func save(to url: URL) throws { try save(to: url.path) }

    /// Writes the model for deployment, in the format of the extension, as `xfer export` does:
    /// `.onnx` (opset 17, the whole model in inference mode, input `input` float32
    /// (batch, H, W, C), class names and preprocessing in its metadata), `.keras`,
    /// `.weights.h5` or `.h5`; no training state.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// try model.export(to: "/tmp/vgg.onnx")
    /// ```
    ///
    /// - Throws: ``XferError`` as ``save(to:)-(String)``.
    public func export(to path: String) throws {
        try write(to: path, trainingState: nil, caller: "export(to:)")
    }

    /// ``export(to:)-(String)`` to a file URL.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// try model.export(to: URL(fileURLWithPath: "/tmp/vgg.onnx"))
    /// ```
    public func export(to url: URL) throws { try export(to: url.path) }

    /// Writes the model to `path` (format by extension), never over `protecting` or the file
    /// it was read from; errors about the model itself name that file, as the CLI's do.
    package func write(to path: String, protecting inputs: [String] = [], trainingState: TrainingState?,
                       caller: String = "save(to:)") throws {
        _ = try ModelFileFormat(outputPath: path, flag: caller)
        let inputs = inputs + (self.path.map { [$0] } ?? [])
        do {
            try ModelWriter.write(spec, to: path, protecting: inputs, metadata: metadata, trainingState: trainingState)
        } catch let e as XferError where e.kind == .badInput && e.subject.hasPrefix("model '") && self.path != nil {
            throw XferError(e.kind, self.path!, "\(e.subject): \(e.message)", hint: e.hint)
        }
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each once.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
