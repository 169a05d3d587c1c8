// Every loss and metric against Keras (fixtures: checkpoints/losses, made by
// checkpoints/make_loss_fixtures.py): per case, a compiled Keras model, one epoch of
// `fit(batch_size=4, shuffle=False)` — with class weights and DATA's sample_weight where the
// case has them — gives Keras's
// weights (≤ 1e-5), logged loss and metric; `model.evaluate` of the untrained model gives its
// loss and metrics, and Keras's per-class metric objects the per-class table.

import Foundation
import XCTest
@testable import XferKit

final class LossParityTests: XCTestCase {
    static let dir = Fixtures.root.appendingPathComponent("checkpoints/losses")

    struct Case: Decodable {
        var model: String
        var data: String
        var loss: String
        var xfer_args: [String]
        var class_weight: [String: Double]?
        var history: History
        var evaluate: [String: Double]
        var per_class: [PerClass]?
        var confusion: [[Int]]?
        struct History: Decodable { var loss: Double; var metric: String; var value: Double }
        struct PerClass: Decodable { var precision: Double; var recall: Double; var f1: Double; var support: Int }
    }

    static func cases() throws -> [String: Case] {
        try JSONDecoder().decode([String: Case].self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
    }

    func path(_ file: String) -> String { Self.dir.appendingPathComponent(file).path }

    /// The value after `flag` in a case's command line.
    func arg(_ c: Case, _ flag: String) -> String? {
        c.xfer_args.firstIndex(of: flag).map { c.xfer_args[$0 + 1] }
    }

    func testEveryLossIsCovered() throws {
        let cases = try Self.cases()
        let kinds = Set(cases.values.compactMap { LossKind(kerasName: $0.loss) })
        XCTAssertEqual(kinds, Set(LossKind.allCases))
        XCTAssertTrue(cases.values.contains { $0.class_weight != nil })
        // sample_weight in DATA, alone and times class weights.
        let weighted = try cases.values.filter { try DataSource(path: path($0.data)).sampleWeights != nil }
        XCTAssertTrue(weighted.contains { $0.class_weight != nil } && weighted.contains { $0.class_weight == nil })
        XCTAssertTrue(cases.values.contains { $0.model.hasSuffix(".keras") })
    }

    func testOneEpochEqualsKerasFit() throws {
        for (name, c) in try Self.cases().sorted(by: { $0.key < $1.key }) {
            let checkpoint = try Checkpoint.load(path(c.model))
            // The loss comes from the checkpoint (training_config / compile_config).
            let loss = try XCTUnwrap(checkpoint.compiledLoss, name)
            XCTAssertEqual(loss.kind, LossKind(kerasName: c.loss), name)
            let plan = try planFineTuning(checkpoint.model, options: FreezeOptions(freezeUntil: "conv1", keepTop: true, classes: 1))
            var o = FineTuneOptions()
            o.epochs = 1; o.batchSize = Int(arg(c, "--batch-size")!)!; o.shuffle = false
            o.optimizer = OptimizerConfig(kind: OptimizerKind(rawValue: arg(c, "--optimizer")!)!, learningRate: Float(arg(c, "--lr")!)!,
                                          momentum: Float(arg(c, "--momentum") ?? "0")!)
            o.loss = loss
            let data = try DataSource(path: path(c.data))
            if let text = arg(c, "--class-weight") {
                let weights = try ClassWeights.parse(text, classes: loss.kind.isCategorical ? 3 : 2, names: nil, classOf: data.targetClasses!)
                // The weights Keras used (balanced: computed by the fixture script).
                let kerasWeights = try XCTUnwrap(c.class_weight)
                for (k, v) in kerasWeights { XCTAssertEqual(Double(weights.weights[Int(k)!]), v, accuracy: 1e-6, "\(name) class \(k)") }
                o.classWeights = weights
            }
            let tuner = try FineTuner(model: plan.model, kerasVersion: checkpoint.kerasVersion, options: o)
            let history = try tuner.fit(train: data, trainIndices: Array(0..<data.count))
            XCTAssertEqual(history[0].loss, c.history.loss, accuracy: 1e-5 * max(1, abs(c.history.loss)), "\(name) loss")
            XCTAssertEqual(history[0].metricName, c.history.metric, name)
            XCTAssertEqual(history[0].accuracy, c.history.value, accuracy: 1e-5, "\(name) \(c.history.metric)")
            let f = try HDF5File.open(path(c.data))
            var compared = 0
            for (p, values) in tuner.network.currentWeights() {
                let k = try f.floats("/fit/weights/\(p)").values
                var err: Float = 0
                for i in k.indices { err = max(err, abs(values[i] - k[i])) }
                XCTAssertLessThanOrEqual(err, 1e-5, "\(name) \(p)")
                compared += 1
            }
            XCTAssertEqual(compared, 4, "\(name): conv1 and head, kernel and bias")
        }
    }

    func testEvaluateEqualsKerasEvaluate() throws {
        for (name, c) in try Self.cases().sorted(by: { $0.key < $1.key }) {
            let checkpoint = try Checkpoint.load(path(c.model))
            let predictor = try Predictor(model: checkpoint.model, loss: checkpoint.compiledLoss)
            let data = try DataSource(path: path(c.data))
            try predictor.checkEvaluable(data)
            let r = try predictor.evaluate(try predictor.predict(data, batchSize: 4))
            XCTAssertEqual(r.loss, c.evaluate["loss"]!, accuracy: 1e-5 * max(1, c.evaluate["loss"]!), "\(name) loss")
            let mine = Dictionary(uniqueKeysWithValues: r.metrics.map { ($0.name, $0.value) })
            XCTAssertEqual(Set(mine.keys), Set(c.evaluate.keys).subtracting(["loss"]), name)
            for (metric, value) in c.evaluate where metric != "loss" {
                XCTAssertEqual(mine[metric] ?? .nan, value, accuracy: 1e-5 * max(1, abs(value)), "\(name) \(metric)")
            }
            if let rows = c.per_class {
                let got = try XCTUnwrap(r.perClass, name)
                XCTAssertEqual(got.count, rows.count, name)
                for (g, k) in zip(got, rows) {
                    XCTAssertEqual(g.precision, k.precision, accuracy: 1e-6, "\(name) \(g.name) precision")
                    XCTAssertEqual(g.recall, k.recall, accuracy: 1e-6, "\(name) \(g.name) recall")
                    XCTAssertEqual(g.f1, k.f1, accuracy: 1e-5, "\(name) \(g.name) f1")
                    XCTAssertEqual(g.support, k.support, "\(name) \(g.name) support")
                }
                XCTAssertEqual(r.confusion, c.confusion, name)  // none for multi-label
            } else {
                XCTAssertNil(r.perClass, name)
            }
        }
    }

    func testLossNamesAndArguments() throws {
        XCTAssertEqual(try LossConfig.parse("mse").kind, .meanSquaredError)
        XCTAssertEqual(try LossConfig.parse("huber:0.5").delta, 0.5)
        XCTAssertEqual(try LossConfig.parse("BinaryCrossentropy").kind, .binaryCrossentropy)
        XCTAssertThrowsError(try LossConfig.parse("hinge"))
        XCTAssertThrowsError(try LossConfig.parse("mse:2"))
        let config = LossConfig.fromKeras(["class_name": "CategoricalCrossentropy", "config": ["from_logits": true, "label_smoothing": 0.2]])
        XCTAssertEqual(config, LossConfig(.categoricalCrossentropy, fromLogits: true, labelSmoothing: 0.2))
        XCTAssertEqual(LossConfig.fromKeras(["module": "keras.losses", "class_name": "function", "config": "mean_absolute_error"]),
                       LossConfig(.meanAbsoluteError))
        XCTAssertEqual(LossConfig.fromKeras("binary_crossentropy"), LossConfig(.binaryCrossentropy))
        XCTAssertNil(LossConfig.fromKeras(["output_1": "mse"]))  // several outputs' losses
        XCTAssertNil(LossConfig.fromKeras(["class_name": "Huber", "config": ["delta": -1]]))
        // What xfer writes reads back the same.
        for l in [LossConfig(.huber, delta: 0.25), LossConfig(.binaryCrossentropy, fromLogits: true, labelSmoothing: 0.1),
                  LossConfig(.sparseCategoricalCrossentropy), LossConfig(.meanAbsoluteError)] {
            XCTAssertEqual(LossConfig.fromKeras(l.kerasConfig), l)
        }
    }

    /// The gradient each loss gives its inputs is the derivative of its value (central
    /// differences, in double precision around float32 values).
    func testGradientsAreDerivatives() {
        let x = Tensor(shape: [2, 3], values: [0.3, -1.2, 0.8, 2.0, 0.1, -0.4])
        let probs = Tensor(shape: [2, 3], values: [0.2, 0.5, 0.3, 0.6, 0.3, 0.1])
        let cases: [(Loss, Tensor, Tensor)] = [
            (CategoricalCrossEntropy(labelSmoothing: 0.1), x, Tensor(shape: [2, 1], values: [2, 0])),
            (CategoricalCrossEntropy(fromLogits: false), probs, Tensor(shape: [2, 3], values: [0, 1, 0, 1, 0, 0])),
            (BinaryCrossEntropy(labelSmoothing: 0.2), x, Tensor(shape: [2, 3], values: [1, 0, 1, 0, 0, 1])),
            (BinaryCrossEntropy(fromLogits: false), probs, Tensor(shape: [2, 3], values: [1, 0, 1, 0, 0, 1])),
            (MeanSquaredError(), x, Tensor(shape: [2, 3], values: [1, 0, 2, 0, 0, 1])),
            (MeanAbsoluteError(), x, Tensor(shape: [2, 3], values: [1, 0, 2, 0, 0, 1])),
            (HuberLoss(delta: 0.5), x, Tensor(shape: [2, 3], values: [1, 0, 2, 0, 0.3, 1])),
        ]
        for (k, (loss, input, targets)) in cases.enumerated() {
            let weights: [Float] = [1.5, 0.5]
            let g = loss.batchLoss(input, targets: targets, weights: weights, gradient: true).gradient!
            for i in input.values.indices {
                var plus = input, minus = input
                let h: Float = 1e-3
                plus.values[i] += h; minus.values[i] -= h
                let numeric = (loss.batchLoss(plus, targets: targets, weights: weights, gradient: false).loss
                    - loss.batchLoss(minus, targets: targets, weights: weights, gradient: false).loss) / Double(2 * h)
                XCTAssertEqual(Double(g.values[i]), numeric, accuracy: 2e-3, "case \(k) element \(i)")
            }
        }
    }

    /// A one-hot y is held once, as labels; its rows come back from them.
    func testOneHotTargetsAreRebuiltFromLabels() throws {
        let data = try DataSource(path: path("cce_smooth_data.h5"))
        XCTAssertNil(data.targets)
        XCTAssertEqual(data.targetWidth, 3)
        let y = try HDF5File.open(path("cce_smooth_data.h5")).floats("/y")
        XCTAssertEqual(data.targetRows(Array(0..<data.count)).values, y.values)
        XCTAssertNoThrow(try data.checkTargets(for: LossConfig(.binaryCrossentropy), units: 3, purpose: "training"))
    }

    func testClassWeights() throws {
        let balanced = try ClassWeights.parse("balanced", classes: 2, names: nil, classOf: [0, 0, 0, 1])
        XCTAssertEqual(balanced.weights, [4 / 6, 2])
        let named = try ClassWeights.parse("{\"cat\": 2, \"dog\": 0.5}", classes: 2, names: ["cat", "dog"], classOf: [])
        XCTAssertEqual(named.weights, [2, 0.5])
        XCTAssertEqual(named.sampleWeights(Tensor(shape: [3, 1], values: [1, 0, 1])), [0.5, 2, 0.5])
        XCTAssertThrowsError(try ClassWeights.parse("{\"1\": 2}", classes: 3, names: nil, classOf: []))  // class 0 missing
        XCTAssertThrowsError(try ClassWeights.parse("{\"5\": 2}", classes: 3, names: nil, classOf: []))
        XCTAssertThrowsError(try ClassWeights.parse("heavy", classes: 3, names: nil, classOf: []))
    }
}
