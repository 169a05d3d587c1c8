// The layer kinds and settings of checkpoints/ops (made by checkpoints/make_op_fixtures.py)
// against Keras, each saved by tf-keras (.h5) and Keras 3 (.keras) where the library has it:
// Permute, Identity, per-channel Rescaling, pooling with padding 'same', BatchNormalization
// without scale or center, Dropout noise_shape and SpatialDropout2D, gelu / swish / relu6,
// gelu on a symbolic tensor (approximate and exact), ConvNeXt's StochasticDepth, and caffe
// preprocess_input on a model's input (Keras 3 writes it as GetItem, Stack and Add). Each imports
// with Keras's counts and predicts within 1e-4 of Keras's predict (relative to the outputs' scale).

import Foundation
import XCTest
@testable import XferKit

final class OpParityTests: XCTestCase {
    static let dir = Fixtures.root.appendingPathComponent("checkpoints/ops")

    struct Counts: Decodable { var total_params: Int; var trainable_params: Int; var non_trainable_params: Int }

    func testEveryCaseMatchesKeras() throws {
        let expected = try JSONDecoder().decode([String: Counts].self, from: Data(contentsOf: Self.dir.appendingPathComponent("expected.json")))
        XCTAssertGreaterThanOrEqual(expected.count, 22)
        for (file, counts) in expected.sorted(by: { $0.key < $1.key }) {
            let path = Self.dir.appendingPathComponent(file).path
            let c = try Checkpoint.load(path)
            let s = try ModelSummary(c.model)
            XCTAssertEqual([s.totalParams, s.trainableParams, s.nonTrainableParams],
                           [counts.total_params, counts.trainable_params, counts.non_trainable_params], file)
            let data = Self.dir.appendingPathComponent((file as NSString).deletingPathExtension + "_data.h5").path
            let f = try HDF5File.open(data)
            let x = try f.floats("/x"), keras = try f.floats("/keras/predict")
            let out = try Network(spec: c.model).predict(Tensor(shape: x.shape, values: x.values), batchSize: 2)
            XCTAssertEqual([x.shape[0]] + out.shape.dropFirst(), keras.shape, file)
            let scale = max(1, keras.values.map(abs).max() ?? 1)
            let err = zip(out.values, keras.values).map { abs($0 - $1) }.max() ?? .infinity
            XCTAssertLessThanOrEqual(err / scale, 1e-4, file)
        }
    }

    /// ONNX export: the inference identities (SpatialDropout2D, StochasticDepth, Identity) map to
    /// nothing, per-channel Rescaling to a per-channel Mul and Add. (onnxruntime runs these files
    /// as Keras predicts them: checkpoints/check_deploy_outputs.py, within 1e-4.)
    func testONNXExportOfTheIdentityKindsAndPerChannelRescaling() throws {
        for file in ["stochastic_k2.h5", "dropouts_k3.keras", "identity_k2.h5", "rescaling_k3.keras"] {
            let model = try Checkpoint.load(Self.dir.appendingPathComponent(file).path).model
            let bytes = try ONNXWriter.serialize(model)
            let proto = try Onnx_ModelProto(serializedBytes: bytes)
            XCTAssertFalse(proto.graph.node.isEmpty, file)
        }
    }
}
