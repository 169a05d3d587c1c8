// `KerasModel.fit`: Keras's `model.fit` as an async method. The epoch loop is the one
// `xfer finetune` runs (FineTuner: the same batch order, optimizer steps, feature cache,
// validation and callbacks), on a thread of its own so the caller's task is free; progress
// comes back as `FitEvent`s, and cancelling the task stops training after the current batch.
//
// A cancelled or failed fit leaves the model as it was: the trained weights are adopted only
// when the loop finishes (or, for a diverged loss, the last finished epoch's, as the CLI
// writes them). Nothing is written unless a `.saveBest` callback asks for it, and that file is
// written whole or not at all (the atomic writer).

import Foundation

/// Held-out data that `fit` evaluates after each epoch (Keras's `validation_split` and
/// `validation_data`).
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
/// let data = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")
/// try await model.fit(data, epochs: 1, batchSize: 4, validation: .data(data))
/// ```
public enum Validation: Sendable {
    /// Hold out this fraction of each class of the training data (seeded by `fit`'s seed),
    /// as `xfer finetune --validation-split`.
    case split(Double)
    /// Evaluate on this data, as `--validation-data`.
    case data(DataSource)
}

/// What `fit` does at the end of each epoch, on the monitored metric (Keras's callbacks).
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
/// let data = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")
/// try await model.fit(data, epochs: 5, batchSize: 4, validation: .data(data),
///                     callbacks: [.earlyStopping(patience: 2), .reduceLROnPlateau(patience: 1),
///                                 .saveBest(to: "/tmp/best.keras")])
/// ```
public enum Callback: Sendable {
    /// Stop after `patience` epochs without improvement of `monitor` and restore the best
    /// weights (`EarlyStopping(patience, restore_best_weights=True)`, `--early-stopping`).
    case earlyStopping(patience: Int, monitor: Metric? = nil)
    /// Multiply the learning rate by `factor` after `patience` epochs without improvement
    /// (`ReduceLROnPlateau`, `--reduce-lr-on-plateau`).
    case reduceLROnPlateau(patience: Int, factor: Float = 0.5, minLearningRate: Float = 0, monitor: Metric? = nil)
    /// Write the model (format by extension, as ``KerasModel/save(to:)-(String)``) each time
    /// `monitor` improves (`ModelCheckpoint(save_best_only=True)`, `--save-best`).
    case saveBest(to: String, monitor: Metric? = nil)

    var monitor: Metric? {
        switch self {
        case .earlyStopping(_, let m), .reduceLROnPlateau(_, _, _, let m), .saveBest(_, let m): return m
        }
    }
}

/// What `fit` reports while it runs.
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
/// let train = try DataSource(contentsOf: "checkpoints/fashion/train")
/// try model.replaceTop(with: [.flatten, .dense(64, activation: .relu)], classes: train.classCount)
/// try await model.fit(train, epochs: 2) { event in
///     if case .epochEnd = event { print(event) }   // epoch 1/2 - loss: ... - accuracy: ...
/// }
/// ```
public enum FitEvent: Sendable, CustomStringConvertible {
    /// Before the first epoch: whether the frozen prefix runs once per sample (the feature
    /// cache) and how many values per sample it keeps.
    case plan(cached: Bool, valuesPerSample: Int)
    /// Filling the feature cache: samples done of total.
    case caching(done: Int, total: Int)
    /// An epoch (numbered from 1) starts; it will take `batches` optimizer steps.
    case epochBegin(epoch: Int, batches: Int)
    /// After each batch: the epoch's running mean loss and metric (accuracy, or mae).
    case batch(epoch: Int, batch: Int, batches: Int, loss: Double, metric: Double)
    /// After each epoch (and its validation), with the number of epochs asked for.
    case epochEnd(EpochRecord, epochs: Int)
    /// A callback acted: early stopping, a lower learning rate, restored weights, a saved file.
    case message(String)
    /// Something the caller should know and that does not stop training (a skipped image,
    /// classes that differ from the model's).
    case warning(String)

    /// The line `xfer finetune` prints for the event.
    public var description: String {
        switch self {
        case .plan(let cached, let floats):
            return cached ? "Feature cache: the frozen prefix runs once per sample (\(floats) values each), then every epoch trains from it"
                : "Feature cache: off (a trainable or random layer comes first)"
        case .caching(let done, let total): return "caching features \(done)/\(total)"
        case .epochBegin(let epoch, let batches): return "epoch \(epoch): \(batches) batches"
        case .batch(let epoch, let done, let total, let loss, let metric):
            return String(format: "epoch %d - batch %d/%d - loss: %.4f - metric: %.4f", epoch, done, total, loss, metric)
        case .epochEnd(let record, let epochs): return record.line(of: epochs)
        case .message(let m): return m
        case .warning(let w): return "warning: \(w)"
        }
    }
}

extension KerasModel {
    /// Trains the model's trainable layers on `data`, as Keras's `model.fit` and
    /// `xfer finetune` do, and returns one record per epoch (Keras's `History`).
    ///
    /// ```swift
    /// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// let train = try DataSource(contentsOf: "checkpoints/fashion/train")
    /// try model.freeze(before: "block4")
    /// try model.replaceTop(with: [.flatten, .dense(64, activation: .relu)], classes: train.classCount)
    /// let history = try await model.fit(train, epochs: 3, optimizer: .sgd(learningRate: 0.01, momentum: 0.9),
    ///                                   validation: .split(0.2), callbacks: [.earlyStopping(patience: 2)]) { print($0) }
    /// print(history.last!.valAccuracy!)
    /// ```
    ///
    /// The loss is the model's ``loss`` (the one given to ``replaceTop(with:classes:loss:seed:)``,
    /// else the checkpoint's). A frozen BatchNormalization layer runs in inference mode; the
    /// frozen prefix runs once per sample when nothing random runs there (the feature cache).
    /// With the same `seed`, a run repeats exactly; with `shuffle: false` it takes the batches in
    /// order, and gives Keras's weights.
    ///
    /// Cancelling the calling task stops training after the current batch and throws
    /// `CancellationError`; the model is then as it was before the call. When the loss becomes
    /// NaN or infinite the model takes the weights of the last finished epoch and the call throws.
    ///
    /// - Parameters:
    ///   - data: the training data (an image folder, or an HDF5 file with `x` and `y`).
    ///   - epochs: epochs to train.
    ///   - batchSize: samples per optimizer step.
    ///   - optimizer: SGD, Adam or RMSprop with Keras's update rules and defaults.
    ///   - validation: data evaluated after each epoch (`val_loss`, `val_accuracy`).
    ///   - callbacks: early stopping, learning-rate reduction, saving the best model; they watch
    ///     one metric (default `val_loss` with validation data, else `loss`).
    ///   - shuffle: shuffle the samples every epoch (seeded).
    ///   - seed: the seed of the shuffling, the dropout masks and the validation split.
    ///   - progress: called on a background thread with each ``FitEvent``.
    /// - Throws: ``XferError``: `.badInput` for data that do not fit the model or its loss
    ///   (checked before the first epoch), `.usage` for a monitor the run will not log, `.runtime`
    ///   when the loss diverges; `CancellationError` when the task is cancelled.
    @discardableResult
    public mutating func fit(_ data: DataSource, epochs: Int, batchSize: Int = 32, optimizer: OptimizerConfig = .sgd(),
                             validation: Validation? = nil, callbacks: [Callback] = [], shuffle: Bool = true, seed: UInt64 = 0,
                             progress: @escaping @Sendable (FitEvent) -> Void = { _ in }) async throws -> [EpochRecord] {
        try Task.checkCancellation()
        guard epochs > 0 else { throw XferError.usage("epochs", "is \(epochs); train at least one epoch") }
        guard batchSize > 0 else { throw XferError.usage("batchSize", "is \(batchSize); a batch holds at least one sample") }
        let job = try fitJob(data, epochs: epochs, batchSize: batchSize, optimizer: optimizer, validation: validation,
                             callbacks: callbacks, shuffle: shuffle, seed: seed, progress: progress)
        let stop = job.stop
        job.tuner.stopRequested = { stop.isSet }
        let result: Result<[EpochRecord], Error> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // The loop blocks for the whole run: a thread of its own, not one of the pool's.
                let thread = Thread { continuation.resume(returning: job.run()) }
                thread.stackSize = 16 << 20
                thread.start()
            }
        } onCancel: {
            stop.set()
        }
        if stop.isSet { throw CancellationError() }
        do {
            let history = try result.get()
            accept(job, epochsDone: history.count)
            return history
        } catch let e as TrainingDiverged {
            accept(job, epochsDone: job.tuner.history.count)
            throw XferError.runtime("training", "the loss became \(e.loss) at epoch \(e.epoch), batch \(e.batch); stopped",
                                    hint: "the model holds the weights and optimizer state of the last finished epoch; "
                                        + "fit again with a lower learning rate")
        }
    }

    /// Adopts what a finished run trained, and what travels with it.
    private mutating func accept(_ job: FitJob, epochsDone: Int) {
        adopt(job.tuner.network.exportModel())
        lossChosen = true
        classNames = job.classNames
        preprocess = job.preprocess
        colorMode = job.colorMode
        trainingState = TrainingState(epochsDone: (trainingState?.epochsDone ?? 0) + epochsDone, optimizer: job.tuner.optimizer,
                                      seed: job.seed)
    }

    /// The checks and the set-up `xfer finetune` does before its first epoch.
    private func fitJob(_ data: DataSource, epochs: Int, batchSize: Int, optimizer: OptimizerConfig, validation: Validation?,
                        callbacks: [Callback], shuffle: Bool, seed: UInt64,
                        progress: @escaping @Sendable (FitEvent) -> Void) throws -> FitJob {
        let lossConfig = loss
        let categorical = lossConfig.kind.isCategorical
        if categorical {
            _ = try data.requireClassLabels(for: "fine-tuning", loss: lossConfig)
            try data.checkTrainable()
        }
        let outputs = outputCount
        try data.checkFits(inputShape: spec.inputShape)
        try data.checkTargets(for: lossConfig, units: outputs, purpose: "fine-tuning")
        if categorical && data.classCount < outputs {
            progress(.warning("\(data.path): has \(data.classCount) classes but the model has \(outputs) outputs: outputs "
                              + "\(data.classCount)..\(outputs - 1) get no samples and are only trained to be unlikely"))
        }
        if head == nil, let note = data.classNamesDiffer(from: classNames, theirs: "the model's") { progress(.warning(note)) }

        var trainIndices = Array(0..<data.count)
        var held: (data: DataSource, indices: [Int])?
        switch validation {
        case .split(let f)?:
            guard f > 0 && f < 1 else { throw XferError.usage("validation", ".split(\(f)): the fraction must be between 0 and 1") }
            // Stratified by class for a classifier with one class per sample; one stratum otherwise.
            let classes = categorical ? max(outputs, data.classCount) : (lossConfig.kind == .binaryCrossentropy && outputs == 1 ? 2 : 1)
            let strata = classes == 1 ? [Int](repeating: 0, count: data.count) : (data.targetClasses ?? [])
            let split = stratifiedSplit(labels: strata, classes: classes, fraction: f, seed: seed)
            trainIndices = split.training
            held = (data, split.validation)
        case .data(let v)?:
            if categorical { _ = try v.requireLabels(for: "validation") }
            try v.checkFits(inputShape: spec.inputShape)
            try v.checkTargets(for: lossConfig, units: outputs, purpose: "validation")
            if let note = v.classNamesDiffer(from: data.classNames, theirs: "those of \(data.path)") { progress(.warning(note)) }
            held = (v, Array(0..<v.count))
        case nil:
            break
        }

        var options = FineTuneOptions()
        options.epochs = epochs
        options.batchSize = batchSize
        options.optimizer = optimizer
        options.shuffle = shuffle
        options.seed = seed
        options.loss = lossConfig
        let monitors = Set(callbacks.compactMap(\.monitor))
        guard monitors.count <= 1 else {
            throw XferError.usage("callbacks", "watch \(monitors.map(\.rawValue).sorted().joined(separator: " and ")); they watch one metric",
                                  hint: "give every callback the same monitor")
        }
        options.monitor = monitors.first ?? (held == nil ? .loss : .valLoss)
        let metric = TrainingMetric.for(lossConfig, units: outputs)
        let available = Metric.available(metric, validation: held != nil)
        if !callbacks.isEmpty && !available.contains(options.monitor) {
            throw XferError.usage("monitor", "\(options.monitor.rawValue) will not exist; available: \(available.map(\.rawValue).joined(separator: ", "))")
        }
        var saveBest: String?
        for c in callbacks {
            switch c {
            case .earlyStopping(let patience, _):
                guard patience >= 1 else { throw XferError.usage("earlyStopping", "takes a patience of at least 1") }
                options.earlyStoppingPatience = patience
            case .reduceLROnPlateau(let patience, let factor, let minLR, _):
                guard patience >= 1 else { throw XferError.usage("reduceLROnPlateau", "takes a patience of at least 1") }
                guard factor > 0 && factor < 1 else { throw XferError.usage("reduceLROnPlateau", "takes a factor in (0, 1)") }
                options.reduceLROnPlateau = (factor, patience, minLR)
            case .saveBest(let path, _):
                _ = try ModelFileFormat(outputPath: path, flag: "saveBest(to:)")
                saveBest = path
            }
        }
        let tuner = try FineTuner(model: spec, kerasVersion: spec.kerasVersion, options: options)
        var model = self
        model.classNames = data.classNames ?? classNames
        model.preprocess = data.kind == .images || data.preprocessing != .none ? data.preprocessing : preprocess
        model.colorMode = data.kind == .images ? data.colorMode : colorMode ?? ColorMode(channels: spec.inputShape.last ?? 3)
        model.lossChosen = true
        if let saveBest, ModelFileFormat(path: saveBest) == .onnx { try ONNXWriter.checkExportable(spec) }
        if let saveBest { try ModelWriter.checkFormat(spec, saveBest) }
        return FitJob(tuner: tuner, train: data, trainIndices: trainIndices, validation: held, epochs: epochs, seed: seed,
                      classNames: model.classNames, preprocess: model.preprocess, colorMode: model.colorMode, template: model, saveBest: saveBest,
                      monitor: options.monitor, progress: progress)
    }
}

/// One run of the epoch loop, handed to its thread.
final class FitJob: @unchecked Sendable {
    let tuner: FineTuner
    let train: DataSource
    let trainIndices: [Int]
    let validation: (data: DataSource, indices: [Int])?
    let epochs: Int
    let seed: UInt64
    let classNames: [String]?
    let preprocess: PreprocessMode?
    let colorMode: ColorMode?
    /// The model as it will be saved (class names, preprocessing, loss), for `.saveBest`.
    let template: KerasModel
    let saveBest: String?
    let monitor: Metric
    let progress: @Sendable (FitEvent) -> Void
    /// Set when the task is cancelled: the loop stops after its batch, and reports nothing more.
    let stop = StopFlag()

    init(tuner: FineTuner, train: DataSource, trainIndices: [Int], validation: (data: DataSource, indices: [Int])?, epochs: Int,
         seed: UInt64, classNames: [String]?, preprocess: PreprocessMode?, colorMode: ColorMode?, template: KerasModel, saveBest: String?,
         monitor: Metric, progress: @escaping @Sendable (FitEvent) -> Void) {
        self.tuner = tuner; self.train = train; self.trainIndices = trainIndices; self.validation = validation
        self.epochs = epochs; self.seed = seed; self.classNames = classNames; self.preprocess = preprocess; self.colorMode = colorMode
        self.template = template; self.saveBest = saveBest; self.monitor = monitor; self.progress = progress
    }

    func run() -> Result<[EpochRecord], Error> {
        let progress = self.progress
        return Result {
            try tuner.fit(train: train, trainIndices: trainIndices, validation: validation, events: { event in
                if self.stop.isSet { return }
                switch event {
                case .plan(let cached, let floats): progress(.plan(cached: cached, valuesPerSample: floats))
                case .caching(let done, let total): progress(.caching(done: done, total: total))
                case .epochBegin(let epoch, let batches): progress(.epochBegin(epoch: epoch, batches: batches))
                case .batch(let epoch, let done, let total, let loss, let metric):
                    progress(.batch(epoch: epoch, batch: done, batches: total, loss: loss, metric: metric))
                case .epochEnd(let record): progress(.epochEnd(record, epochs: self.epochs))
                case .message(let m): progress(.message(m))
                case .improved(let record): self.saveBest(record)
                }
            }, warning: { w in if !self.stop.isSet { progress(.warning(w)) } })
        }
    }

    /// `.saveBest`: the model as it is now, with what travels with it.
    private func saveBest(_ record: EpochRecord) {
        guard let path = saveBest else { return }
        var model = template
        model.adopt(tuner.network.exportModel())
        model.trainingState = TrainingState(epochsDone: record.epoch, optimizer: tuner.optimizer, seed: seed)
        do {
            try model.write(to: path, trainingState: model.trainingState, caller: "saveBest(to:)")
            progress(.message("saved \(path) (\(monitor.rawValue) improved at epoch \(record.epoch))"))
        } catch {
            progress(.warning("\(path): could not save: \(error)"))
        }
    }
}

/// Set once, from the task's cancellation handler; read by the loop after each batch.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var set_ = false
    var isSet: Bool { lock.withLock { set_ } }
    func set() { lock.withLock { set_ = true } }
}
