// Keras's RandomCrop (Engine/Layers/RandomCrop.swift) against tf-keras and Keras 3
// (checkpoints/crop, made by checkpoints/make_crop_fixtures.py): tf-keras's training window for
// the offsets Keras drew, its smart_resize at inference for boxes cut down, up and of another
// aspect ratio, Keras 3's uncropped inference; the models predict as Keras predicts; a Keras 3
// model whose input differs from its crop does not train; backward is the transpose of forward.

import Foundation
import XCTest
@testable import XferKit

final class RandomCropTests: XCTestCase {
    static let dir = Fixtures.root.appendingPathComponent("checkpoints/crop")
    static func path(_ file: String) -> String { dir.appendingPathComponent(file).path }

    /// max |a − b|
    func maxError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    func dot(_ a: [Float], _ b: [Float]) -> Double {
        var sum = 0.0
        for i in a.indices { sum += Double(a[i]) * Double(b[i]) }
        return sum
    }

    func layer(_ config: RandomCropConfig, _ input: [Int]) throws -> RandomCropLayer {
        try RandomCropLayer(name: "crop", config: config, inputShape: input)
    }

    func testTheWindowAndSmartResizeEqualTfKeras() throws {
        let f = try HDF5File.open(Self.path("crops.h5"))
        let x = try f.floats("/x")
        let input = Array(x.shape.dropFirst())
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])

        // The window Keras cut (its offsets found by numpy), cut again here: exactly the same.
        let offset = try f.int64s("/k2_window_offset").values
        var window = [Float](repeating: 0, count: n * 8 * 8 * c)
        x.values.withUnsafeBufferPointer { px in
            window.withUnsafeMutableBufferPointer { py in
                cropWindow(px, into: py, batch: n, height: h, width: w, channels: c,
                           box: CropBox(top: Int(offset[0]), left: Int(offset[1]), height: 8, width: 8))
            }
        }
        XCTAssertEqual(window, try f.floats("/k2_window").values)

        // Inference: smart_resize, down (8x8 from the centred 10x10), to another aspect ratio
        // (6x4), up (16x12), and the identity (12x10).
        for (ch, cw) in [(8, 8), (6, 4), (16, 12), (12, 10)] {
            let keras = try f.floats("/k2_resize_\(ch)x\(cw)")
            let l = try layer(RandomCropConfig(height: ch, width: cw, keras3: false), input)
            XCTAssertEqual(l.outputShape, [ch, cw, c])
            let y = l.forward(Tensor(shape: x.shape, values: x.values), ForwardContext())
            XCTAssertEqual(y.shape, keras.shape)
            let err = maxError(y.values, keras.values)
            XCTAssertLessThanOrEqual(err, 1e-4 * 255, "\(ch)x\(cw): \(err)")
            XCTAssertLessThanOrEqual(err, 3e-5, "\(ch)x\(cw): float32 as TensorFlow computes it")
        }

        // Keras 3 at inference: the images themselves, uncropped.
        let k3 = try layer(RandomCropConfig(height: 8, width: 8, keras3: true), input)
        XCTAssertEqual(k3.outputShape, input)
        XCTAssertEqual(k3.forward(Tensor(shape: x.shape, values: x.values), ForwardContext()).values, try f.floats("/k3_inference").values)
    }

    /// In training, tf-keras cuts one window of the crop's size for the whole batch, at offsets
    /// from the layer's seeded generator: a slice of the input, repeated by the same seed.
    func testTrainingCutsOneSeededWindowForTheBatch() throws {
        let x = try HDF5File.open(Self.path("crops.h5")).floats("/x")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        func run(_ seed: UInt64) throws -> [[Float]] {
            let l = try layer(RandomCropConfig(height: 8, width: 8, keras3: false), [h, w, c])
            l.training = true
            l.random = XferKit.SeededRandom(seed: seed)
            return (0..<6).map { _ in l.forward(Tensor(shape: x.shape, values: x.values), ForwardContext()).values }
        }
        var windows = Set<[Int]>()
        for y in try run(1) {
            let hits = (0...(h - 8)).flatMap { t in (0...(w - 8)).map { [t, $0] } }.filter { o in
                var cut = [Float](repeating: 0, count: n * 64 * c)
                x.values.withUnsafeBufferPointer { px in
                    cut.withUnsafeMutableBufferPointer { py in
                        cropWindow(px, into: py, batch: n, height: h, width: w, channels: c, box: CropBox(top: o[0], left: o[1], height: 8, width: 8))
                    }
                }
                return cut == y
            }
            XCTAssertEqual(hits.count, 1)
            windows.formUnion(hits)
        }
        XCTAssertGreaterThan(windows.count, 1, "the offsets vary from batch to batch")
        XCTAssertEqual(try run(1), try run(1))
        XCTAssertNotEqual(try run(1), try run(2))

        // A smaller input: smart_resize in training too (as Keras's tf.cond takes it), no draw.
        let small = try layer(RandomCropConfig(height: 16, width: 12, keras3: false), [h, w, c])
        small.training = true
        let keras = try HDF5File.open(Self.path("crops.h5")).floats("/k2_resize_16x12")
        XCTAssertLessThanOrEqual(maxError(small.forward(Tensor(shape: x.shape, values: x.values), ForwardContext()).values, keras.values), 3e-5)
    }

    /// smart_resize from its definition, in Double: the centred box of the target's aspect ratio,
    /// each output pixel read at ((i + ½)·box/out − ½) clamped into the box, bilinearly.
    func naiveSmartResize(_ x: [Float], _ n: Int, _ h: Int, _ w: Int, _ c: Int, _ oh: Int, _ ow: Int) -> [Float] {
        let ch = min(h, Int(Double(w * oh) / Double(ow))), cw = min(w, Int(Double(h * ow) / Double(oh)))
        let top = (h - ch) / 2, left = (w - cw) / 2
        func tap(_ i: Int, _ box: Int, _ out: Int) -> (Int, Int, Double) {
            let s = (Double(i) + 0.5) * Double(box) / Double(out) - 0.5
            let f = s.rounded(.down)
            return (max(Int(f), 0), min(Int(s.rounded(.up)), box - 1), s - f)
        }
        var y = [Float](repeating: 0, count: n * oh * ow * c)
        for s in 0..<n {
            for i in 0..<oh {
                let (y0, y1, dy) = tap(i, ch, oh)
                for j in 0..<ow {
                    let (x0, x1, dx) = tap(j, cw, ow)
                    for k in 0..<c {
                        func at(_ r: Int, _ q: Int) -> Double { Double(x[((s * h + top + r) * w + left + q) * c + k]) }
                        let upper = at(y0, x0) * (1 - dx) + at(y0, x1) * dx, lower = at(y1, x0) * (1 - dx) + at(y1, x1) * dx
                        y[((s * oh + i) * ow + j) * c + k] = Float(upper * (1 - dy) + lower * dy)
                    }
                }
            }
        }
        return y
    }

    /// The resize kernel against its naive oracle, for boxes down, up, of another aspect ratio and odd sizes.
    func testResizeEqualsItsNaiveOracle() throws {
        var random = XferKit.SeededRandom(seed: 4)
        for (input, crop) in [([12, 10, 3], (8, 8)), ([6, 5, 2], (8, 8)), ([12, 10, 1], (6, 4)), ([7, 13, 2], (5, 3)), ([9, 9, 1], (4, 7))] {
            let shape = [2] + input
            let x = (0..<shape.reduce(1, *)).map { _ in random.uniform(-1, 1) }
            let l = try layer(RandomCropConfig(height: crop.0, width: crop.1, keras3: false), input)
            let y = l.forward(Tensor(shape: shape, values: x), ForwardContext())
            let want = naiveSmartResize(x, 2, input[0], input[1], input[2], crop.0, crop.1)
            XCTAssertLessThanOrEqual(maxError(y.values, want), 1e-5, "\(input) → \(crop)")
        }
    }

    /// ⟨forward(x), g⟩ = ⟨x, backward(g)⟩ for the window and every resize: backward is forward's transpose.
    func testBackwardIsTheTransposeOfForward() throws {
        var random = XferKit.SeededRandom(seed: 9)
        for (input, crop, training) in [([12, 10, 2], (8, 8), true), ([12, 10, 2], (8, 8), false), ([6, 5, 2], (8, 8), false),
                                        ([12, 10, 2], (6, 4), false), ([9, 9, 1], (4, 7), false)] {
            let l = try layer(RandomCropConfig(height: crop.0, width: crop.1, keras3: false), input)
            l.training = training
            let shape = [3] + input
            let x = Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in random.uniform(-1, 1) })
            let context = ForwardContext()
            let y = l.forward(Tensor(shape: x.shape, values: x.values), context)
            let g = Tensor(shape: y.shape, values: y.values.map { _ in random.uniform(-1, 1) })
            let dx = try XCTUnwrap(l.backward(g, context, needInputGradient: true))
            XCTAssertEqual(dx.shape, shape)
            let lhs = dot(y.values, g.values), rhs = dot(x.values, dx.values)
            XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)), "\(input) → \(crop), training \(training)")
        }
    }

    func testModelsPredictAsKeras() throws {
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.dir.appendingPathComponent("expected.json"))) as! [String: [String: Any]]
        for (file, stem) in [("crop_k2.h5", "crop_k2"), ("crop_k2_same.h5", "crop_k2_same"), ("crop_k2_small.h5", "crop_k2_small"),
                             ("crop_k3.keras", "crop_k3"), ("crop_k3_same.keras", "crop_k3_same")] {
            let checkpoint = try Checkpoint.load(Self.path(file))
            XCTAssertEqual(try ModelSummary(checkpoint.model).totalParams, expected[file]?["total_params"] as? Int, file)
            let data = try DataSource(path: Self.path("\(stem)_data.h5"))
            let mine = try Predictor(model: checkpoint.model).predict(data).probabilities.values
            let keras = try HDF5File.open(Self.path("\(stem)_data.h5")).floats("/y").values
            let err = maxError(mine, keras)
            XCTAssertLessThanOrEqual(err, 1e-6, "\(file): \(err)")
        }
    }

    /// Keras 3's training crop of inputs not larger than the crop both ways (no draw): the
    /// aspect box's corner, a slice, resized when smaller.
    func testTheKeras3TrainingCropEqualsKeras() throws {
        let f = try HDF5File.open(Self.path("crops.h5"))
        for (h, w) in [(8, 12), (6, 10)] {
            let x = try f.floats("/k3_train_in_\(h)x\(w)"), want = try f.floats("/k3_train_\(h)x\(w)")
            var config = RandomCropConfig(height: 8, width: 8, keras3: true)
            config.trainsAtCropSize = true
            let l = try layer(config, [h, w, 3])
            l.training = true
            XCTAssertEqual(l.outputShape, [8, 8, 3])
            let y = l.forward(Tensor(shape: x.shape, values: x.values), ForwardContext())
            XCTAssertEqual(y.shape, want.shape)
            XCTAssertLessThanOrEqual(maxError(y.values, want.values), 3e-5, "\(h)x\(w)")
        }
    }

    /// A network built for training from the model as it is cannot train a Keras 3 crop whose
    /// input differs (it would have to be two shapes); FineTuner trains it at the crop's size and
    /// validates on a network at the input size.
    func testKeras3ModelsWhoseInputDiffersFromTheCropTrainInTwoNetworks() throws {
        let differing = try Checkpoint.load(Self.path("crop_k3.keras")).model
        XCTAssertThrowsError(try TrainingNetwork(model: differing, seed: 1)) { error in
            XCTAssertTrue("\(error)".contains("predicts them uncropped"), "\(error)")
        }
        let tuner = try FineTuner(model: differing, options: FineTuneOptions())
        func cropOutput(_ net: TrainingNetwork?) -> [Int]? {
            guard let net, let node = net.graph.nodes.first(where: { $0.layer.op is RandomCropConfig }) else { return nil }
            return net.graph.valueShapes[node.output]
        }
        XCTAssertEqual(cropOutput(tuner.validationNetwork), [12, 10, 3])
        XCTAssertEqual(cropOutput(tuner.network), [8, 8, 3])
        XCTAssertNil(try keras3CropTrainingModel(try Checkpoint.load(Self.path("crop_k3_same.keras")).model))
        XCTAssertNoThrow(try TrainingNetwork(model: try Checkpoint.load(Self.path("crop_k3_same.keras")).model, seed: 1))
        XCTAssertNoThrow(try TrainingNetwork(model: try Checkpoint.load(Self.path("crop_k2.h5")).model, seed: 1))
        // Keras 3 predicts Flatten → Dense at the uncropped size, and fails; so does xfer, naming the layer.
        XCTAssertThrowsError(try Checkpoint.load(Self.path("crop_k3_flatten.keras"))) { error in
            XCTAssertTrue("\(error)".contains("'predictions'"), "\(error)")
        }
    }
}
