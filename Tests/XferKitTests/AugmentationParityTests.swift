// The augmentation layers' transforms against Keras's for the same draws
// (checkpoints/augment/transforms.h5, made by checkpoints/make_augment_fixtures.py): Keras's
// random draws cannot be reproduced, so each case fixes them (angles, zooms, shifts, factors,
// deltas, flips) and compares the images, ≤ 1e-4 of the 0…255 scale, every fill mode and
// interpolation; and `--augment`'s seeded draws repeat.

import Foundation
import XCTest
@testable import XferKit

final class AugmentationParityTests: XCTestCase {
    static let path = Fixtures.root.appendingPathComponent("checkpoints/augment/transforms.h5").path

    struct Params: Decodable {
        var degrees: [Float]?
        var zooms: [[Float]]?
        var shifts: [[Float]]?
        var factors: [Float]?
        var deltas: [Float]?
        var flips: [Bool]?
        var mode: String?
        var value_range: [Float]?
        var preprocess: String?
        var fill_mode: String?
        var interpolation: String?
        var fill_value: Float?
    }

    /// max |a − b| / max(1, max |b|)
    func error(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        var m: Float = 0, scale: Float = 1
        for i in b.indices { m = max(m, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return m / scale
    }

    func testEveryTransformEqualsKerasForTheSameDraws() throws {
        let f = try HDF5File.open(Self.path)
        let raw = try f.floats("/images")
        let (n, h, w, c) = (raw.shape[0], raw.shape[1], raw.shape[2], raw.shape[3])
        let per = h * w * c
        var checked = 0
        for name in try f.children("/") where name != "images" {
            let kind = try f.string("/\(name)", "kind")!
            let p = try JSONDecoder().decode(Params.self, from: Data(try f.string("/\(name)", "params")!.utf8))
            let expected = try f.floats("/\(name)/out").values
            var x = f.exists("/\(name)/input") ? try f.floats("/\(name)/input").values : raw.values
            let fill = FillMode(rawValue: p.fill_mode ?? "reflect")!
            let interpolation = Interpolation(rawValue: p.interpolation ?? "bilinear")!
            let ranges = p.preprocess.map { ChannelRanges(preprocess: PreprocessMode(rawValue: $0)!) }
                ?? ChannelRanges(p.value_range?[0] ?? 0, p.value_range?[1] ?? 255)
            var matrices: [[Float]] = []
            switch kind {
            case "rotation": matrices = p.degrees!.map { rotationTransform(degrees: $0, height: h, width: w) }
            case "zoom": matrices = p.zooms!.map { zoomTransform(heightZoom: $0[0], widthZoom: $0[1], height: h, width: w) }
            case "translation": matrices = p.shifts!.map { translationTransform(dx: $0[0], dy: $0[1]) }
            default: break
            }
            if !matrices.isEmpty {
                let k = try f.floats("/\(name)/matrix").values
                XCTAssertLessThanOrEqual(error(matrices.flatMap { $0 }, k), 1e-5, "\(name): the matrix")
                var t = Tensor(shape: [n, h, w, c], values: x)
                projectiveTransformBatch(&t, transforms: matrices, fill: fill, fillValue: p.fill_value ?? 0, interpolation: interpolation)
                x = t.values
            } else {
                x.withUnsafeMutableBufferPointer { all in
                    for s in 0..<n {
                        let img = UnsafeMutableBufferPointer(rebasing: all[(s * per)..<((s + 1) * per)])
                        switch kind {
                        case "contrast": adjustContrast(img, height: h, width: w, channels: c, factor: p.factors![s], ranges: ranges)
                        case "brightness": adjustBrightness(img, channels: c, delta: p.deltas![s], ranges: ranges)
                        case "flip":
                            let mode = RandomFlipConfig.Mode(rawValue: p.mode!)!
                            if p.flips![s] { flipImage(img, height: h, width: w, channels: c, horizontal: mode != .vertical, vertical: mode != .horizontal) }
                        default: XCTFail("\(name): unknown kind \(kind)")
                        }
                    }
                }
            }
            XCTAssertLessThanOrEqual(error(x, expected), 1e-4, "\(name)")
            if kind != "flip" || p.flips!.contains(true) { XCTAssertGreaterThan(error(raw.values, expected), 1e-2, "\(name): the case changes the images") }
            checked += 1
        }
        XCTAssertEqual(checked, 29, "every case of the fixture")
    }

    /// Every `--augment` name through the same entry point the trainer calls: the same seed gives
    /// the same batch, another seed another, and every value stays finite and in the clip range.
    func testSeededAugmentationRepeats() throws {
        let f = try HDF5File.open(Self.path)
        let raw = try f.floats("/images")
        var pre = raw.values
        pre.withUnsafeMutableBufferPointer { PreprocessMode.caffe.apply(to: $0) }
        let list = try parseAugmentations("flip:horizontal_and_vertical,rotation:0.1,zoom:0.2:0.1,translation:0.1,contrast:0.2,brightness:0.2,crop")
        XCTAssertEqual(list.map(\.name), ["flip:horizontal_and_vertical", "rotation:0.1", "zoom:0.2:0.1", "translation:0.1", "contrast:0.2", "brightness:0.2", "crop"])
        func run(_ seed: UInt64) -> [Float] {
            var x = Tensor(shape: raw.shape, values: pre)
            var r = XferKit.SeededRandom(seed: seed, stream: .augment(startEpoch: 0))
            augment(&x, list, &r)
            return x.values
        }
        let a = run(7), b = run(7), other = run(8)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, other)
        XCTAssertNotEqual(a, pre)
        // brightness clipped after the warps: each channel in 0…255 as caffe maps it (± rounding).
        let ranges = ChannelRanges(preprocess: .caffe)
        for (i, v) in a.enumerated() {
            XCTAssertTrue(v.isFinite)
            XCTAssertLessThanOrEqual(v, ranges.upper[i % 3] + 1e-3)
            XCTAssertGreaterThanOrEqual(v, ranges.lower[i % 3] - 1e-3)
        }
    }

    func testBadAugmentSpecsAreUsageErrors() {
        for bad in ["rotation", "rotation:x", "zoom:1.5", "translation:0.1:0.2:0.3", "contrast:-1", "flip:diagonal", "blur", "crop:0.5"] {
            XCTAssertThrowsError(try parseAugmentations(bad), bad) { e in
                XCTAssertEqual((e as? XferError)?.kind, .usage, "\(bad): \(e)")
            }
        }
    }
}

extension AugmentationParityTests {
    /// A random layer after a trainable one would need a gradient through its transform: refused
    /// when the training network is built, naming the layer; frozen before it, it trains.
    func testATrainableLayerBeforeARandomOneIsRefused() throws {
        var rng = XferKit.SeededRandom(seed: 3)
        func floats(_ n: Int) -> [Float] { (0..<n).map { _ in rng.uniform(-0.5, 0.5) } }
        func model(convTrainable: Bool) -> ModelSpec {
            ModelSpec(name: "m", className: "Sequential", inputShape: [6, 6, 2], layers: [
                LayerSpec(name: "conv", op: Conv2DConfig(filters: 2, kernelSize: (3, 3)), trainable: convTrainable,
                          weights: [WeightSpec(role: .kernel, shape: [3, 3, 2, 2], values: floats(36)), WeightSpec(role: .bias, shape: [2], values: floats(2))]),
                LayerSpec(name: "spin", op: RandomRotationConfig(lower: -0.1, upper: 0.1)),
                LayerSpec(name: "flat", op: FlattenConfig()),
                LayerSpec(name: "head", op: DenseConfig(units: 2, activation: .softmax),
                          weights: [WeightSpec(role: .kernel, shape: [32, 2], values: floats(64)), WeightSpec(role: .bias, shape: [2], values: floats(2))]),
            ])
        }
        XCTAssertThrowsError(try TrainingNetwork(model: model(convTrainable: true), seed: 0)) { e in
            XCTAssertEqual((e as? XferError)?.kind, .badInput)
            XCTAssertTrue("\(e)".contains("spin") && "\(e)".contains("RandomRotation"), "\(e)")
        }
        let net = try TrainingNetwork(model: model(convTrainable: false), seed: 0)
        let x = Tensor(shape: [2, 6, 6, 2], values: floats(144))
        XCTAssertFalse(net.plan.cached, "a random layer in the frozen prefix: no feature cache")
        let step = net.trainStep(x, labels: [0, 1], optimizer: Optimizer(OptimizerConfig(kind: .sgd)))
        XCTAssertTrue(step.loss.isFinite)
    }
}
