// Grouped Conv2D (Engine/Layers/GroupedConv2D.swift): the fast path against the naive oracle,
// forward and backward, on several shapes, thread counts and workspace sizes; gradient
// accumulation, `needInputGradient` and `trainable`; and against Keras on checkpoints/grouped
// (made by checkpoints/make_grouped_conv_fixtures.py, tf-keras .h5 and Keras 3 .keras): import
// counts, predict, the layer's output and GradientTape gradients, the whole model's gradients
// and the weights after two SGD-with-momentum train_on_batch steps.

import Foundation
import XCTest
@testable import XferKit

final class GroupedConv2DTests: XCTestCase {
    struct Case {
        var batch: Int, h: Int, w: Int, c: Int, o: Int, groups: Int
        var k: (Int, Int), s: (Int, Int) = (1, 1), d: (Int, Int) = (1, 1)
        var padding: Padding
        var activation: Activation = .linear
        var useBias = true
    }

    static let cases: [Case] = [
        Case(batch: 2, h: 5, w: 6, c: 4, o: 6, groups: 2, k: (3, 3), padding: .same),
        Case(batch: 3, h: 7, w: 7, c: 8, o: 12, groups: 4, k: (3, 3), s: (2, 2), padding: .valid, activation: .relu),
        Case(batch: 1, h: 8, w: 7, c: 6, o: 9, groups: 3, k: (3, 3), s: (2, 2), padding: .same),
        Case(batch: 2, h: 7, w: 6, c: 8, o: 4, groups: 4, k: (3, 2), d: (2, 2), padding: .same, useBias: false),
        Case(batch: 2, h: 4, w: 5, c: 12, o: 6, groups: 6, k: (1, 1), padding: .valid, activation: .tanh),
        Case(batch: 1, h: 6, w: 5, c: 16, o: 16, groups: 2, k: (5, 5), padding: .same),
    ]

    func makeLayer(_ t: Case, _ rng: inout SeededRandom) throws -> GroupedConv2DLayer {
        let config = Conv2DConfig(filters: t.o, kernelSize: (t.k.0, t.k.1), strides: (t.s.0, t.s.1), padding: t.padding,
                                  dilation: (t.d.0, t.d.1), useBias: t.useBias, activation: t.activation, groups: t.groups)
        let layer = try GroupedConv2DLayer(name: "gconv", config: config, inputShape: [t.h, t.w, t.c],
                                           kernel: rng.floats(t.k.0 * t.k.1 * t.c / t.groups * t.o),
                                           bias: t.useBias ? rng.floats(t.o) : nil)
        layer.trainable = true
        return layer
    }

    /// dz from dL/dy = r for the activations of the cases.
    func dz(_ r: [Float], _ y: Tensor, _ activation: Activation) -> Tensor {
        Tensor(shape: y.shape, values: zip(r, y.values).map { g, v in
            switch activation {
            case .linear: return g
            case .relu: return v > 0 ? g : 0
            case .tanh: return g * (1 - v * v)
            default: preconditionFailure("no reference for \(activation)")
            }
        })
    }

    func testFastPathEqualsTheDefinition() throws {
        let saved = ThreadPool.shared.threadCount
        defer { ThreadPool.shared.threadCount = saved }
        var rng = SeededRandom(seed: 211)
        var worst: (y: Float, dx: Float, dk: Float, db: Float) = (0, 0, 0, 0)
        for (index, t) in Self.cases.enumerated() {
            let layer = try makeLayer(t, &rng)
            let x = rng.tensor([t.batch, t.h, t.w, t.c])
            let want = groupedConv2DForwardNaive(x, layer.geometry, groups: t.groups, kernel: layer.kernel, bias: layer.bias, t.activation)
            let r = rng.floats(want.count)
            let grads = groupedConv2DBackwardNaive(x, layer.geometry, groups: t.groups, kernel: layer.kernel, dz: dz(r, want, t.activation))
            // The default workspace, and one of a few rows per tile on more threads than cores.
            for (threads, floats) in [(saved, Workspace.defaultFloatsPerWorker), (1, layer.geometry.k * 5), (3, layer.geometry.k * 5)] {
                ThreadPool.shared.threadCount = threads
                let context = ForwardContext(workspace: Workspace(floatsPerWorker: floats), keepForBackward: true)
                let y = layer.forward(x, context)
                XCTAssertEqual(y.shape, want.shape)
                layer.zeroGradients()
                let dx = layer.backward(Tensor(shape: y.shape, values: r), context, needInputGradient: true)!
                let e = (y.maxAbsDifference(want), dx.maxAbsDifference(grads.dx), maxDifference(layer.dKernel, grads.dKernel),
                         t.useBias ? maxDifference(layer.dBias, grads.dBias) : 0)
                XCTAssertLessThanOrEqual(e.0, 1e-5, "case \(index) y, \(threads) threads")
                XCTAssertLessThanOrEqual(e.1, 1e-4, "case \(index) dx, \(threads) threads")
                XCTAssertLessThanOrEqual(e.2, 1e-4, "case \(index) dKernel, \(threads) threads")
                XCTAssertLessThanOrEqual(e.3, 1e-4, "case \(index) dBias, \(threads) threads")
                worst = (max(worst.y, e.0), max(worst.dx, e.1), max(worst.dk, e.2), max(worst.db, e.3))
            }
        }
        print("grouped conv, max |fast − naive|: y \(worst.y), dx \(worst.dx), dKernel \(worst.dk), dBias \(worst.db)")
    }

    /// Two backward passes add up; weights only gives no dx; a frozen layer gives no gradients.
    func testAccumulationInputGradientAndTrainable() throws {
        var rng = SeededRandom(seed: 212)
        let t = Self.cases[1]
        let layer = try makeLayer(t, &rng)
        let x = rng.tensor([t.batch, t.h, t.w, t.c])
        let context = ForwardContext(keepForBackward: true)
        let y = layer.forward(x, context)
        let dy = Tensor(shape: y.shape, values: rng.floats(y.count))
        layer.zeroGradients()
        XCTAssertNil(layer.backward(dy, context, needInputGradient: false))
        let once = (layer.dKernel, layer.dBias)
        _ = layer.forward(x, context)
        XCTAssertNotNil(layer.backward(dy, context, needInputGradient: true))
        XCTAssertLessThanOrEqual(maxDifference(layer.dKernel, once.0.map { 2 * $0 }), 1e-5)
        XCTAssertLessThanOrEqual(maxDifference(layer.dBias, once.1.map { 2 * $0 }), 1e-5)
        var roles: [WeightRole] = []
        layer.withParameters { role, value, gradient in
            XCTAssertEqual(value.count, gradient.count)
            roles.append(role)
        }
        XCTAssertEqual(roles, [.kernel, .bias])
        layer.zeroGradients()
        XCTAssertEqual(layer.dKernel.map(abs).max(), 0)
        layer.trainable = false
        roles = []
        layer.withParameters { role, _, _ in roles.append(role) }
        XCTAssertEqual(roles, [])
        _ = layer.forward(x, context)
        XCTAssertNil(layer.backward(dy, context, needInputGradient: false))
        XCTAssertNotNil(layer.backward(dy, context, needInputGradient: true))
    }

    /// Groups that do not divide the channels (or the filters) are refused by name, as Keras refuses them.
    func testGroupsThatDoNotDivideAreRefused() throws {
        let conv = Conv2DConfig(filters: 12, kernelSize: (3, 3), groups: 3)
        XCTAssertThrowsError(try conv.outputShape(input: [5, 5, 8], layer: "layer 'g'")) { e in
            let error = e as? XferError
            XCTAssertEqual(error?.kind, .badInput)
            XCTAssertTrue(error?.message.contains("3 groups of 8 input channels") ?? false, "\(e)")
        }
        XCTAssertEqual(try conv.outputShape(input: [5, 5, 9], layer: "g"), [3, 3, 12])
        let odd = Conv2DConfig(filters: 10, kernelSize: (3, 3), groups: 4)
        XCTAssertThrowsError(try GroupedConv2DLayer(name: "g", config: odd, inputShape: [5, 5, 8],
                                                    kernel: [Float](repeating: 0, count: 9 * 2 * 10), bias: nil))
    }

    // MARK: Keras

    static let dir = Fixtures.root.appendingPathComponent("checkpoints/grouped")

    /// max |a − b| / max |b|
    func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        maxDifference(a, b) / max(b.map(abs).max() ?? 0, 1e-12)
    }

    func fixtures() throws -> [(file: String, counts: OpParityTests.Counts)] {
        let expected = try JSONDecoder().decode([String: OpParityTests.Counts].self,
                                                from: Data(contentsOf: Self.dir.appendingPathComponent("expected.json")))
        XCTAssertEqual(expected.count, 16)
        return expected.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    func data(_ file: String) throws -> HDF5File {
        try HDF5File.open(Self.dir.appendingPathComponent((file as NSString).deletingPathExtension + "_data.h5").path)
    }

    func labels(_ y: (shape: [Int], values: [Float])) -> [Int] {
        let classes = y.shape[1]
        return (0..<y.shape[0]).map { i in (0..<classes).max { y.values[i * classes + $0] < y.values[i * classes + $1] }! }
    }

    /// Counts, predict (BatchNormalization and ZeroPadding2D folded into the grouped layer in
    /// pad_bn), and the layer alone: output and GradientTape's kernel, bias and input gradients.
    func testImportPredictAndLayerGradientsEqualKeras() throws {
        var worst: (predict: Float, y: Float, grads: Float) = (0, 0, 0)
        for (file, counts) in try fixtures() {
            let c = try Checkpoint.load(Self.dir.appendingPathComponent(file).path)
            let s = try ModelSummary(c.model)
            XCTAssertEqual([s.totalParams, s.trainableParams, s.nonTrainableParams],
                           [counts.total_params, counts.trainable_params, counts.non_trainable_params], file)
            let f = try data(file)
            let x = try f.floats("/x"), keras = try f.floats("/keras/predict")
            let network = try Network(spec: c.model)
            let out = try network.predict(Tensor(shape: x.shape, values: x.values), batchSize: 2)
            let e = out.maxAbsDifference(Tensor(shape: keras.shape, values: keras.values))
            XCTAssertLessThanOrEqual(e, 1e-6, "\(file) predict")
            worst.predict = max(worst.predict, e)
            if Network.foldsForInference {
                let folds = file.hasPrefix("pad_bn") ? 1 : 0
                XCTAssertEqual([network.foldedBatchNormalizations, network.foldedPaddings], [folds, folds], "\(file): folded into the grouped layer")
            }

            let spec = try XCTUnwrap(c.model.layers.first { $0.name == "gconv" })
            let op = try XCTUnwrap(spec.op as? Conv2DConfig)
            let cx = try f.floats("/conv/x")
            let layer = try XCTUnwrap(try op.makeLayer(spec, inputShape: Array(cx.shape.dropFirst())) as? GroupedConv2DLayer, file)
            layer.trainable = true
            let context = ForwardContext(keepForBackward: true)
            let y = layer.forward(Tensor(shape: cx.shape, values: cx.values), context)
            let ky = try f.floats("/conv/y")
            let ey = y.maxAbsDifference(Tensor(shape: ky.shape, values: ky.values)) / max(1, ky.values.map(abs).max()!)
            XCTAssertLessThanOrEqual(ey, 1e-6, "\(file) gconv output")
            worst.y = max(worst.y, ey)
            layer.zeroGradients()
            let r = try f.floats("/conv/r")
            let dx = layer.backward(Tensor(shape: r.shape, values: r.values), context, needInputGradient: true)!
            var pairs: [(String, [Float])] = [("input", dx.values), ("kernel", layer.dKernel)]
            if op.useBias { pairs.append(("bias", layer.dBias)) }
            XCTAssertEqual(try f.children("/conv/grads").sorted(), pairs.map(\.0).sorted(), file)
            for (name, mine) in pairs {
                let k = try f.floats("/conv/grads/\(name)").values
                let e = relativeError(mine, k)
                XCTAssertLessThanOrEqual(e, 1e-5, "\(file) d\(name)")
                worst.grads = max(worst.grads, e)
            }
        }
        print("grouped conv vs Keras: predict \(worst.predict), layer output \(worst.y) (relative), layer gradients \(worst.grads) (relative)")
    }

    /// The whole model: loss and gradients as GradientTape, then the weights after two
    /// train_on_batch steps of SGD with momentum.
    func testTrainingEqualsKeras() throws {
        var worst: (grads: Float, weights: Float) = (0, 0)
        for (file, _) in try fixtures() {
            let c = try Checkpoint.load(Self.dir.appendingPathComponent(file).path)
            let f = try data(file)
            let xs = try f.floats("/x")
            let x = Tensor(shape: xs.shape, values: xs.values), y = labels(try f.floats("/y"))
            let net = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
            let (loss, grads) = net.gradients(x, labels: y)
            let kerasLoss = Double(try f.floats("/forward/loss").values[0])
            XCTAssertEqual(loss, kerasLoss, accuracy: 1e-5 * max(1, abs(kerasLoss)), "\(file) loss")
            var count = 0
            for layer in try f.children("/grads") {
                for role in try f.children("/grads/\(layer)") {
                    let k = try f.floats("/grads/\(layer)/\(role)").values
                    let mine = try XCTUnwrap(grads["\(layer)/\(role)"], "\(file) \(layer)/\(role)")
                    let e = relativeError(mine, k)
                    XCTAssertLessThanOrEqual(e, 1e-4, "\(file) gradient \(layer)/\(role)")
                    worst.grads = max(worst.grads, e)
                    count += 1
                }
            }
            XCTAssertEqual(count, grads.count, file)

            for opt in try f.children("/steps") {
                let group = "/steps/\(opt)"
                let config = try fixtureOptimizerConfig(f, group)
                let bound = StepNoiseBound(config)
                let net = try TrainingNetwork(model: c.model, kerasVersion: c.kerasVersion, seed: 0)
                let optimizer = Optimizer(config)
                for step in 1...2 {
                    let stepLoss = net.trainStep(x, labels: y, optimizer: optimizer).loss
                    let kLoss = Double(try f.floats("\(group)/\(step)/loss").values[0])
                    XCTAssertEqual(stepLoss, kLoss, accuracy: 1e-5 * max(1, abs(kLoss)), "\(file) step \(step) loss")
                    for (path, values) in net.currentWeights() {
                        let k = try f.floats("\(group)/\(step)/weights/\(path)").values
                        // Relative above 1; SGD adds no amplified noise (Support/StepParity.swift).
                        let e = bound.error(values, keras: k, path: path, step: step, net: net, wholeNoise: false,
                                            zeroGradients: false, "\(file) \(opt) step \(step) \(path)")
                        XCTAssertLessThanOrEqual(e, 1e-5, "\(file) \(opt) step \(step) \(path)")
                        worst.weights = max(worst.weights, e)
                    }
                }
            }
        }
        print("grouped conv training vs Keras: gradients \(worst.grads) (relative), two-step weights \(worst.weights)")
    }
}
