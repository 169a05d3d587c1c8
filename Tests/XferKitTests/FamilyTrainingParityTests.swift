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
            let config = try fixtureOptimizerConfig(c.file, group)
            let net = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
            let optimizer = Optimizer(config)
            let before = net.currentWeights()
            XCTAssertTrue(c.changing.isSubset(of: Set(before.keys)), "\(name): weights Keras changes that xfer lacks: \(c.changing.subtracting(before.keys).sorted())")
            // Each weight within 1e-5 of Keras's beyond the noise bound (Support/StepParity.swift).
            var noise = StepNoiseBound(config)
            for step in 1...2 {
                try noise.beforeStep(net, model: c.model, kerasVersion: c.kerasVersion, x: c.x, labels: c.labels)
                let loss = net.trainStep(c.x, labels: c.labels, optimizer: optimizer).loss
                noise.afterStep(net, optimizer, step: step)
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
                    let err = noise.error(values, keras: k, path: path, step: step, net: net,
                                          wholeNoise: c.zeroGradient.contains(path) && config.kind != .sgd,
                                          zeroGradients: !c.zeroGradient.isEmpty, "\(name) \(opt) step \(step) \(path)")
                    worst[name, default: (0, 0)].weight = max(worst[name]?.weight ?? 0, err)
                    XCTAssertLessThanOrEqual(err, 1e-5, "\(name) \(opt) step \(step) \(path)")
                }
            }
        }
    }
}
