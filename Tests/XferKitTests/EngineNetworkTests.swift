// Network: built from a ModelSpec (weights checked by shape, errors naming layer and
// role), run layer by layer, split into batches, with buffers reused across calls.

import XCTest
@testable import XferKit

final class EngineNetworkTests: XCTestCase {
    var rng = SeededRandom(seed: 11)

    func conv(_ name: String, _ cIn: Int, _ filters: Int, k: Int = 3, activation: Activation = .relu) -> LayerSpec {
        LayerSpec(name: name, className: "Conv2D",
                  kind: .conv2D(Conv2DConfig(filters: filters, kernelSize: (k, k), padding: .same, activation: activation)),
                  weights: [WeightSpec(role: .kernel, shape: [k, k, cIn, filters], values: rng.floats(k * k * cIn * filters)),
                            WeightSpec(role: .bias, shape: [filters], values: rng.floats(filters))])
    }

    func batchNorm(_ name: String, _ c: Int, scale: Bool = true) -> LayerSpec {
        var weights = [WeightSpec(role: .beta, shape: [c], values: rng.floats(c)),
                       WeightSpec(role: .movingMean, shape: [c], values: rng.floats(c), isTrainableKind: false),
                       WeightSpec(role: .movingVariance, shape: [c], values: rng.floats(c).map { abs($0) + 0.5 },
                                  isTrainableKind: false)]
        if scale { weights.insert(WeightSpec(role: .gamma, shape: [c], values: rng.floats(c)), at: 0) }
        return LayerSpec(name: name, className: "BatchNormalization",
                         kind: .batchNormalization(BatchNormConfig(scale: scale)), weights: weights)
    }

    /// A small transfer model: a nested conv base, then a classifier head.
    func transferModel() -> ModelSpec {
        let base = ModelSpec(name: "base", className: "Functional", inputShape: [9, 9, 3], layers: [
            LayerSpec(name: "input_1", className: "InputLayer", kind: .input),
            conv("conv1", 3, 4),
            batchNorm("bn1", 4, scale: false),
            LayerSpec(name: "relu1", className: "ReLU", kind: .relu(ReLUConfig(maxValue: 6))),
            LayerSpec(name: "pool1", className: "MaxPooling2D", kind: .maxPooling2D(Pool2DConfig(padding: .same))),
            conv("conv2", 4, 6, k: 1, activation: .linear),
        ])
        return ModelSpec(name: "transfer", className: "Sequential", inputShape: [9, 9, 3], layers: [
            LayerSpec(name: "base", className: "Functional", kind: .model(base)),
            LayerSpec(name: "gap", className: "GlobalAveragePooling2D", kind: .globalAveragePooling2D(keepdims: false)),
            LayerSpec(name: "drop", className: "Dropout", kind: .dropout(DropoutConfig(rate: 0.5))),
            LayerSpec(name: "head", className: "Dense", kind: .dense(DenseConfig(units: 5, activation: .softmax)),
                      weights: [WeightSpec(role: .kernel, shape: [6, 5], values: rng.floats(30)),
                                WeightSpec(role: .bias, shape: [5], values: rng.floats(5))]),
        ])
    }

    func testPredictRunsTheChainAndMatchesLayerByLayer() throws {
        let network = try Network(spec: transferModel())
        XCTAssertEqual(network.outputShape, [5])
        XCTAssertEqual(network.graph.layerShapes["base"]?.output, [5, 5, 6])
        let x = rng.tensor([7, 9, 9, 3])
        let y = try network.predict(x, batchSize: 32)
        XCTAssertEqual(y.shape, [7, 5])
        for r in 0..<7 { XCTAssertEqual(y.values[r * 5 ..< r * 5 + 5].reduce(0, +), 1, accuracy: 1e-5) }

        // The same layers run one by one in a fresh context.
        let context = ForwardContext()
        var z = x
        for node in network.graph.nodes {
            z = try Network.build(node.layer, inputShape: node.inputShapes[0]).forward(z, context)
        }
        XCTAssertLessThanOrEqual(y.maxAbsDifference(z), 1e-6)

        // Batches of 3 (3 + 3 + 1), and a second call reusing the buffers, agree.
        XCTAssertLessThanOrEqual(try network.predict(x, batchSize: 3).maxAbsDifference(y), 1e-6)
        XCTAssertEqual(try network.predict(x, batchSize: 32), y)
        XCTAssertEqual(x.shape, [7, 9, 9, 3], "the caller's input is untouched")
    }

    func testTheCallersInputIsNeverOverwritten() throws {
        let network = try Network(spec: transferModel())
        let x = rng.tensor([2, 9, 9, 3])
        let copy = x.values
        for _ in 0..<3 { _ = try network.predict(x, batchSize: 1) }
        XCTAssertEqual(x.values, copy)
    }

    func testWrongWeightShapeNamesLayerRoleAndShapes() {
        var spec = transferModel()
        guard case .model(var base) = spec.layers[0].kind else { return XCTFail() }
        base.layers[1].weights[0] = WeightSpec(role: .kernel, shape: [3, 3, 4, 4], values: rng.floats(144))
        spec.layers[0].kind = .model(base)
        XCTAssertThrowsError(try Network(spec: spec)) { error in
            let e = error as! XferError
            XCTAssertEqual(e.kind, .badInput)
            XCTAssertTrue(e.description.contains("conv1"), e.description)
            XCTAssertTrue(e.description.contains("kernel"), e.description)
            XCTAssertTrue(e.description.contains("[3, 3, 4, 4]"), e.description)
            XCTAssertTrue(e.description.contains("[3, 3, 3, 4]"), e.description)
        }
    }

    func testMissingAndUnexpectedWeightsAreReported() {
        var spec = transferModel()
        spec.layers[3].weights.removeLast()  // the head's bias
        XCTAssertThrowsError(try Network(spec: spec)) { error in
            XCTAssertTrue("\(error)".contains("head") && "\(error)".contains("bias"), "\(error)")
        }
        spec = transferModel()
        spec.layers[1].weights = [WeightSpec(role: .kernel, shape: [1], values: [0])]
        XCTAssertThrowsError(try Network(spec: spec)) { error in
            XCTAssertTrue("\(error)".contains("gap") && "\(error)".contains("unexpected"), "\(error)")
        }
    }

    func testPredictRejectsAWrongInputShape() throws {
        let network = try Network(spec: transferModel())
        XCTAssertThrowsError(try network.predict(Tensor(shape: [1, 8, 9, 3]))) { error in
            XCTAssertEqual((error as? XferError)?.kind, .usage)
        }
    }

    func testConvolutionGEMMsCoverEveryOutputPixel() throws {
        let network = try Network(spec: transferModel())
        let shapes = network.convolutionGEMMs(batch: 4)
        // conv1: 4·9·9 rows, K = 27; conv2 (1×1): 4·5·5 rows, K = 4.
        XCTAssertEqual(shapes.filter { $0.k == 27 }.reduce(0) { $0 + $1.m * $1.count }, 4 * 81)
        XCTAssertEqual(shapes.filter { $0.k == 4 }.reduce(0) { $0 + $1.m * $1.count }, 4 * 25)
    }
}
