// The epoch loop: Keras's `fit` reproduced (same batch order), the feature cache
// changing nothing, the split, and the callbacks.

import Foundation
import XCTest
@testable import XferKit

final class FineTuneTests: XCTestCase {
    let fitData = Fixtures.root.appendingPathComponent("checkpoints/training/fit_plain.h5").path

    /// `model.fit(x, y, batch_size=4, epochs=2, shuffle=False)` with SGD(0.05, momentum 0.9) on
    /// k2_vgg_full.h5, everything trainable: 3 batches per epoch, the last one partial.
    func testFitEqualsKerasFit() throws {
        let c = try Checkpoint.load(Fixtures.path("k2_vgg_full.h5"))
        let plan = try planFineTuning(c.model, options: FreezeOptions(freezeUntil: "block1", keepTop: true, classes: 5))
        var o = FineTuneOptions()
        o.epochs = 2; o.batchSize = 4; o.shuffle = false
        o.optimizer = OptimizerConfig(kind: .sgd, learningRate: 0.05, momentum: 0.9)
        let tuner = try FineTuner(model: plan.model, kerasVersion: c.kerasVersion, options: o)
        let data = try DataSource(path: fitData)
        let history = try tuner.fit(train: data, trainIndices: Array(0..<data.count))
        let f = try HDF5File.open(fitData)
        let kLoss = try f.floats("/fit/history_loss").values
        for (r, k) in zip(history, kLoss) { XCTAssertEqual(r.loss, Double(k), accuracy: 1e-5, "epoch \(r.epoch) loss") }
        for (path, values) in tuner.network.currentWeights() {
            let k = try f.floats("/fit/weights/\(path)").values
            var err: Float = 0
            for i in k.indices { err = max(err, abs(values[i] - k[i])) }
            XCTAssertLessThanOrEqual(err, 1e-5, path)
        }
    }

    func testFeatureCacheChangesNothing() throws {
        let c = try Checkpoint.load(Fixtures.path("k2_transfer_functional_bn.h5"))
        let data = try DataSource(path: fitData)
        var results: [[String: [Float]]] = []
        for cache in [true, false] {
            let plan = try planFineTuning(c.model, options: FreezeOptions(head: [.flatten, .dense(units: 16, activation: .relu), .dropout(rate: 0.3)], classes: 5, seed: 3))
            var o = FineTuneOptions()
            o.epochs = 3; o.batchSize = 4; o.seed = 3; o.useCache = cache
            o.optimizer = OptimizerConfig(kind: .adam, learningRate: 0.01)
            let tuner = try FineTuner(model: plan.model, kerasVersion: c.kerasVersion, options: o)
            XCTAssertEqual(tuner.usesCache, cache)
            _ = try tuner.fit(train: data, trainIndices: Array(0..<data.count))
            results.append(tuner.network.currentWeights())
        }
        XCTAssertEqual(Set(results[0].keys), Set(results[1].keys))
        for (k, v) in results[0] {
            var err: Float = 0
            for i in v.indices { err = max(err, abs(v[i] - results[1][k]![i])) }
            XCTAssertLessThanOrEqual(err, 1e-5, k)
        }
    }

    /// Graphs whose frozen prefix hands the trainable part two or three tensors (a residual
    /// shortcut, Inception branches, a squeeze-excite gate): the cached frontier trains as the
    /// whole graph does. Data: the training fixtures' Keras batches; flags as the files save them.
    func testFeatureCacheOfAGraphFrontierChangesNothing() throws {
        for (name, frontier) in [("resnet_k2", 2), ("inception_k3", 3), ("se_k2", 2)] {
            let path = Fixtures.root.appendingPathComponent("checkpoints/training/\(name).h5").path
            let source = try HDF5File.open(path).string("/", "source")!
            let c = try Checkpoint.load(Fixtures.path(source))
            let data = try DataSource(path: path)
            var results: [[String: [Float]]] = []
            for cache in [true, false] {
                var options = FreezeOptions(keepTop: true, classes: 5)
                options.keepFlags = true
                let plan = try planFineTuning(c.model, options: options)
                var o = FineTuneOptions()
                o.epochs = 2; o.batchSize = 4; o.seed = 1; o.useCache = cache
                o.optimizer = OptimizerConfig(kind: .sgd, learningRate: 0.05, momentum: 0.9)
                let tuner = try FineTuner(model: plan.model, kerasVersion: c.kerasVersion, options: o)
                XCTAssertEqual(tuner.usesCache, cache, name)
                XCTAssertEqual(tuner.network.plan.frontier.count, frontier, name)
                _ = try tuner.fit(train: data, trainIndices: Array(0..<data.count))
                results.append(tuner.network.currentWeights())
            }
            for (k, v) in results[0] {
                var err: Float = 0
                for i in v.indices { err = max(err, abs(v[i] - results[1][k]![i])) }
                XCTAssertLessThanOrEqual(err, 1e-5, "\(name) \(k)")
            }
        }
    }

    /// Early stopping's best epoch and the roll-back after a diverged batch put every weight back,
    /// BatchNormalization's moving statistics included (Keras's `set_weights`).
    func testRestorePutsBackMovingStatistics() throws {
        let c = try Checkpoint.load(Fixtures.path("k2_vgg_bn.h5"))
        let plan = try planFineTuning(c.model, options: FreezeOptions(freezeUntil: "block1", keepTop: true, classes: 5))
        let net = try TrainingNetwork(model: plan.model, seed: 0)
        let data = try DataSource(path: fitData)
        let b = try data.batch(Array(0..<4), height: net.inputShape[0], width: net.inputShape[1], warning: { _ in })
        let before = net.currentWeights()
        net.trainStep(b.x, labels: b.labels, optimizer: Optimizer(OptimizerConfig(kind: .sgd, learningRate: 0.1)))
        let moved = before.keys.filter { $0.hasSuffix("moving_mean") && net.currentWeights()[$0] != before[$0] }
        XCTAssertFalse(moved.isEmpty, "a training step moves the moving means")
        net.restore(before)
        XCTAssertEqual(net.currentWeights(), before)
        XCTAssertEqual(net.forwardLogits(.input(b.x)), try TrainingNetwork(model: plan.model, seed: 0).forwardLogits(.input(b.x)))
    }

    func testStratifiedSplitNeverOverlapsAndKeepsEveryClass() {
        let labels = (0..<103).map { $0 % 3 == 0 ? 0 : ($0 % 7 == 0 ? 2 : 1) }
        let s = stratifiedSplit(labels: labels, classes: 3, fraction: 0.2, seed: 7)
        XCTAssertTrue(Set(s.training).isDisjoint(with: s.validation))
        XCTAssertEqual(s.training.count + s.validation.count, labels.count)
        for c in 0..<3 { XCTAssertGreaterThan(s.perClass[c].validation, 0) }
        XCTAssertEqual(s, stratifiedSplit(labels: labels, classes: 3, fraction: 0.2, seed: 7))
    }

    func testEarlyStoppingRestoresTheBestWeights() throws {
        let c = try Checkpoint.load(Fixtures.path("k2_transfer_functional_bn.h5"))
        let data = try DataSource(path: fitData)
        let plan = try planFineTuning(c.model, options: FreezeOptions(head: [.flatten], classes: 5))
        var o = FineTuneOptions()
        // A learning rate far too high: the training loss gets worse after the first epochs.
        o.epochs = 8; o.batchSize = 10; o.shuffle = false; o.monitor = .loss; o.earlyStoppingPatience = 2
        o.optimizer = OptimizerConfig(kind: .sgd, learningRate: 5)
        let tuner = try FineTuner(model: plan.model, kerasVersion: c.kerasVersion, options: o)
        var bestEpochWeights: [String: [Float]] = [:]
        var bestLoss = Double.infinity
        let history = try tuner.fit(train: data, trainIndices: Array(0..<data.count), events: { e in
            if case .epochEnd(let r) = e, r.loss < bestLoss { bestLoss = r.loss; bestEpochWeights = tuner.network.changingWeights() }
        })
        XCTAssertLessThan(history.count, 8, "stopped early")
        // Keras's restore_best_weights: the weights as they were at the end of the best epoch.
        let restored = tuner.network.changingWeights()
        XCTAssertFalse(bestEpochWeights.isEmpty)
        for (k, v) in bestEpochWeights { XCTAssertEqual(restored[k], v, k) }
    }
}
