// The epoch loop of `xfer finetune`, as Keras's `fit` runs it: batches in order (or
// shuffled per epoch, seeded), one optimizer step per batch, the epoch's loss the
// batch losses weighted by batch size, validation in inference mode after each
// epoch, and the callbacks users rely on (early stopping with best-weight restore,
// reduce-LR-on-plateau, stop on NaN).
//
// The frozen-feature cache: the layers no gradient reaches (the frozen prefix of the
// execution plan) give the same output every epoch when nothing random runs among them, so
// their frontier values are computed once per sample and reused (in memory, or in a
// temporary file when large). Keys are sample indices, so labels can never get out of step.

import Foundation

/// How to train.
package struct FineTuneOptions: Sendable {
    package var epochs: Int = 10
    package var batchSize: Int = 32
    package var optimizer: OptimizerConfig = OptimizerConfig(kind: .sgd)
    package var shuffle = true
    package var seed: UInt64 = 0
    /// Use the frozen-feature cache when the plan allows it.
    package var useCache = true
    /// Stop after this many epochs without improvement of `monitor`, restoring the best weights.
    package var earlyStoppingPatience: Int?
    /// The metric the callbacks (early stopping, learning-rate reduction, `--save-best`) watch.
    package var monitor = Metric.valLoss
    /// Multiply the learning rate by `factor` after `patience` epochs without improvement.
    package var reduceLROnPlateau: (factor: Float, patience: Int, minLR: Float)?
    /// Memory the feature cache may use before it spills to a temporary file.
    package var cacheMemoryLimit = 1 << 30
    /// Random augmentations of the training samples, on the fly (they turn the feature cache off).
    package var augmentations: [Augmentation] = []
    /// What training minimises.
    package var loss = LossConfig.categorical
    /// Keras's `class_weight`: each training sample's loss and metric weighted by its class's.
    package var classWeights: ClassWeights?

    package init() {}
}

/// A metric of an epoch, by its Keras name (`--monitor`): `loss`, the loss's metric
/// (`accuracy`, `binary_accuracy`, `mae`), and the same of the validation data (`val_…`).
///
/// ```swift
/// let stopEarly: Callback = .earlyStopping(patience: 3, monitor: .valAccuracy)
/// let byMAE: Callback = .earlyStopping(patience: 3, monitor: Metric(rawValue: "val_mae"))
/// ```
public struct Metric: Sendable, Hashable, RawRepresentable {
    /// The metric's Keras name (`val_loss`, `mae`, ...).
    public var rawValue: String

    /// The metric of that Keras name.
    ///
    /// ```swift
    /// let monitor = Metric(rawValue: "val_mae")
    /// ```
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The training loss.
    public static let loss = Metric(rawValue: "loss")
    /// The training accuracy.
    public static let accuracy = Metric(rawValue: "accuracy")
    /// The loss on the validation data.
    public static let valLoss = Metric(rawValue: "val_loss")
    /// The accuracy on the validation data.
    public static let valAccuracy = Metric(rawValue: "val_accuracy")

    /// The metrics an epoch of training with `metric` logs (validation ones with validation data).
    package static func available(_ metric: TrainingMetric, validation: Bool) -> [Metric] {
        let own = [Metric(rawValue: "loss"), Metric(rawValue: metric.name)]
        return own + (validation ? own.map { Metric(rawValue: "val_" + $0.rawValue) } : [])
    }

    private var base: String { rawValue.hasPrefix("val_") ? String(rawValue.dropFirst(4)) : rawValue }

    /// Whether a smaller value is an improvement (the losses, errors), else a larger one.
    package var lowerIsBetter: Bool { base == "loss" || base == "mae" }

    /// The value of this metric in `record`; nil for a validation metric without validation data,
    /// or a metric the record does not log.
    package func value(in record: EpochRecord) -> Double? {
        let validation = rawValue.hasPrefix("val_")
        if base == "loss" { return validation ? record.valLoss : record.loss }
        guard base == record.metricName else { return nil }
        return validation ? record.valAccuracy : record.accuracy
    }
}

/// What the loop reports while it runs.
package enum TrainingEvent: Sendable {
    /// Before training: whether the frozen prefix is cached (and its size per sample).
    case plan(cached: Bool, featureFloats: Int)
    /// Filling the feature cache.
    case caching(done: Int, total: Int)
    /// An epoch (numbered from 1) starts; it will run `batches` training steps.
    case epochBegin(epoch: Int, batches: Int)
    /// After each batch: running mean loss and metric (accuracy, or mae) of the epoch so far.
    case batch(epoch: Int, done: Int, total: Int, loss: Double, accuracy: Double)
    case epochEnd(EpochRecord)
    /// The monitored metric improved at the end of this epoch (for `--save-best`).
    case improved(EpochRecord)
    case message(String)
}

package final class FineTuner {
    package let network: TrainingNetwork
    package let options: FineTuneOptions
    package let optimizer: Optimizer
    package private(set) var history: [EpochRecord] = []
    /// Set (e.g. from a signal handler) to stop after the current batch.
    package var stopRequested: @Sendable () -> Bool = { false }

    /// `kerasVersion`: the Keras that wrote the model, when it is not the model's own `kerasVersion`.
    package init(model: ModelSpec, kerasVersion: String? = nil, options: FineTuneOptions) throws {
        self.options = options
        // Keras 3 trains a RandomCrop whose input differs from the crop at the crop's size and
        // validates with the images uncropped: two networks of different shapes, the same weights.
        let cropped = try keras3CropTrainingModel(model)
        network = try TrainingNetwork(model: cropped ?? model, kerasVersion: kerasVersion, seed: options.seed,
                                      cacheAllowed: options.useCache && options.augmentations.isEmpty, loss: options.loss)
        validationNetwork = try cropped.map { _ in
            try TrainingNetwork(model: model, kerasVersion: kerasVersion, seed: options.seed, cacheAllowed: false,
                                loss: options.loss, inferenceOnly: true)
        }
        optimizer = Optimizer(options.optimizer)
    }

    /// The network validation and `evaluate` run on when it is not `network` (a Keras 3
    /// RandomCrop: `network` at the crop's size, this one at the input size), given `network`'s
    /// weights before each use.
    let validationNetwork: TrainingNetwork?

    /// Whether the frozen prefix runs once per sample, its frontier kept (the network's plan).
    package var usesCache: Bool { network.plan.cached }

    /// Checks, before any work, that `data` can train (or, with `forTraining` false, validate)
    /// this network: targets that fit the loss (class labels below the outputs, 0/1 for a binary
    /// head, numbers for regression), samples of the network's input shape, every index a sample;
    /// for training a classifier, samples of two or more classes.
    /// - Throws: ``XferError`` `.badInput` naming the data.
    package func checkData(_ data: DataSource, indices: [Int], forTraining: Bool) throws {
        try data.checkTargets(for: options.loss, units: network.outputCount, purpose: forTraining ? "training" : "validation")
        try data.checkFits(inputShape: network.inputShape)
        if let bad = indices.first(where: { $0 < 0 || $0 >= data.count }) {
            throw XferError.badInput(data.path, "has \(data.count) samples, so sample \(bad) does not exist")
        }
        // A classifier with one class per sample (a softmax, one sigmoid unit) needs two classes.
        if forTraining && (options.loss.kind.isCategorical || (options.loss.kind == .binaryCrossentropy && network.outputCount == 1)) {
            try data.checkTrainable()
        }
    }

    /// Trains on `train` (samples `trainIndices`), validating on `validation` after each epoch.
    /// Returns the history; the network then holds the final (or, with early stopping, the best) weights.
    ///
    /// The data are checked first (``checkData(_:indices:forTraining:)``). When the loss becomes
    /// NaN or infinite (or a weight does), it throws ``TrainingDiverged`` and the network and the
    /// optimizer hold the weights and state of the last finished epoch (finite, as they were).
    package func fit(train: DataSource, trainIndices: [Int], validation: (data: DataSource, indices: [Int])? = nil,
                    startEpoch: Int = 0, events: (TrainingEvent) -> Void = { _ in },
                    warning: @escaping (String) -> Void = { _ in }) throws -> [EpochRecord] {
        try checkData(train, indices: trainIndices, forTraining: true)
        if let validation { try checkData(validation.data, indices: validation.indices, forTraining: false) }
        guard startEpoch >= 0 else { throw XferError.usage("startEpoch", "is \(startEpoch), not a count of epochs") }
        let (h, w) = imageSize(network.inputShape)
        var trainCache: FeatureCache?
        var valCache: FeatureCache?
        if usesCache {
            trainCache = try FeatureCache(network: network, data: train, indices: trainIndices, targets: targets(of:),
                                          batchSize: options.batchSize, memoryLimit: options.cacheMemoryLimit,
                                          progress: { events(.caching(done: $0, total: $1)) }, warning: warning)
            if let validation {
                valCache = try FeatureCache(network: network, data: validation.data, indices: validation.indices, targets: targets(of:),
                                            batchSize: options.batchSize, memoryLimit: options.cacheMemoryLimit,
                                            progress: { _, _ in }, warning: warning)
            }
            events(.plan(cached: true, featureFloats: trainCache!.floatsPerSample))
        } else {
            events(.plan(cached: false, featureFloats: 0))
        }

        var best: (value: Double, weights: [String: [Float]])?
        // The last weights that produced finite losses, and the optimizer state that goes with
        // them, kept for a NaN/Inf stop.
        var lastGood = network.changingWeights()
        var lastGoodOptimizer = (iterations: optimizer.iterations, slots: optimizer.slots)
        func stopDiverged(_ epoch: Int, _ batch: Int, _ loss: Double) -> TrainingDiverged {
            network.restore(lastGood)
            optimizer.restore(iterations: lastGoodOptimizer.iterations, slots: lastGoodOptimizer.slots)
            return TrainingDiverged(epoch: epoch, batch: batch, loss: loss)
        }
        var sinceBest = 0
        var plateauBest = Double.infinity, sincePlateauBest = 0
        let lowerIsBetter = options.monitor.lowerIsBetter
        var augmentRandom = SeededRandom(seed: options.seed, stream: .augment(startEpoch: startEpoch))
        for epoch in startEpoch..<options.epochs {
            var order = trainCache?.indices ?? trainIndices
            if options.shuffle {
                var rng = SeededRandom(seed: options.seed, stream: .shuffle(epoch: epoch))
                order = rng.permutation(order.count).map { order[$0] }
            }
            var lossSum = 0.0, metricSum = 0.0, weightSum = 0.0, seen = 0
            let batches = (order.count + options.batchSize - 1) / options.batchSize
            events(.epochBegin(epoch: epoch + 1, batches: batches))
            func ids(_ b: Int) -> [Int] { Array(order[(b * options.batchSize)..<min(order.count, (b + 1) * options.batchSize)]) }
            // Without the cache, the next batch is decoded while this one trains (one batch ahead,
            // so memory stays bounded by two batches).
            var ahead: Prefetch? = trainCache == nil && batches > 0
                ? Prefetch { try self.batch(ids(0), cache: nil, data: train, height: h, width: w, warning: warning) } : nil
            for b in 0..<batches {
                var next: TrainingBatch
                if let current = ahead {
                    next = try current.value()
                    ahead = b + 1 < batches
                        ? Prefetch { try self.batch(ids(b + 1), cache: nil, data: train, height: h, width: w, warning: warning) } : nil
                } else {
                    next = try batch(ids(b), cache: trainCache, data: train, height: h, width: w, warning: warning)
                }
                var feed = next.feed
                let targets = next.targets
                let n = targets.shape[0]
                if n == 0 { continue }
                if !options.augmentations.isEmpty, case .input(var x) = feed {
                    augment(&x, options.augmentations, &augmentRandom)
                    feed = .input(x)
                }
                let r = network.trainStep(feed, targets: targets, weights: sampleWeights(next, data: train), optimizer: optimizer)
                guard r.loss.isFinite else {
                    _ = try? ahead?.value()
                    throw stopDiverged(epoch + 1, b + 1, r.loss)
                }
                lossSum += r.loss * Double(n); metricSum += r.metricSum; weightSum += r.weightSum; seen += n
                events(.batch(epoch: epoch + 1, done: b + 1, total: batches, loss: lossSum / Double(seen),
                              accuracy: weightSum > 0 ? metricSum / weightSum : 0))
                if stopRequested() { _ = try? ahead?.value(); break }
            }
            // The last update of the epoch can overflow a weight or a slot while every loss was
            // finite; such weights are not kept as the epoch's.
            let now = network.changingWeights()
            let nowOptimizer = (iterations: optimizer.iterations, slots: optimizer.slots)
            guard now.values.allSatisfy(allFinite), nowOptimizer.slots.allSatisfy({ $0.allSatisfy(allFinite) }) else {
                throw stopDiverged(epoch + 1, batches, .nan)
            }
            var record = EpochRecord(epoch: epoch + 1, loss: lossSum / Double(max(seen, 1)),
                                     accuracy: weightSum > 0 ? metricSum / weightSum : 0, learningRate: optimizer.config.learningRate)
            record.metricName = network.metric.name
            if let validation {
                let v = try evaluate(validation.data, indices: validation.indices, cache: valCache, warning: warning)
                record.valLoss = v.loss; record.valAccuracy = v.accuracy
            }
            history.append(record)
            events(.epochEnd(record))
            lastGood = now
            lastGoodOptimizer = nowOptimizer
            if stopRequested() { break }

            // Callbacks, on the monitored metric.
            if let value = options.monitor.value(in: record) {
                let improved = best.map { lowerIsBetter ? value < $0.value : value > $0.value } ?? true
                if improved {
                    sinceBest = 0
                    events(.improved(record))
                    if options.earlyStoppingPatience != nil { best = (value, network.changingWeights()) }
                } else {
                    sinceBest += 1
                }
                if let patience = options.earlyStoppingPatience, sinceBest >= patience {
                    events(.message("early stopping after epoch \(epoch + 1): \(options.monitor.rawValue) did not improve for \(patience) epochs"))
                    break
                }
                if let r = options.reduceLROnPlateau {
                    let signed = lowerIsBetter ? value : -value
                    if signed < plateauBest { plateauBest = signed; sincePlateauBest = 0 } else { sincePlateauBest += 1 }
                    if sincePlateauBest >= r.patience {
                        let lr = max(r.minLR, optimizer.config.learningRate * r.factor)
                        if lr < optimizer.config.learningRate {
                            optimizer.config.learningRate = lr
                            events(.message("reducing the learning rate to \(lr)"))
                        }
                        sincePlateauBest = 0
                    }
                }
            }
        }
        if let best, options.earlyStoppingPatience != nil {
            network.restore(best.weights)
            events(.message("restored the weights of the best epoch (\(options.monitor.rawValue) \(String(format: "%.4f", best.value)))"))
        }
        return history
    }

    /// Loss and metric (accuracy, or mae) over `indices` of `data`, inference mode, unweighted
    /// (Keras's validation ignores class weights).
    package func evaluate(_ data: DataSource, indices: [Int], cache: FeatureCache? = nil,
                         warning: @escaping (String) -> Void = { _ in }) throws -> (loss: Double, accuracy: Double) {
        let (h, w) = imageSize(network.inputShape)
        var lossSum = 0.0, metricSum = 0.0, weightSum = 0.0, seen = 0
        let net = validationNetwork ?? network
        validationNetwork?.restore(network.currentWeights())
        // The training network's cached frontier is not the validation network's.
        let cache = validationNetwork == nil ? cache : nil
        let order = cache?.indices ?? indices
        for startIndex in stride(from: 0, to: order.count, by: options.batchSize) {
            let ids = Array(order[startIndex..<min(order.count, startIndex + options.batchSize)])
            let b = try batch(ids, cache: cache, data: data, height: h, width: w, warning: warning)
            let n = b.targets.shape[0]
            if n == 0 { continue }
            let r = net.evaluateBatch(b.feed, targets: b.targets)
            lossSum += r.loss * Double(n); metricSum += r.metricSum; weightSum += r.weightSum; seen += n
        }
        return (lossSum / Double(max(seen, 1)), weightSum > 0 ? metricSum / weightSum : 0)
    }

    /// The rows a batch trains on: class ids for the categorical losses (one-hot `y` as its
    /// labels), `y` as it is for the others.
    func targets(of b: (x: Tensor, labels: [Int], indices: [Int], targets: Tensor)) -> Tensor {
        options.loss.kind.isCategorical ? TrainingNetwork.classTargets(b.labels) : b.targets
    }

    /// Each sample's weight in the loss: its class's weight (`--class-weight`) times its own
    /// (DATA's `sample_weight`), as Keras multiplies `class_weight` and `sample_weight`; nil when
    /// neither is given.
    func sampleWeights(_ b: TrainingBatch, data: DataSource) -> [Float]? {
        var w = options.classWeights?.sampleWeights(b.targets)
        if let own = data.sampleWeights {
            let mine = b.indices.map { own[$0] }
            w = w.map { zip($0, mine).map { $0 * $1 } } ?? mine
        }
        return w
    }

    private func batch(_ ids: [Int], cache: FeatureCache?, data: DataSource, height: Int, width: Int,
                       warning: @escaping (String) -> Void) throws -> TrainingBatch {
        if let cache {
            let (frontier, targets) = try cache.batch(ids)
            return TrainingBatch(feed: .frontier(frontier), targets: targets, indices: ids)
        }
        let b = try data.batch(ids, height: height, width: width, warning: warning)
        return TrainingBatch(feed: .input(b.x), targets: targets(of: b), indices: b.indices)
    }
}

/// A batch as the epoch loop trains on it: its input (or cached frontier), target rows, and the
/// indices of its samples (unreadable images left out).
struct TrainingBatch {
    var feed: TrainingNetwork.Feed
    var targets: Tensor
    var indices: [Int]
}

/// A batch being read on a background thread.
final class Prefetch: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<TrainingBatch, Error>?

    init(_ load: @escaping () throws -> TrainingBatch) {
        DispatchQueue.global(qos: .userInitiated).async {
            self.result = Result { try load() }
            self.done.signal()
        }
    }

    /// Waits for the batch (once).
    func value() throws -> TrainingBatch {
        done.wait()
        done.signal()
        return try result!.get()
    }
}

/// Whether every value is finite.
func allFinite(_ values: [Float]) -> Bool {
    values.withUnsafeBufferPointer { b in
        var ok = true
        for v in b where !v.isFinite { ok = false; break }
        return ok
    }
}

/// The loss became NaN or infinite; the network and its optimizer hold the weights and state of
/// the last finished epoch.
package struct TrainingDiverged: Error, Sendable {
    package var epoch: Int
    package var batch: Int
    package var loss: Double
}

/// The frozen prefix's frontier values for every sample, computed once (`ExecutionPlan`):
/// one tensor per frontier value, kept side by side per sample.
package final class FeatureCache {
    package let floatsPerSample: Int
    /// Per frontier value, the shape of one sample.
    let featureShapes: [[Int]]
    /// Samples that could be read, in the order given.
    package private(set) var indices: [Int] = []
    /// Per sample, its target row.
    private var targets: [Int: [Float]] = [:]
    private var targetWidth = 1
    private var row: [Int: Int] = [:]
    private var memory: [Float] = []
    private var file: FileHandle?

    init(network: TrainingNetwork, data: DataSource, indices wanted: [Int],
         targets targetsOf: ((x: Tensor, labels: [Int], indices: [Int], targets: Tensor)) -> Tensor, batchSize: Int, memoryLimit: Int,
         progress: (Int, Int) -> Void, warning: @escaping (String) -> Void) throws {
        let (h, w) = imageSize(network.inputShape)
        featureShapes = network.plan.frontier.map { network.graph.valueShapes[$0] }
        let sizes = featureShapes.map { $0.reduce(1, *) }
        let per = sizes.reduce(0, +)
        floatsPerSample = per
        if per * wanted.count * 4 > memoryLimit {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-features-\(UUID().uuidString).bin")
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            file = try FileHandle(forUpdating: url)
            // Unlinked at once: the space is freed when the handle closes, even on a crash.
            try? FileManager.default.removeItem(at: url)
        }
        for start in stride(from: 0, to: wanted.count, by: batchSize) {
            let ids = Array(wanted[start..<min(wanted.count, start + batchSize)])
            let b = try data.batch(ids, height: h, width: w, warning: warning)
            progress(min(wanted.count, start + batchSize), wanted.count)
            if b.indices.isEmpty { continue }
            let values = network.frontierValues(b.x)
            // Sample-major: each sample's frontier values side by side.
            var rows = [Float](repeating: 0, count: b.indices.count * per)
            var offset = 0
            for (v, size) in zip(values, sizes) {
                for k in 0..<b.indices.count {
                    rows.replaceSubrange((k * per + offset)..<(k * per + offset + size), with: v.values[(k * size)..<((k + 1) * size)])
                }
                offset += size
            }
            let t = targetsOf(b)
            targetWidth = t.count / max(b.indices.count, 1)
            for (k, index) in b.indices.enumerated() {
                row[index] = indices.count
                indices.append(index)
                targets[index] = Array(t.values[(k * targetWidth)..<((k + 1) * targetWidth)])
            }
            if let file {
                try rows.withUnsafeBytes { try file.write(contentsOf: Data($0)) }
            } else {
                memory += rows
            }
        }
    }

    deinit { try? file?.close() }

    /// The frontier values of samples `ids` (one tensor per frontier value) and their target rows.
    func batch(_ ids: [Int]) throws -> ([Tensor], Tensor) {
        var rows = [Float](repeating: 0, count: ids.count * floatsPerSample)
        for (k, index) in ids.enumerated() {
            let r = row[index]!
            if let file {
                try file.seek(toOffset: UInt64(r * floatsPerSample * 4))
                let d = try file.read(upToCount: floatsPerSample * 4) ?? Data()
                d.withUnsafeBytes { src in
                    rows.withUnsafeMutableBytes { dst in
                        dst.baseAddress!.advanced(by: k * floatsPerSample * 4).copyMemory(from: src.baseAddress!, byteCount: src.count)
                    }
                }
            } else {
                rows.replaceSubrange((k * floatsPerSample)..<((k + 1) * floatsPerSample),
                                     with: memory[(r * floatsPerSample)..<((r + 1) * floatsPerSample)])
            }
        }
        var out: [Tensor] = []
        var offset = 0
        for shape in featureShapes {
            let size = shape.reduce(1, *)
            var values = [Float](repeating: 0, count: ids.count * size)
            for k in ids.indices {
                values.replaceSubrange((k * size)..<((k + 1) * size), with: rows[(k * floatsPerSample + offset)..<(k * floatsPerSample + offset + size)])
            }
            out.append(Tensor(shape: [ids.count] + shape, values: values))
            offset += size
        }
        return (out, Tensor(shape: [ids.count, targetWidth], values: ids.flatMap { targets[$0]! }))
    }
}
