// Training the keras.applications families against Keras, step for step (fixtures:
// checkpoints/training/families, made by checkpoints/make_family_training_fixtures.py): one
// miniature per family's wiring (residual ResNet, depthwise MobileNetV2, hard-swish and
// squeeze-excite MobileNetV3 and EfficientNet, concatenating DenseNet, LayerNormalization and
// LayerScale ConvNeXt), each saved by
// Keras 3 with its stem and one normalisation inside the trainable part frozen. Held to Keras:
// the loss and tf.GradientTape's gradient of every trainable weight (≤ 1e-4 relative per tensor,
// as TrainingParityTests), the loss of each of two `train_on_batch` steps of SGD with momentum and
// of Adam, and after the second every weight that may change (trainable weights, moving statistics of the training BNs:
// ≤ 1e-5, relative above 1; Adam's amplification of gradient noise bounded as in
// TrainingParityTests) while every other weight stays bit for bit as loaded.

import Foundation
import XCTest
@testable import XferKit

final class FamilyTrainingParityTests: XCTestCase {
    static let dir = Fixtures.root.appendingPathComponent("checkpoints/training/families")
    static let families = ["resnet", "mobilenetv2", "mobilenetv3", "efficientnet", "densenet", "convnext"]

    struct Case {
        var file: HDF5File
        var model: ModelSpec
        var kerasVersion: String?
        var x: Tensor
        var labels: [Int]
        var zeroGradient: Set<String>
        var changing: Set<String>
        var trainable: Set<String>
    }

    func load(_ name: String) throws -> Case {
        let f = try HDF5File.open(Self.dir.appendingPathComponent("\(name).h5").path)
        let source = try f.string("/", "source")!
        let c = try Checkpoint.load(Self.dir.appendingPathComponent(source).path)
        let x = try f.floats("/x"), y = try f.floats("/y")
        let classes = y.shape[1]
        let labels = (0..<y.shape[0]).map { i -> Int in
            let row = y.values[(i * classes)..<((i + 1) * classes)]
            return row.indices.max { row[$0] < row[$1] }! - i * classes
        }
        func list(_ attr: String) throws -> Set<String> {
            Set(try JSONDecoder().decode([String].self, from: Data((try f.string("/", attr) ?? "[]").utf8)))
        }
        return Case(file: f, model: c.model, kerasVersion: c.kerasVersion, x: Tensor(shape: x.shape, values: x.values),
                    labels: labels, zeroGradient: try list("zero_gradient_weights"),
                    changing: try list("changing_weights"), trainable: try list("trainable_weights"))
    }

    /// max |a − b| / max(max |b|, tiny)
    func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        var m: Float = 0, scale: Float = 1e-12
        for i in b.indices { m = max(m, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return m / scale
    }

    func optimizerConfig(_ file: HDF5File, _ group: String) throws -> OptimizerConfig {
        let cls = try file.string(group, "optimizer")!
        let cfg = try JSONSerialization.jsonObject(with: Data(try file.string(group, "config")!.utf8)) as! [String: Any]
        var o = OptimizerConfig(kind: cls == "Adam" ? .adam : .sgd, learningRate: Float(cfg["learning_rate"] as! Double),
                                momentum: Float(cfg["momentum"] as? Double ?? 0), nesterov: cfg["nesterov"] as? Bool ?? false)
        if let e = cfg["epsilon"] as? Double { o.epsilon = Float(e) }
        if let b = cfg["beta_1"] as? Double { o.beta1 = Float(b) }
        if let b = cfg["beta_2"] as? Double { o.beta2 = Float(b) }
        return o
    }

    /// Worst errors seen, per family, printed at the end (the numbers the fixtures' README quotes).
    var worst: [String: (gradient: Float, weight: Float)] = [:]

    /// In both convolution cores (Fixtures.swift, `forEachConvolutionPath`), at the same tolerances.
    func testGradientsEqualGradientTape() throws {
        try forEachConvolutionPath { _ in
            for name in Self.families { try gradientsEqualGradientTape(name) }
        }
        for name in Self.families { print("\(name): max relative gradient error \(worst[name]?.gradient ?? 0)") }
    }

    func gradientsEqualGradientTape(_ name: String) throws {
        let c = try load(name)
        let net = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
        let (loss, grads) = net.gradients(c.x, labels: c.labels)
        let kerasLoss = try c.file.floats("/forward/loss").values[0]
        XCTAssertEqual(loss, Double(kerasLoss), accuracy: 1e-5 * max(1, abs(Double(kerasLoss))), "\(name) loss")
        XCTAssertEqual(Set(grads.keys), c.trainable, "\(name): xfer trains exactly Keras's trainable weights")
        for path in c.trainable.sorted() {
            let k = try c.file.floats("/grads/" + path).values
            guard let mine = grads[path] else { XCTFail("\(name): no gradient for \(path)"); continue }
            guard mine.count == k.count else { XCTFail("\(name) \(path): \(mine.count) values, Keras \(k.count)"); continue }
            if c.zeroGradient.contains(path) {
                // A conv bias feeding a training-mode BatchNormalization: exactly 0 in theory,
                // float32 noise in both frameworks.
                for v in mine + k { XCTAssertLessThanOrEqual(abs(v), 1e-6, "\(name) \(path)") }
            } else {
                let e = relativeError(mine, k)
                worst[name, default: (0, 0)].gradient = max(worst[name]?.gradient ?? 0, e)
                XCTAssertLessThanOrEqual(e, 1e-4, "\(name) \(path)")
            }
        }
    }

    /// In both convolution cores, at the same tolerances.
    func testTwoStepsEqualTrainOnBatch() throws {
        try forEachConvolutionPath { _ in
            for name in Self.families { try twoStepsEqualTrainOnBatch(name) }
        }
        for name in Self.families { print("\(name): max weight error after two steps \(worst[name]?.weight ?? 0)") }
    }

    func twoStepsEqualTrainOnBatch(_ name: String) throws {
        let c = try load(name)
        for opt in try c.file.children("/steps") {
            let group = "/steps/\(opt)"
            let config = try optimizerConfig(c.file, group)
            let net = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
            let optimizer = Optimizer(config)
            let before = net.currentWeights()
            XCTAssertTrue(c.changing.isSubset(of: Set(before.keys)), "\(name): weights Keras changes that xfer lacks: \(c.changing.subtracting(before.keys).sorted())")
            // Adam divides each gradient element by its own running magnitude, so where that is
            // small the gradient's float32 noise (the 1e-4 to which gradients agree with Keras) is
            // amplified: each element is held to 1e-5 plus α·(1−β1)·δg/(√v + ε) per step, with
            // δg = 1e-4 · max |g| of its tensor (as TrainingParityTests).
            var propagated: [String: [Float]] = [:]
            for step in 1...2 {
                var delta: [String: Float] = [:]
                if config.kind == .adam {
                    let copy = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
                    copy.restore(net.currentWeights())
                    for (path, g) in copy.gradients(c.x, labels: c.labels).gradients {
                        delta[path] = 1e-4 * (g.map { abs($0) }.max() ?? 0)
                    }
                }
                let loss = net.trainStep(c.x, labels: c.labels, optimizer: optimizer).loss
                if config.kind == .adam {
                    let t = Float(step)
                    let alpha = config.learningRate * (1 - powf(config.beta2, t)).squareRoot() / (1 - powf(config.beta1, t))
                    for (i, path) in net.parameterPaths.enumerated() {
                        let v = optimizer.slots[i][1]
                        let dg = delta[path] ?? 0
                        var bound = propagated[path] ?? [Float](repeating: 0, count: v.count)
                        for j in v.indices { bound[j] += alpha * (1 - config.beta1) * dg / (v[j].squareRoot() + config.epsilon) }
                        propagated[path] = bound
                    }
                }
                let kLoss = Double(try c.file.floats("\(group)/\(step)/loss").values[0])
                XCTAssertEqual(loss, kLoss, accuracy: 1e-5 * max(1, abs(kLoss)), "\(name) \(opt) step \(step) loss")
                // The fixtures hold the weights after the second step only (and both losses).
                guard c.file.kind("\(group)/\(step)/weights") != nil else { continue }
                for (path, values) in net.currentWeights() {
                    guard c.changing.contains(path) else {
                        XCTAssertEqual(values, before[path], "\(name) \(opt): \(path) changed; Keras leaves it")
                        continue
                    }
                    let k = try c.file.floats("\(group)/\(step)/weights/\(path)").values
                    let wholeNoise = c.zeroGradient.contains(path) && config.kind == .adam
                    var bound = propagated[path]
                    // That noisy bias shifts the batch mean of the BN it feeds by up to lr per
                    // step, and so the BN's moving mean by (1 − momentum)·lr per earlier step.
                    if config.kind == .adam, !c.zeroGradient.isEmpty, path.hasSuffix("/moving_mean"),
                       let bn = net.graph.nodes.first(where: { $0.path + "/moving_mean" == path }),
                       let b = bn.layer.op as? BatchNormConfig {
                        let shift = (1 - b.momentum) * config.learningRate * Float(step - 1) * 1.01
                        bound = (bound ?? [Float](repeating: 0, count: values.count)).map { $0 + shift }
                    }
                    var err: Float = 0
                    for i in k.indices {
                        let d = abs(values[i] - k[i])
                        if wholeNoise {
                            // A gradient of pure noise: Adam's step is anything up to lr.
                            XCTAssertLessThanOrEqual(d, config.learningRate * Float(step) * 1.01, "\(name) \(opt) step \(step) \(path)[\(i)]")
                        } else {
                            err = max(err, (d - (bound?[i] ?? 0)) / max(1, abs(k[i])))
                        }
                    }
                    worst[name, default: (0, 0)].weight = max(worst[name]?.weight ?? 0, err)
                    XCTAssertLessThanOrEqual(err, 1e-5, "\(name) \(opt) step \(step) \(path)")
                }
            }
        }
    }
}
