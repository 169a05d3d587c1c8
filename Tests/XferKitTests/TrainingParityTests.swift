// Training against Keras, step for step (fixtures: checkpoints/training, made by
// checkpoints/make_training_fixtures.py): gradients from tf.GradientTape, the loss
// and every weight after one and two `train_on_batch` steps per optimizer, BN moving
// statistics, frozen weights untouched; and the freeze planner's counts against
// Keras's after the same freeze.

import Foundation
import XCTest
@testable import XferKit

final class TrainingParityTests: XCTestCase {
    static let dir = Fixtures.root.appendingPathComponent("checkpoints/training")
    /// Chains, then graphs (residual Add, Concatenate, squeeze-excite Multiply, every merge kind,
    /// a shared layer), each in Keras 2 and Keras 3; the graph cases freeze a prefix whose
    /// frontier is two or three tensors (checkpoints/README.md).
    static let cases = ["plain", "bn_k2", "bn_k3", "nested", "nested_block5", "frozen_then_one"]
        + ["resnet", "inception", "se", "merge_zoo", "shared"].flatMap { ["\($0)_k2", "\($0)_k3"] }

    struct Case {
        var file: HDF5File
        var model: ModelSpec
        var kerasVersion: String?
        var x: Tensor
        var labels: [Int]
        var zeroGradient: Set<String>
    }

    func load(_ name: String) throws -> Case {
        let f = try HDF5File.open(Self.dir.appendingPathComponent("\(name).h5").path)
        let source = try f.string("/", "source")!
        let c = try Checkpoint.load(Fixtures.path(source))
        var model = c.model
        // The fixtures set Dropout rates to 0 (attribute dropout_zeroed) so training is deterministic.
        model = zeroDropout(model)
        let x = try f.floats("/x"), y = try f.floats("/y")
        let classes = y.shape[1]
        let labels = (0..<y.shape[0]).map { i -> Int in
            let row = y.values[(i * classes)..<((i + 1) * classes)]
            return row.indices.max { row[$0] < row[$1] }! - i * classes
        }
        let zero = Set((try? JSONDecoder().decode([String].self, from: Data((try f.string("/", "zero_gradient_weights") ?? "[]").utf8))) ?? [])
        return Case(file: f, model: model, kerasVersion: c.kerasVersion, x: Tensor(shape: x.shape, values: x.values), labels: labels, zeroGradient: zero)
    }

    func zeroDropout(_ m: ModelSpec) -> ModelSpec {
        var m = m
        for i in m.layers.indices {
            if var d = m.layers[i].op as? DropoutConfig {
                d.rate = 0; m.layers[i].kind = .dropout(d)
            } else if case .model(let inner) = m.layers[i].kind {
                m.layers[i].kind = .model(zeroDropout(inner))
            }
        }
        return m
    }

    /// max |a − b| / max(max |b|, tiny)
    func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        var m: Float = 0, scale: Float = 1e-12
        for i in b.indices { m = max(m, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return m / scale
    }

    /// In both convolution cores (Fixtures.swift, `forEachConvolutionPath`), at the same tolerances.
    func testGradientsEqualGradientTape() throws {
        try forEachConvolutionPath { _ in try gradientsEqualGradientTape() }
    }

    func gradientsEqualGradientTape() throws {
        for name in Self.cases {
            let c = try load(name)
            let net = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
            let (loss, grads) = net.gradients(c.x, labels: c.labels)
            let kerasLoss = try c.file.floats("/forward/loss").values[0]
            XCTAssertEqual(loss, Double(kerasLoss), accuracy: 1e-5 * max(1, abs(Double(kerasLoss))), "\(name) loss")
            let expected = try c.file.children("/grads")
            var count = 0
            func visit(_ path: String) throws {
                for child in try c.file.children("/grads/" + path) {
                    let full = path.isEmpty ? child : "\(path)/\(child)"
                    if c.file.kind("/grads/" + full) == .dataset {
                        let k = try c.file.floats("/grads/" + full).values
                        guard let mine = grads[full] else { XCTFail("\(name): no gradient for \(full)"); continue }
                        if c.zeroGradient.contains(full) {
                            // A conv bias feeding a training-mode BatchNormalization: exactly 0 in
                            // theory, float32 noise in both frameworks.
                            for v in mine + k { XCTAssertLessThanOrEqual(abs(v), 1e-6, "\(name) \(full)") }
                        } else {
                            XCTAssertLessThanOrEqual(relativeError(mine, k), 1e-4, "\(name) \(full)")
                        }
                        count += 1
                    } else {
                        try visit(full)
                    }
                }
            }
            _ = expected
            try visit("")
            XCTAssertEqual(count, grads.count, "\(name): every trainable weight has a Keras gradient")
        }
    }

    /// In both convolution cores, at the same tolerances.
    func testTwoStepsEqualTrainOnBatch() throws {
        try forEachConvolutionPath { _ in try twoStepsEqualTrainOnBatch() }
    }

    func twoStepsEqualTrainOnBatch() throws {
        for name in Self.cases {
            let c = try load(name)
            for opt in try c.file.children("/steps") {
                let group = "/steps/\(opt)"
                let config = try fixtureOptimizerConfig(c.file, group)
                let net = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
                let optimizer = Optimizer(config)
                let before = net.currentWeights()
                // Each weight within 1e-5 of Keras's beyond the noise bound (Support/StepParity.swift).
                var noise = StepNoiseBound(config)
                for step in 1...2 {
                    try noise.beforeStep(net, model: c.model, kerasVersion: c.kerasVersion, x: c.x, labels: c.labels)
                    let loss = net.trainStep(c.x, labels: c.labels, optimizer: optimizer).loss
                    noise.afterStep(net, optimizer, step: step)
                    let kLoss = Double(try c.file.floats("\(group)/\(step)/loss").values[0])
                    XCTAssertEqual(loss, kLoss, accuracy: 1e-5 * max(1, abs(kLoss)), "\(name) \(opt) step \(step) loss")
                    let now = net.currentWeights()
                    for (path, values) in now {
                        let ds = "\(group)/\(step)/weights/\(path)"
                        guard c.file.kind(ds) == .dataset else { XCTFail("\(name): Keras has no \(path)"); continue }
                        let k = try c.file.floats(ds).values
                        let worst = noise.error(values, keras: k, path: path, step: step, net: net,
                                                wholeNoise: c.zeroGradient.contains(path) && config.kind != .sgd,
                                                zeroGradients: !c.zeroGradient.isEmpty, "\(name) \(opt) step \(step) \(path)")
                        XCTAssertLessThanOrEqual(worst, 1e-5, "\(name) \(opt) step \(step) \(path)")
                        if let b = before[path], !net.isTrainable(path) && !path.hasSuffix("moving_mean") && !path.hasSuffix("moving_variance") {
                            XCTAssertEqual(values, b, "\(name): frozen \(path) changed")
                        }
                    }
                }
            }
        }
    }

    struct FreezeCase: Decodable {
        var id: String
        var checkpoint: String
        var args: [String]
        var classes: Int
        var total_params: Int
        var trainable_params: Int
        var non_trainable_params: Int
    }

    func testDryRunCountsEqualKerasAfterTheSameFreeze() throws {
        let cases = try JSONDecoder().decode([FreezeCase].self, from: Data(contentsOf: Self.dir.appendingPathComponent("freeze_counts.json")))
        XCTAssertGreaterThanOrEqual(cases.count, 8)
        for k in cases {
            var options = FreezeOptions(classes: k.classes)
            var i = 0
            while i < k.args.count {
                switch k.args[i] {
                case "--freeze-until": options.freezeUntil = k.args[i + 1]; i += 2
                case "--keep-top": options.keepTop = true; i += 1
                case "--head": options.head = try parseHead(k.args[i + 1]); i += 2
                default: XCTFail("unknown arg \(k.args[i])"); i += 1
                }
            }
            let model = try Checkpoint.load(Fixtures.path(k.checkpoint)).model
            let plan = try planFineTuning(model, options: options)
            let s = try ModelSummary(plan.model)
            XCTAssertEqual(s.totalParams, k.total_params, "case \(k.id)")
            XCTAssertEqual(s.trainableParams, k.trainable_params, "case \(k.id)")
            XCTAssertEqual(s.nonTrainableParams, k.non_trainable_params, "case \(k.id)")
        }
    }
}
