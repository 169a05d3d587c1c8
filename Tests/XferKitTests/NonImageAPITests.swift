// The Swift API on models of vectors and sequences (checkpoints/nonimage, made by
// checkpoints/make_nonimage_fixtures.py): KerasModel.predict and evaluate of a DataSource whose
// x is (N, F) or (N, T, F) give Keras's predict and evaluate.

import Foundation
import XCTest
@testable import XferKit

final class NonImageAPITests: XCTestCase {
    let dir = Fixtures.root.appendingPathComponent("checkpoints/nonimage")

    func testPredictAndEvaluateEqualKeras() throws {
        for file in ["mlp_k2.h5", "mlp_k3.keras", "seq_k2.h5", "seq_conv_k3.keras", "seq_pool_k3.keras"] {
            let dataPath = dir.appendingPathComponent((file as NSString).deletingPathExtension + "_data.h5").path
            let model = try KerasModel(contentsOf: dir.appendingPathComponent(file).path)
            let data = try DataSource(contentsOf: dataPath)
            let f = try HDF5File.open(dataPath)
            let keras = try f.floats("/keras/predict")
            let predictions = try model.predict(data)
            XCTAssertEqual(predictions.count, keras.shape[0], file)
            let mine = predictions.flatMap(\.outputs)
            XCTAssertLessThanOrEqual(zip(mine, keras.values).map { abs($0 - $1) }.max() ?? .infinity, 1e-4, file)
            let r = try model.evaluate(data)
            XCTAssertEqual(r.loss, Double(try f.floats("/keras/evaluate_loss").values[0]), accuracy: 1e-5, file)
            XCTAssertEqual(r.accuracy, Double(try f.floats("/keras/evaluate_accuracy").values[0]), accuracy: 1e-6, file)
        }
    }
}
