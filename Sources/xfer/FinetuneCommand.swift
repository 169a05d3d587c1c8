// `xfer finetune CHECKPOINT --data DATA [options]`: plan the freeze, train what the
// plan leaves trainable, write the model in the format of --output's extension (a Keras 2
// full-model .h5 by default; .keras, .weights.h5, .onnx).

import ArgumentParser
import Foundation
import XferKit

extension OptimizerKind: ExpressibleByArgument {}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a Keras checkpoint on labelled DATA and write the model (.h5, .keras, .weights.h5 or .onnx).",
        discussion: """
        By default the whole base (everything up to the last convolution/pooling block) is frozen \
        and the top is replaced by a new head trained from scratch. A frozen BatchNormalization \
        layer runs in inference mode and never updates its moving statistics, as in Keras.
        """)

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).", completion: .file())
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(name: .long, help: ArgumentHelp("Freeze every layer before the first layer named NAME or starting with NAME_ (block5 → block5_conv1).", valueName: "NAME"))
    var freezeUntil: String?

    @Option(name: .long, help: ArgumentHelp("Freeze these layers (after --freeze-until).", valueName: "NAME,..."))
    var freeze: String?

    @Option(name: .long, help: ArgumentHelp("Make these layers trainable (after --freeze-until).", valueName: "NAME,..."))
    var trainable: String?

    @Flag(name: .long, help: "Keep the checkpoint's own top layers and train them; no new head.")
    var keepTop = false

    @Option(name: .long, help: "Size of the new softmax head (default: the number of classes in DATA).")
    var classes: Int?

    @Option(name: .long, help: ArgumentHelp(
        "The loss: categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy, mse, mae, huber[:DELTA].",
        discussion: "Default: with --keep-top or --resume the loss the checkpoint was compiled with (training_config / "
            + "compile_config), else what its last activation implies; for a new head categorical_crossentropy, or "
            + "binary_crossentropy when y holds multi-hot rows (regression needs --loss: a fractional y is refused, never "
            + "taken for numbers). binary_crossentropy gives a new head one sigmoid unit (two classes, 0/1), or one per "
            + "column of a multi-hot y; mse, mae and huber one linear unit per column of y.", valueName: "LOSS"))
    var loss: String?

    @Option(name: .long, help: ArgumentHelp("Keras label_smoothing of the cross-entropies.", valueName: "F"))
    var labelSmoothing: Float?

    @Flag(name: .long, help: "The head outputs logits (no softmax/sigmoid): Keras's from_logits=True.")
    var fromLogits = false

    @Option(name: .long, help: ArgumentHelp("Keras's class_weight: 'balanced' (N / (classes × count)) or a JSON map of class id (or name) to weight.", valueName: "balanced|JSON"))
    var classWeight: String?

    @Option(name: .long, help: ArgumentHelp(
        "The new head, before its final dense layer (softmax, sigmoid or linear, as the loss implies).",
        discussion: "SPEC is a comma-separated list of layers, applied in order on the base's output: flatten; "
            + "gap (GlobalAveragePooling2D); gmp (GlobalMaxPooling2D); dense:UNITS[:ACTIVATION] (relu, sigmoid, "
            + "tanh, softmax, linear, ...; default linear); dropout:RATE (0 <= RATE < 1); or none for no layers. "
            + "Example: --head gap,dense:128:relu,dropout:0.3 gives GlobalAveragePooling2D -> Dense(128, relu) -> "
            + "Dropout(0.3) -> the final Dense.", valueName: "SPEC"))
    var head: String = Self.defaultHead
    static let defaultHead = "flatten,dense:256:relu,dropout:0.5"

    @Option(name: .long, help: "Epochs.")
    var epochs: Int = 10

    @Option(name: .long, help: "sgd, adam or rmsprop (Keras's update rules and defaults; default: sgd).")
    var optimizer: OptimizerKind?

    @Option(name: .long, help: "Learning rate (default: Keras's, 0.01 for sgd, 0.001 for adam and rmsprop).")
    var lr: Float?

    @Option(name: .long, help: "Momentum (sgd, rmsprop; default: 0).")
    var momentum: Float?

    @Flag(name: .long, help: "Nesterov momentum (sgd).")
    var nesterov = false

    @Option(name: .long, help: "Seed for the new head's initial weights, shuffling and dropout (default: 0; with --resume, the run's).")
    var seed: UInt64?

    @Flag(inversion: .prefixedNo, help: "Shuffle the training samples every epoch.")
    var shuffle = true

    @Option(name: .long, help: ArgumentHelp("Where to write the fine-tuned model, in the format of the extension: .h5 (Keras 2 full model), .keras or .weights.h5 (Keras 3), .onnx (default: <checkpoint name>-finetuned.h5 in the current folder).", valueName: "OUT.h5"), completion: .file())
    var output: String?

    @Flag(name: .long, help: "Print the freeze plan (the import table after freezing, with the new head) and stop.")
    var dryRun = false

    @Option(name: .long, help: ArgumentHelp("Held-out DATA evaluated after each epoch.", valueName: "DATA"), completion: .file())
    var validationData: String?

    @Option(name: .long, help: ArgumentHelp("Hold out this fraction of each class of DATA for validation (seeded).", valueName: "F"))
    var validationSplit: Double?

    @Flag(name: .long, help: "Do not cache the frozen prefix's output (it is computed every epoch instead).")
    var noCache = false

    @Option(name: .long, help: ArgumentHelp("Stop after this many epochs without improvement of --monitor and restore the best weights.", valueName: "PATIENCE"))
    var earlyStopping: Int?

    @Option(name: .long, help: "Metric for --early-stopping and --reduce-lr-on-plateau: loss, the loss's metric (accuracy, binary_accuracy, mae) and their val_ twins (default val_loss with validation data, else loss).")
    var monitor: String?

    @Option(name: .long, help: ArgumentHelp("Halve the learning rate after this many epochs without improvement of --monitor.", valueName: "PATIENCE"))
    var reduceLrOnPlateau: Int?

    @Option(name: .long, help: ArgumentHelp(
        "Random augmentations of the training images, on the fly, as Keras's preprocessing layers (turns the feature cache off).",
        discussion: "flip[:horizontal|vertical|horizontal_and_vertical] (RandomFlip), rotation:F (RandomRotation: up to ±F of a "
            + "full turn), zoom:H[:W] (RandomZoom), translation:H[:W] (RandomTranslation: fractions of the height and width), "
            + "contrast:F (RandomContrast: × 1 − F…1 + F), brightness:F (RandomBrightness: ± F of 0…255), crop (a random box of "
            + "80–100 % resized back). Fill mode reflect, bilinear, as Keras's defaults; seeded by --seed. "
            + "E.g. flip,rotation:0.1,zoom:0.2,contrast:0.2.", valueName: "NAME[:F],..."))
    var augment: String?

    @Option(name: .long, help: ArgumentHelp(
        "Phase 2 of Keras's fine-tuning recipe: after --epochs, make every layer from the first one named NAME (or NAME_...) on trainable, recompile with a fresh optimizer and train --then-epochs more.",
        discussion: "Phase 1 trains as planned (the head, from the feature cache); phase 2 freezes every layer before NAME, "
            + "keeps the BatchNormalization layers phase 1 kept frozen in inference mode (Keras's base(inputs, training=False)), "
            + "and starts a new optimizer (no state, step 0) at --then-lr, as model.compile(optimizer=...) after unfreezing. "
            + "Epochs are numbered across both phases; --csv-log gains a phase column, --plot a line between the phases.",
        valueName: "NAME"))
    var thenUnfreeze: String?

    @Option(name: .long, help: "Epochs of phase 2 (default: --epochs).")
    var thenEpochs: Int?

    @Option(name: .long, help: "Learning rate of phase 2's new optimizer (default: phase 1's / 100, as Keras's guide goes from 1e-3 to 1e-5).")
    var thenLr: Float?

    @Option(name: .long, help: "Optimizer of phase 2: sgd, adam or rmsprop, with phase 1's momentum and Nesterov (default: phase 1's kind), new state.")
    var thenOptimizer: OptimizerKind?

    @Option(name: .long, help: ArgumentHelp("Also write the model each time --monitor improves (the format of the extension, as --output).", valueName: "OUT.h5"), completion: .file())
    var saveBest: String?

    @Flag(name: .long, help: ArgumentHelp(
        "CHECKPOINT is a file xfer finetune wrote: continue its training up to --epochs (the total).",
        discussion: "Keeps the run's weights, freeze and head, its optimizer (kind, momentum, state), the epochs done, "
            + "the learning rate and the seed; --lr and --seed override those two. It restores --augment, "
            + "--class-weight, --preprocess, --color-mode and --no-shuffle when they are not given; any option of "
            + "the run given with another value (--head, --freeze-until, --loss, --optimizer, --augment, ...) is "
            + "refused, naming both. DATA, --batch-size, validation and callbacks come from this command line. "
            + "A --save-best file resumes from the epoch it was saved at."))
    var resume = false

    @Option(name: .long, help: ArgumentHelp("Write epoch,loss,accuracy,val_loss,val_accuracy,lr per epoch.", valueName: "FILE"), completion: .file())
    var csvLog: String?

    @Option(name: .long, help: ArgumentHelp("Draw the loss and accuracy curves as an SVG (the name must end in .svg).", valueName: "FILE.svg"), completion: .file())
    var plot: String?

    var monitorName: String { monitor ?? ((validationData != nil || validationSplit != nil) ? Metric.valLoss : Metric.loss).rawValue }
    /// The metric `--monitor` names (or the default).
    var monitorMetric: Metric { Metric(rawValue: monitorName) }

    /// Refuses a `--monitor` that training with `metric` will not log (exit 2, before any work).
    func checkMonitor(_ metric: TrainingMetric) throws {
        let metrics = Metric.available(metric, validation: validationData != nil || validationSplit != nil)
        if (earlyStopping != nil || reduceLrOnPlateau != nil || saveBest != nil || monitor != nil) && !metrics.contains(monitorMetric) {
            throw XferError.usage("--monitor", "\(monitorName) will not exist; available: \(metrics.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func validate() throws {
        if let f = validationSplit, !(f > 0 && f < 1) { throw ValidationError("--validation-split must be between 0 and 1") }
        if validationSplit != nil && validationData != nil { throw ValidationError("give --validation-data or --validation-split, not both") }
        if let ls = labelSmoothing, !(ls >= 0 && ls <= 1) { throw ValidationError("--label-smoothing must be in [0, 1]") }
        if let p = earlyStopping, p < 1 { throw ValidationError("--early-stopping takes a patience of at least 1") }
        // --resume with options of the run: ResumeOptions.swift (restoringRun), once the file is read.
        if let p = reduceLrOnPlateau, p < 1 { throw ValidationError("--reduce-lr-on-plateau takes a patience of at least 1") }
        if thenUnfreeze == nil && (thenEpochs != nil || thenLr != nil || thenOptimizer != nil) {
            throw ValidationError("--then-epochs, --then-lr and --then-optimizer set phase 2, which --then-unfreeze NAME starts")
        }
        if thenUnfreeze != nil && resume {
            throw ValidationError("--resume continues one run's optimizer; drop --then-unfreeze (or run both phases without --resume)")
        }
        if let e = thenEpochs, e < 1 { throw ValidationError("--then-epochs must be positive") }
        if let lr = thenLr, !(lr > 0) { throw ValidationError("--then-lr must be positive") }
        if let k = thenOptimizer, nesterov && k != .sgd { throw ValidationError("--nesterov applies to sgd, and --then-optimizer is \(k.rawValue)") }
        guard epochs > 0 else { throw ValidationError("--epochs must be positive") }
        if let classes, classes < 1 { throw ValidationError("--classes must be positive") }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
        if let momentum, !(momentum >= 0 && momentum < 1) { throw ValidationError("--momentum must be in [0, 1)") }
        if nesterov && (optimizer ?? .sgd) != .sgd { throw ValidationError("--nesterov applies to --optimizer sgd") }
    }

    static func names(_ list: String?) -> [String] {
        (list ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        // Before any work (docs/CONTRACT.md, "Outputs"): the files, then each one's format by its extension.
        try checkOutputs(outputFiles, inputs: inputFiles)
        _ = try ModelFileFormat(outputPath: output ?? defaultOutput(), flag: "--output")
        if let saveBest { _ = try ModelFileFormat(outputPath: saveBest, flag: "--save-best") }
        if let plot, !plot.lowercased().hasSuffix(".svg") || (plot as NSString).lastPathComponent.count <= 4 {
            let ext = (plot as NSString).pathExtension
            throw XferError.usage("--plot \(plot)", ext.isEmpty ? "has no extension" : "names a .\(ext) file, and xfer draws the curves as SVG",
                                  hint: "end the name in .svg")
        }
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        let data = try dataOptions.open(for: loaded)
        let ownTop = keepTop || resume
        // The model's own top knows its classes by name: DATA's labels follow those names.
        if ownTop, let names = loaded.classNames { try data.matchClasses(to: names) }
        let (lossConfig, lossSource) = try chooseLoss(loaded, data: data, ownTop: ownTop)
        let categorical = lossConfig.kind.isCategorical
        if categorical {
            _ = try data.requireClassLabels(for: "fine-tuning", loss: lossConfig)
            try data.checkTrainable()
        }
        let classCount = classes ?? data.classCount
        // The new head's units: the classes of a softmax, one sigmoid unit (or one per label of a
        // multi-hot y), one output per column of a regression y.
        let headUnits: Int
        switch lossConfig.kind {
        case .categoricalCrossentropy, .sparseCategoricalCrossentropy: headUnits = classCount
        case .binaryCrossentropy: headUnits = data.kind == .arrays ? data.targetWidth : 1
        default: headUnits = data.targetWidth
        }
        if let classes, !categorical, !ownTop, classes != headUnits {
            throw XferError.usage("--classes", "is \(classes) but a \(lossConfig.kind.shortName) head on \(dataOptions.data) has \(headUnits) output\(headUnits == 1 ? "" : "s")",
                                  hint: "--classes sizes a softmax head; drop it")
        }
        var state: TrainingState?
        if resume {
            guard let s = try TrainingState.read(checkpoint) else {
                throw XferError.badInput(checkpoint, "holds no training state to resume",
                                         hint: "--resume takes a file written by xfer finetune")
            }
            state = s
            if s.epochsDone >= epochs {
                throw XferError.usage("--epochs", "the run already did \(s.epochsDone) epochs; ask for more to continue")
            }
        }
        let seed = self.seed ?? state?.seed ?? 0
        var options = FreezeOptions(freezeUntil: freezeUntil, freeze: Self.names(freeze), trainable: Self.names(trainable),
                                    keepTop: keepTop, head: try parseHead(head), classes: headUnits, seed: seed)
        options.finalActivation = lossConfig.fromLogits ? .linear : lossConfig.activation
        options.keepFlags = resume
        let augmentations = try augment.map { try parseAugmentations($0, preprocess: dataOptions.preprocess ?? .caffe) } ?? []
        if !augmentations.isEmpty && data.kind != .images {
            throw XferError.usage("--augment", "applies to image folders, and DATA is an HDF5 file")
        }
        let plan = try planFineTuning(loaded.model, options: options, cacheAllowed: !noCache && augmentations.isEmpty)
        // An .onnx output of a model ONNX cannot express fails now, not after training.
        if ([output ?? defaultOutput()] + (saveBest.map { [$0] } ?? [])).contains(where: { ModelFileFormat(path: $0) == .onnx }) {
            try namingCheckpoint(checkpoint) { try ONNXWriter.checkExportable(plan.model) }
        }
        for path in [output ?? defaultOutput()] + (saveBest.map { [$0] } ?? []) { try ModelWriter.checkFormat(plan.model, path) }

        // Training and validation samples.
        var trainIndices = Array(0..<data.count)
        var validation: (data: DataSource, indices: [Int])?
        // Stratified by class for a classifier with one class per sample; one stratum otherwise.
        let splitClasses = categorical ? classCount : (lossConfig.kind == .binaryCrossentropy && headUnits == 1 ? 2 : 1)
        if let f = validationSplit {
            let strata = splitClasses == 1 ? [Int](repeating: 0, count: data.count) : (data.targetClasses ?? [])
            let split = stratifiedSplit(labels: strata, classes: splitClasses, fraction: f, seed: seed)
            trainIndices = split.training
            validation = (data, split.validation)
            if splitClasses == 1 {
                say("Validation split \(f) (seed \(seed)): \(split.training.count)/\(split.validation.count) (train/validation)")
            } else {
                let names = data.classNames ?? (0..<splitClasses).map(String.init)
                say("Validation split \(f) (stratified, seed \(seed)): " + split.perClass.enumerated().map { i, c in
                    "\(i < names.count ? names[i] : String(i)) \(c.train)/\(c.validation)" }.joined(separator: ", ") + " (train/validation)")
            }
        } else if let path = validationData {
            let v = try dataOptions.read.open(path, for: loaded)
            if let names = data.classNames { try v.matchClasses(to: names, theirs: "\(dataOptions.data)'s") }
            if categorical { _ = try v.requireLabels(for: "validation") }
            validation = (v, Array(0..<v.count))
        }
        let outputs = plan.model.flattenedLayers().last.map { l -> Int in
            if let d = l.layer.op as? DenseConfig { return d.units }
            return classCount
        } ?? classCount
        let trainingMetric = TrainingMetric.for(lossConfig, units: outputs)
        try checkMonitor(trainingMetric)
        printPlan(plan, data: data)
        say("Loss: \(lossConfig) (\(lossSource)); head: \(headDescription(plan.model, lossConfig)); metric: \(trainingMetric.name)")
        if let line = dataOptions.read.inputLine(for: loaded, data: data) { say(line) }
        // Phase 2's plan, from phase 1's flags: a layer name that does not exist fails now.
        let unfreezing = try thenUnfreeze.map { try planUnfreezing(plan.model, from: $0, cacheAllowed: !noCache && augmentations.isEmpty) }
        if let unfreezing, dryRun {
            say("")
            say("Phase 2, after epoch \(epochs): " + phaseTwoText(unfreezing))
            if let summary = try? ModelSummary(unfreezing.plan.model) {
                var cells: [String: String] = [:]
                for w in unfreezing.plan.work { cells[w.name] = w.work.rawValue + (unfreezing.plan.convolutionPaths[w.name].map { " · " + $0 } ?? "") }
                say(summary.render(title: unfreezing.plan.model.name, extra: ("Runs", cells)))
            }
        }
        if dryRun { return }
        // DATA against the model, before any expensive work: its samples' shape, and its classes
        // against the softmax (Keras fails on a label at or above the units; fewer classes train,
        // but some outputs then never see a sample).
        try data.checkFits(inputShape: plan.model.inputShape)
        if keepTop, let classes, classes != outputs {
            throw XferError.usage("--classes", "is \(classes) but the kept top has \(outputs) outputs",
                                  hint: "--classes sizes a new head; drop it, or drop --keep-top")
        }
        if let classes, !ownTop, categorical, data.highestLabel >= classes {
            throw XferError.usage("--classes", "\(classes) is fewer than the \(data.highestLabel + 1) classes of \(dataOptions.data)",
                                  hint: "give --classes \(data.highestLabel + 1) or more, or leave it out to use the data's")
        }
        do { try data.checkTargets(for: lossConfig, units: outputs, purpose: "fine-tuning") } catch var e as XferError {
            if keepTop && categorical && e.message.contains("output") {
                e.hint = "the kept top has \(outputs) outputs; drop --keep-top to train a new head of \(data.classCount) classes"
            }
            throw e
        }
        if categorical && data.classCount < outputs {
            let source = ownTop ? "the model's top has \(outputs) outputs" : "--classes is \(outputs)"
            warn("\(dataOptions.data): has \(data.classCount) classes but \(source): outputs \(data.classCount)..\(outputs - 1) "
                 + "get no samples and are only trained to be unlikely")
        }
        if let v = validation?.data, v !== data {
            try v.checkFits(inputShape: plan.model.inputShape)
            try v.checkTargets(for: lossConfig, units: outputs, purpose: "validation")
        }

        let output = self.output ?? defaultOutput()
        var fit = FineTuneOptions()
        fit.epochs = epochs
        fit.batchSize = dataOptions.batchSize
        fit.optimizer = state?.optimizer
            ?? OptimizerConfig(kind: optimizer ?? .sgd, learningRate: lr, momentum: momentum ?? 0, nesterov: nesterov)
        if state != nil, let lr { fit.optimizer.learningRate = lr }
        fit.augmentations = augmentations
        fit.shuffle = shuffle
        fit.seed = seed
        fit.useCache = !noCache
        fit.earlyStoppingPatience = earlyStopping
        fit.loss = lossConfig
        fit.monitor = monitorMetric
        if let text = classWeight {
            guard categorical || (lossConfig.kind == .binaryCrossentropy && outputs == 1), let classOf = data.targetClasses else {
                throw XferError.usage("--class-weight", "applies to a classifier with one class per sample, and the loss is \(lossConfig.kind.shortName) on \(outputs) output\(outputs == 1 ? "" : "s")")
            }
            let weights = try ClassWeights.parse(text, classes: categorical ? outputs : 2, names: data.classNames ?? loaded.classNames,
                                                 classOf: trainIndices.map { classOf[$0] })
            fit.classWeights = weights
            let names = data.classNames ?? loaded.classNames
            say("Class weights: " + weights.weights.enumerated().map { i, w in
                "\(names.flatMap { i < $0.count ? $0[i] : nil } ?? String(i))=\(String(format: "%.4g", w))" }.joined(separator: ", "))
        }
        if let p = reduceLrOnPlateau { fit.reduceLROnPlateau = (0.5, p, 0) }
        // A file xfer wrote records Keras 2; the run it continues used the checkpoint's own rule.
        var tuner = try FineTuner(model: plan.model, kerasVersion: loaded.kerasVersion, options: fit)
        if let state {
            try state.check(against: tuner.network, config: fit.optimizer)
            tuner.optimizer.restore(iterations: state.iterations, slots: state.slots)
        }
        if !augmentations.isEmpty && !noCache {
            let share = plan.totalFLOPs > 0 ? Int((100 * plan.prefixFLOPs / plan.totalFLOPs).rounded()) : 0
            say("Augmentation (\(augmentations.map(\.name).joined(separator: ","))) changes the input every epoch, so the frozen prefix "
                  + "(\(share)% of a forward pass's FLOPs) runs on every sample every epoch instead of once: no feature cache")
        }
        let interrupted = InterruptFlag()
        tuner.stopRequested = { interrupted.isSet }

        // What travels with the model: the classes, the preprocessing its inputs had, and the loss
        // (with the optimizer as it ends, at each write).
        var metadata = ModelMetadata(classNames: data.classNames ?? loaded.classNames,
                                     preprocess: data.kind == .images ? data.preprocessing : dataOptions.preprocess ?? loaded.preprocess)
        metadata.colorMode = data.kind == .images ? data.colorMode : loaded.colorMode ?? ColorMode(channels: plan.model.inputShape.last ?? 3)
        metadata.inputShape = plan.model.inputShape
        metadata.loss = lossConfig
        // Epochs count across both phases of --then-unfreeze.
        var totalEpochs = epochs + (thenUnfreeze != nil ? thenEpochs ?? epochs : 0)
        var phase = 1
        var bestSaved: Double?
        // The options that shaped the run, for --resume (ResumeOptions.swift).
        let run = runRecord(loss: lossConfig, data: data)
        func trainingState(_ epochsDone: Int) -> TrainingState {
            var s = TrainingState(epochsDone: epochsDone, optimizer: tuner.optimizer, seed: seed)
            s.run = run
            return s
        }
        // Written through the model API, as KerasModel.save(to:) writes what fit trained.
        let base = KerasModel(loaded)
        func save(to path: String, _ state: TrainingState, flag: String) throws {
            let model = base.trained(tuner.network.exportModel(), metadata: metadata, state: state)
            try model.write(to: path, protecting: inputs, trainingState: state, caller: flag)
        }
        let bar = ProgressBar("epoch")
        var steps = 0
        var caching: ProgressBar?
        let started = Date()
        let events: (TrainingEvent) -> Void = { event in
            switch event {
            case .plan(let cached, let floats):
                if cached { say("Feature cache: the frozen prefix runs once per sample (\(floats) values each), then every epoch trains from it") }
                else if !noCache { say("Feature cache: off (a trainable or random layer comes first)") }
            case .caching(let done, let total):
                if caching == nil { caching = ProgressBar("caching features") }
                caching?.update(done, total)
                if done == total { caching?.finish() }
            case .epochBegin(let epoch, let batches):
                bar.begin(label: "epoch \(epoch)/\(totalEpochs)")
                steps = batches
            case .batch(_, let done, let total, let loss, let acc):
                bar.update(done, total, extra: String(format: "loss: %.4f - ", loss) + trainingMetric.name + String(format: ": %.4f", acc))
            case .epochEnd(let r):
                bar.finish()
                say(r.line(of: totalEpochs) + bar.suffix(steps: steps))
            case .message(let m):
                say(m)
            case .improved(let r):
                guard let path = saveBest, let value = monitorMetric.value(in: r) else { break }
                // Across both phases: phase 2's first epoch is saved only when it beats phase 1's best.
                if let b = bestSaved, monitorMetric.lowerIsBetter ? value >= b : value <= b { break }
                bestSaved = value
                do {
                    // With its training state: a --save-best file resumes from its epoch.
                    try save(to: path, trainingState(r.epoch), flag: "--save-best")
                    say("saved \(path) (\(monitorName) improved at epoch \(r.epoch))")
                } catch { warn("\(path): could not save: \(error)") }
            }
        }
        var failure: Error?
        var history: [EpochRecord] = []
        func train(startEpoch: Int) throws {
            do {
                _ = try tuner.fit(train: data, trainIndices: trainIndices, validation: validation,
                                  startEpoch: startEpoch, events: events, warning: warn)
            } catch let e as TrainingDiverged {
                failure = XferError.runtime("training", "the loss became \(e.loss) at epoch \(e.epoch), batch \(e.batch); stopped",
                                            hint: "\(output) holds the weights and optimizer state of the last finished epoch; "
                                                + "continue with --resume and a lower --lr")
            }
            history += tuner.history.map { var r = $0; r.phase = phase; return r }
        }
        try train(startEpoch: state?.epochsDone ?? 0)
        if let name = thenUnfreeze, failure == nil, !interrupted.isSet {
            // Phase 2: Keras's recipe after unfreezing — the model as phase 1 left it, every layer
            // from NAME on trainable, a new optimizer (compile), the frozen BN layers in inference mode.
            let phaseOne = history.count
            let unfrozen = try planUnfreezing(tuner.network.exportModel(), from: name, cacheAllowed: !noCache && augmentations.isEmpty)
            var second = fit
            second.epochs = phaseOne + (thenEpochs ?? epochs)
            // Phase 1 may have stopped early: phase 2 still runs its own epochs, numbered on.
            totalEpochs = second.epochs
            second.optimizer = OptimizerConfig(kind: thenOptimizer ?? fit.optimizer.kind,
                                               learningRate: thenLr ?? fit.optimizer.learningRate / 100,
                                               momentum: fit.optimizer.momentum, nesterov: fit.optimizer.nesterov)
            phase = 2
            tuner = try FineTuner(model: unfrozen.plan.model, kerasVersion: loaded.kerasVersion, options: second)
            tuner.stopRequested = { interrupted.isSet }
            say("Phase 2, after epoch \(phaseOne): " + phaseTwoText(unfrozen, optimizer: second.optimizer))
            try train(startEpoch: phaseOne)
        }
        let done = (state?.epochsDone ?? 0) + history.count
        try save(to: output, trainingState(done), flag: "--output")
        if let path = csvLog { try writeText(XferKit.csvLog(history), to: path) }
        if let plot {
            try writeText(svgPlot(history, title: "xfer finetune \((checkpoint as NSString).lastPathComponent)",
                                  phaseLabel: thenUnfreeze.map { "phase 2: unfreeze \($0)" }), to: plot)
        }
        if let failure { throw failure }
        if interrupted.isSet {
            say("Interrupted: wrote the current weights to \(output)")
            throw ExitCode(130)
        }
        say(String(format: "Wrote %@ (%.1f s)", output, Date().timeIntervalSince(started)))
    }

    /// The loss to train with and where it comes from: `--loss` (with `--from-logits` and
    /// `--label-smoothing`); with the model's own top, the loss it was compiled with, else what its
    /// last activation implies; for a new head, what DATA's targets imply.
    func chooseLoss(_ loaded: Checkpoint, data: DataSource, ownTop: Bool) throws -> (LossConfig, String) {
        var config: LossConfig
        var source: String
        if let text = loss {
            config = try LossConfig.parse(text)
            source = "--loss"
        } else if ownTop, let compiled = loaded.compiledLoss {
            config = compiled
            source = "the checkpoint's \(loaded.compiledLossSource ?? "training_config")"
        } else if ownTop {
            config = impliedLoss(of: loaded.model)
            source = "implied by the model's last activation"
        } else if data.hasMultiHotTargets {
            config = LossConfig(.binaryCrossentropy)
            source = "y holds multi-hot rows"
        } else {
            config = .categorical
            source = "the data's class labels"
        }
        if fromLogits {
            guard !config.kind.isRegression else { throw XferError.usage("--from-logits", "applies to the cross-entropies, and the loss is \(config.kind.shortName)") }
            config.fromLogits = true
        }
        if let ls = labelSmoothing {
            guard !config.kind.isRegression && config.kind != .sparseCategoricalCrossentropy || ls == 0 else {
                throw XferError.usage("--label-smoothing", "applies to categorical_crossentropy and binary_crossentropy, and the loss is \(config.kind.shortName)")
            }
            config.labelSmoothing = ls
        }
        return (config, source)
    }

    /// `predictions Dense(1, sigmoid): binary` — the final layer and the head kind it makes.
    func headDescription(_ model: ModelSpec, _ loss: LossConfig) -> String {
        guard let last = model.flattenedLayers().last?.layer, let head = headOf(model) else { return "the model's output" }
        let kind: String
        switch loss.kind {
        case .categoricalCrossentropy, .sparseCategoricalCrossentropy: kind = "\(head.units)-class classifier"
        case .binaryCrossentropy: kind = head.units == 1 ? "binary classifier" : "multi-label classifier (\(head.units) labels)"
        default: kind = "regression (\(head.units) output\(head.units == 1 ? "" : "s"))"
        }
        return "\(last.name) \(last.className)(\(head.units), \(head.activation.rawValue)) — \(kind)"
    }

    var inputFiles: [CommandFile] {
        [CommandFile("CHECKPOINT", checkpoint), CommandFile("--data", dataOptions.data)]
            + (checkpointOptions.config.map { [CommandFile("--config", $0)] } ?? [])
            + (validationData.map { [CommandFile("--validation-data", $0)] } ?? [])
    }
    var inputs: [String] { inputFiles.map(\.path) }

    /// Every file the run writes.
    var outputFiles: [CommandFile] {
        [CommandFile("--output", output ?? defaultOutput())]
            + (saveBest.map { [CommandFile("--save-best", $0)] } ?? [])
            + (csvLog.map { [CommandFile("--csv-log", $0)] } ?? [])
            + (plot.map { [CommandFile("--plot", $0)] } ?? [])
    }

    func defaultOutput() -> String {
        let url = URL(fileURLWithPath: checkpoint)
        var stem = url.lastPathComponent
        for ext in [".weights.h5", ".h5", ".hdf5", ".keras"] where stem.hasSuffix(ext) { stem = String(stem.dropLast(ext.count)); break }
        // In the current folder: the checkpoint's own folder may not be writable.
        return "\(stem)-finetuned.h5"
    }

    func writeText(_ text: String, to path: String) throws {
        try writeAtomically(path, protecting: inputs, contents: Data(text.utf8))
    }

    /// `every layer from block5_conv1 on trains (Trainable params: 1,234); a new adam optimizer, lr 1e-05; ...`
    func phaseTwoText(_ u: UnfreezePlan, optimizer: OptimizerConfig? = nil) -> String {
        let trainable = (try? ModelSummary(u.plan.model)).map { " (Trainable params: \(formatCount($0.trainableParams)))" } ?? ""
        var text = "every layer from \(u.firstLayer) on trains\(trainable), every layer before it is frozen"
        if let o = optimizer {
            text += "; a new \(o.kind.rawValue) optimizer, lr " + String(format: "%g", o.learningRate) + " (Keras's compile: no state, step 0)"
        } else {
            let first = self.optimizer ?? .sgd
            let kind = thenOptimizer ?? first
            let lr = thenLr ?? (self.lr ?? first.defaultLearningRate) / 100
            text += "; a new \(kind.rawValue) optimizer, lr " + String(format: "%g", lr) + " (Keras's compile: no state, step 0)"
        }
        if !u.inferenceBatchNorms.isEmpty {
            text += "; BatchNormalization layers unfrozen in inference mode (training=False): " + u.inferenceBatchNorms.joined(separator: ", ")
        }
        return text
    }

    func printPlan(_ plan: FreezePlan, data: DataSource) {
        if let names = data.classNames {
            say("Classes: " + names.enumerated().map { "\($0.offset)=\($0.element)" }.joined(separator: ", "))
        }
        var cells: [String: String] = [:]
        for w in plan.work {
            cells[w.name] = w.work.rawValue + (plan.convolutionPaths[w.name].map { " · " + $0 } ?? "")
        }
        if let summary = try? ModelSummary(plan.model) {
            say(summary.render(title: plan.model.name, extra: ("Runs", cells)))
        }
        if !plan.frozenBatchNorms.isEmpty {
            say("Frozen BatchNormalization layers run in inference mode (moving statistics fixed), as in Keras: "
                  + plan.frozenBatchNorms.joined(separator: ", "))
        }
        if plan.lowestTrainable == nil { say("Nothing is trainable.") }
    }
}
