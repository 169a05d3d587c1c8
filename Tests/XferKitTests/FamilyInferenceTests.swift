// Weights-only files of keras.applications families: the architecture is recognised from layer
// names (or Keras 3 paths) and weight shapes, with Keras's counts and outputs
// (checkpoints/weights_only, made by checkpoints/make_weights_only_fixtures.py).

import XCTest
@testable import XferKit

final class FamilyInferenceTests: XCTestCase {
    static let dir = Fixtures.root.appendingPathComponent("checkpoints/weights_only")
    static func path(_ file: String) -> String { dir.appendingPathComponent(file).path }

    struct Expected: Decodable {
        var total_params: Int
        var trainable_params: Int
        var non_trainable_params: Int
        var input_shape: [Int]
    }

    /// Loads `file` at its fixture size, checks Keras's counts and that it predicts what Keras predicted.
    func check(_ file: String) throws -> Checkpoint {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.dir.appendingPathComponent(file + ".expected.json")))
        let c = try Checkpoint.load(Self.path(file), options: .init(inputShape: expected.input_shape))
        XCTAssertEqual(c.model.inputShape, expected.input_shape, file)
        let s = try ModelSummary(c.model)
        XCTAssertEqual(s.totalParams, expected.total_params, "\(file): total")
        XCTAssertEqual(s.trainableParams, expected.trainable_params, "\(file): trainable")
        XCTAssertEqual(s.nonTrainableParams, expected.non_trainable_params, "\(file): non-trainable")
        let f = try HDF5File.open(Self.path(file + ".io.h5"))
        let x = try f.floats("/x"), y = try f.floats("/y")
        let out = try Network(spec: c.model).predict(Tensor(shape: x.shape, values: x.values), batchSize: 2)
        XCTAssertEqual(out.shape, y.shape, file)
        XCTAssertLessThanOrEqual(out.maxAbsDifference(Tensor(shape: y.shape, values: y.values)), 1e-4, file)
        return c
    }

    /// MobileNetV2 pads its strided blocks by `correct_pad`, which depends on the parity of the
    /// size reaching them: the stored architecture (built at an open size) is re-padded for 33×33,
    /// whose sizes there (33, 17, 9, 5) are odd, and predicts as Keras built at that size.
    func testCorrectPadIsWorkedOutForTheInputSize() throws {
        let c = try check("k2_mobilenetv2035_notop.h5")
        let pads = c.model.layers.compactMap { l in (l.kind.op as? ZeroPadding2DConfig).map { (l.name, $0) } }
        XCTAssertEqual(pads.map(\.0), ["block_1_pad", "block_3_pad", "block_6_pad", "block_13_pad"])
        for (name, pad) in pads { XCTAssertEqual(pad, ZeroPadding2DConfig(top: 1, bottom: 1, left: 1, right: 1), name) }
        XCTAssertEqual(FamilyInference.correctPad(ZeroPadding2DConfig(top: 1, bottom: 2, left: 1, right: 2), input: [14, 15, 8]),
                       ZeroPadding2DConfig(top: 1, bottom: 2, left: 2, right: 2))
        XCTAssertFalse(FamilyInference.correctPadName("conv1_pad"))  // ResNet's is fixed
        XCTAssertFalse(FamilyInference.correctPadName("conv_pad_2"))  // MobileNet's too
    }

    func testTfKerasNotopWeightsAreRecognised() throws {
        let c = try check("k2_mobilenet025_notop.h5")
        XCTAssertEqual(c.format, .keras2Weights)
        XCTAssertEqual(c.architecture, .inferredFamily("MobileNet (alpha 0.25, no top)"))
        // Without --input-shape, the family's default size.
        let d = try Checkpoint.load(Self.path("k2_mobilenet025_notop.h5"), options: .init(values: .skip))
        XCTAssertEqual(d.model.inputShape, [224, 224, 3])
    }

    func testKeras3TransferModelIsRecognised() throws {
        let c = try check("k3_mobilenet025_transfer.weights.h5")
        XCTAssertEqual(c.format, .keras3Weights)
        guard case .inferredFamily(let what) = c.architecture else { return XCTFail("\(c.architecture)") }
        XCTAssertEqual(what, "MobileNet (alpha 0.25, no top) inside 'mobilenet_0.25_32', then GlobalAveragePooling2D → Dense 8 (relu) → Dropout (0.5) → Dense 3 (softmax)")
        guard case .model(let base) = c.model.layers.first?.kind else { return XCTFail("no nested base") }
        XCTAssertEqual(base.inputShape, [32, 32, 3])
    }

    func testTheInferenceIsReported() throws {
        final class Lines: @unchecked Sendable { var all: [String] = [] }
        let lines = Lines()
        _ = try Checkpoint.load(Self.path("k2_mobilenet025_notop.h5"),
                                options: .init(inputShape: [32, 32, 3], values: .skip, notify: { lines.all.append($0) }))
        XCTAssertEqual(lines.all, ["\(Self.path("k2_mobilenet025_notop.h5")): inferred MobileNet (alpha 0.25, no top) from layer names and weight shapes, input 32×32×3; --config to give the architecture"])
    }

    func testAFileNoFamilyFitsNamesTheClosest() throws {
        XCTAssertThrowsError(try Checkpoint.load(Self.path("k2_mobilenet025_cut.h5"), options: .init(values: .skip))) { error in
            guard let e = error as? XferError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .badInput)
            XCTAssertTrue(e.message.contains("closest is MobileNet (alpha 0.25, no top): 10 of its 54 layers with weights agree, then it has no weights for 'conv_dw_3'"), e.message)
        }
    }

    /// Every stored architecture reads as a model whose layers with weights are the ones Keras
    /// listed for it (names, Keras 3 paths, shapes), at its default input size.
    func testEveryStoredArchitectureReadsAsItsSignature() throws {
        let catalog = try XCTUnwrap(FamilyCatalog.shared)
        XCTAssertGreaterThanOrEqual(catalog.entries.count, 90)
        for arch in catalog.entries {
            let model = FamilyInference.withInputShape(try FamilyInference.model(catalog, arch, classes: nil, source: arch.id),
                                                       arch.defaultInput)
            var got: [(String, String, [[Int]])] = []
            func walk(_ model: ModelSpec, name: String, path: String) throws {
                let shapes = try model.layerInputShapes()
                var seen: [String: Int] = [:]
                for (i, l) in model.layers.enumerated() {
                    let snake = kerasSnakeCase(l.className)
                    let k = seen[snake, default: 0]
                    seen[snake] = k + 1
                    let p = path + (k == 0 ? snake : "\(snake)_\(k)")
                    if case .model(let inner) = l.kind { try walk(inner, name: name + l.name + "/", path: p + "/"); continue }
                    let w = l.expectedWeights(input: shapes[i]).map(\.shape)
                    if !w.isEmpty { got.append((name + l.name, p, w)) }
                }
            }
            try walk(model, name: "", path: "")
            XCTAssertEqual(got.map(\.0), arch.configNames, arch.id)
            XCTAssertEqual(got.map(\.1), arch.signature.map(\.path), arch.id)
            XCTAssertEqual(got.map(\.2), arch.signature.map(\.shapes), arch.id)
        }
    }
}
