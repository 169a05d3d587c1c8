// The lower level, for a training loop of one's own (as mlx-swift users write theirs): a
// Trainer holds the model being trained and its optimizer, and `step(batch)` is one optimizer
// step, the step `fit` takes: forward in training mode (frozen BatchNormalization in inference
// mode), Keras's loss from the logits, backward where a gradient flows, Keras's update rule.
// Batches come from DATA lazily (read and preprocessed when the step takes them) or from
// tensors of one's own.

import Foundation

/// One batch for ``Trainer/step(_:)``: inputs and their targets.
///
/// ```swift
/// let x = Tensor(shape: [4, 32, 32, 3], repeating: 0)
/// let batch = Batch(inputs: x, labels: [0, 1, 2, 3])
/// ```
public struct Batch: @unchecked Sendable {
    enum Storage {
        case tensors(inputs: Tensor, labels: [Int]?, targets: Tensor?)
        case samples(DataSource, [Int])
    }
    let storage: Storage

    /// A batch of preprocessed inputs (N, height, width, channels) with one class label each
    /// (the categorical losses, a binary head's 0/1).
    ///
    /// ```swift
    /// let batch = Batch(inputs: Tensor(shape: [2, 32, 32, 3], repeating: 0.1), labels: [0, 4])
    /// ```
    public init(inputs: Tensor, labels: [Int]) { storage = .tensors(inputs: inputs, labels: labels, targets: nil) }

    /// A batch of preprocessed inputs with target rows (N, width): multi-hot rows of a
    /// multi-label head, the values of a regression.
    ///
    /// ```swift
    /// let batch = Batch(inputs: Tensor(shape: [2, 6, 6, 2], repeating: 0.1), targets: Tensor(shape: [2, 1], values: [0.5, 2]))
    /// ```
    public init(inputs: Tensor, targets: Tensor) { storage = .tensors(inputs: inputs, labels: nil, targets: targets) }

    /// Samples `indices` of `data`, read when a step takes them.
    init(_ data: DataSource, _ indices: [Int]) { storage = .samples(data, indices) }

    /// The number of samples the batch asks for.
    public var count: Int {
        switch storage {
        case .tensors(let x, _, _): return x.shape.first ?? 0
        case .samples(_, let ids): return ids.count
        }
    }
}

extension DataSource {
    /// The samples in batches of `size`, shuffled with `seed` and `epoch` as `fit` shuffles
    /// them (nil: in order); each is read and preprocessed when ``Trainer/step(_:)`` takes it.
    ///
    /// ```swift
    /// let data = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")
    /// for batch in data.batches(size: 4, seed: 0, epoch: 0) { print(batch.count) }
    /// ```
    public func batches(size: Int, seed: UInt64? = nil, epoch: Int = 0) -> [Batch] {
        var order = Array(0..<count)
        if let seed {
            var rng = SeededRandom(seed: seed, stream: .shuffle(epoch: epoch))
            order = rng.permutation(order.count).map { order[$0] }
        }
        let size = max(size, 1)
        return stride(from: 0, to: order.count, by: size).map { Batch(self, Array(order[$0..<min(order.count, $0 + size)])) }
    }

    /// Opens DATA at `path`: an image folder in the layout of Keras's
    /// `image_dataset_from_directory` (one subfolder per class, JPEG or PNG, decoded as
    /// TensorFlow decodes them), or an HDF5 file with `x` (N, H, W, C) float32 — or (N, F) /
    /// (N, T, F) for a model of feature vectors or sequences — and `y` (labels, one-hot,
    /// multi-hot or numeric rows). `preprocess` applies to images (default
    /// ``PreprocessMode/caffe``, VGG's) and, when given, to an HDF5 file's images.
    ///
    /// ```swift
    /// let train = try DataSource(contentsOf: "checkpoints/fashion/train")
    /// print(train.count, train.classNames!)
    /// ```
    /// - Throws: ``XferError`` (`.badInput`) naming the path: missing, not a folder or HDF5
    ///   file, `x` or `y` of the wrong kind.
    public convenience init(contentsOf path: String, preprocess: PreprocessMode? = nil,
                            warning: @escaping (String) -> Void = { _ in }) throws {
        try self.init(path: path, preprocess: preprocess, warning: warning)
    }

    /// ``init(contentsOf:preprocess:warning:)-(String,_,_)`` of a file or folder URL.
    ///
    /// ```swift
    /// let test = try DataSource(contentsOf: URL(fileURLWithPath: "checkpoints/fashion/test"))
    /// ```
    public convenience init(contentsOf url: URL, preprocess: PreprocessMode? = nil,
                            warning: @escaping (String) -> Void = { _ in }) throws {
        try self.init(path: url.path, preprocess: preprocess, warning: warning)
    }
}

/// Trains a model one batch at a time, for a loop of one's own.
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
/// try model.freeze(before: "fc1")
/// let data = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")
/// let trainer = try Trainer(model: model, optimizer: .adam(learningRate: 1e-3))
/// for epoch in 0..<3 {
///     for batch in data.batches(size: 4, seed: 0, epoch: epoch) {
///         let step = try trainer.step(batch)
///         print(epoch, step.loss, step.metric)
///     }
/// }
/// model = trainer.model
/// ```
public final class Trainer: @unchecked Sendable {
    let network: TrainingNetwork
    let optimizer: Optimizer
    private let start: KerasModel
    private let seed: UInt64
    private let lock = NSLock()

    /// What one step reports: the batch's mean loss before the update (as Keras's
    /// `train_on_batch`) and its metric (accuracy; mae for regression).
    ///
    /// ```swift
    /// let trainer = try Trainer(model: try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5"))
    /// let step = try trainer.step(Batch(inputs: Tensor(shape: [2, 32, 32, 3], repeating: 0.1), labels: [0, 4]))
    /// print(step.loss, step.metric)
    /// ```
    public struct StepResult: Sendable, Equatable {
        /// The batch's mean loss.
        public var loss: Double
        /// The metric over the batch: accuracy of a classifier, mae of a regression.
        public var metric: Double
    }

    /// A trainer of `model`'s trainable layers with its ``KerasModel/loss`` and `optimizer`;
    /// `seed` seeds the dropout masks.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// let trainer = try Trainer(model: model, optimizer: .sgd(learningRate: 0.05, momentum: 0.9))
    /// ```
    /// - Throws: ``XferError`` (`.badInput`) when the loss cannot train the model's head (a
    ///   cross-entropy on a head without its softmax or sigmoid).
    public init(model: KerasModel, optimizer: OptimizerConfig = .sgd(), seed: UInt64 = 0) throws {
        network = try TrainingNetwork(model: model.spec, kerasVersion: model.spec.kerasVersion, seed: seed, cacheAllowed: false,
                                      loss: model.loss)
        self.optimizer = Optimizer(optimizer)
        start = model
        self.seed = seed
    }

    /// The learning rate of the next steps (change it for a schedule of one's own).
    ///
    /// ```swift
    /// let trainer = try Trainer(model: try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5"))
    /// trainer.learningRate *= 0.5
    /// ```
    public var learningRate: Float {
        get { lock.withLock { optimizer.config.learningRate } }
        set { lock.withLock { optimizer.config.learningRate = newValue } }
    }

    /// One optimizer step on `batch`: forward in training mode, Keras's loss, backward, update.
    ///
    /// ```swift
    /// let trainer = try Trainer(model: try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5"))
    /// let data = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")
    /// let result = try trainer.step(data.batches(size: 4)[0])
    /// ```
    /// - Throws: ``XferError``: `.badInput` when the batch does not fit the model (shape, labels);
    ///   `.runtime` when the loss is NaN or infinite (the weights are then those after the step).
    @discardableResult
    public func step(_ batch: Batch) throws -> StepResult {
        let (x, targets) = try tensors(batch)
        let r = lock.withLock { network.trainStep(.input(x), targets: targets, optimizer: optimizer) }
        guard r.loss.isFinite else {
            throw XferError.runtime("training", "the loss became \(r.loss)", hint: "lower the learning rate")
        }
        return StepResult(loss: r.loss, metric: r.metric)
    }

    /// The loss and metric of `batch` in inference mode, without a step.
    ///
    /// ```swift
    /// let trainer = try Trainer(model: try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5"))
    /// let data = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")
    /// print(try trainer.evaluate(data.batches(size: 10)[0]).loss)
    /// ```
    public func evaluate(_ batch: Batch) throws -> StepResult {
        let (x, targets) = try tensors(batch)
        let r = lock.withLock { network.evaluateBatch(.input(x), targets: targets) }
        return StepResult(loss: r.loss, metric: r.metric)
    }

    /// The model with the weights trained so far (and the optimizer, which ``KerasModel/save(to:)-(String)`` records).
    ///
    /// ```swift
    /// let trainer = try Trainer(model: try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5"))
    /// try trainer.model.save(to: "/tmp/stepped.h5")
    /// ```
    public var model: KerasModel {
        lock.withLock {
            var m = start
            m.adopt(network.exportModel())
            m.lossChosen = true
            m.trainingState = TrainingState(epochsDone: 0, optimizer: optimizer, seed: seed)
            return m
        }
    }

    /// The batch as the network takes it: inputs, and target rows (class ids for the categorical losses).
    private func tensors(_ batch: Batch) throws -> (Tensor, Tensor) {
        let loss = network.lossConfig
        switch batch.storage {
        case .samples(let data, let ids):
            try data.checkFits(inputShape: network.inputShape)
            try data.checkTargets(for: loss, units: network.outputCount, purpose: "training")
            let b = try data.batch(ids, inputShape: network.inputShape)
            guard !b.indices.isEmpty else { throw XferError.badInput(data.path, "none of the batch's samples can be read") }
            return (b.x, loss.kind.isCategorical ? TrainingNetwork.classTargets(b.labels) : b.targets)
        case .tensors(let x, let labels, let targets):
            guard x.rank == 4, Array(x.shape.dropFirst()) == network.inputShape else {
                throw XferError.badInput("batch", "inputs have shape \(x.shape), the model takes (N, \(network.inputShape.map(String.init).joined(separator: ", ")))")
            }
            let n = x.shape[0]
            if let labels {
                guard labels.count == n else { throw XferError.badInput("batch", "\(n) inputs but \(labels.count) labels") }
                let units = network.outputCount
                if let bad = labels.first(where: { $0 < 0 || $0 >= max(units, 2) }) {
                    throw XferError.badInput("batch", "label \(bad) is not a class of the model's \(units) outputs")
                }
                return (x, TrainingNetwork.classTargets(labels))
            }
            guard let targets, targets.shape.first == n, targets.count == n * network.outputCount else {
                throw XferError.badInput("batch", "targets need one row of \(network.outputCount) values per input")
            }
            return (x, Tensor(shape: [n, network.outputCount], values: targets.values))
        }
    }
}
