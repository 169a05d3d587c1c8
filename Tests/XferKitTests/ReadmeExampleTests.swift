// The README's Swift example, compiled and run as it stands.

import XCTest
import XferKit

final class ReadmeExampleTests: XCTestCase {
    func testReadmeExample() throws {
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(Fixtures.root.path)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }

        // --- README example ---
        // Read a checkpoint of any kind Keras writes, and plan: freeze everything before block3,
        // replace the top with a new head.
        let checkpoint = try Checkpoint.load("checkpoints/fashion/fashion_vgg.h5")
        let data = try DataSource(path: "checkpoints/fashion/train")      // an image folder, caffe preprocessing
        let plan = try planFineTuning(checkpoint.model, options: FreezeOptions(
            freezeUntil: "block3", head: try parseHead("flatten,dense:64:relu,dropout:0.5"),
            classes: data.classCount, seed: 0))
        print(try ModelSummary(plan.model).render())

        // Train with progress.
        var options = FineTuneOptions()
        options.epochs = 3
        options.optimizer = OptimizerConfig(kind: .sgd, learningRate: 0.01, momentum: 0.9)
        let tuner = try FineTuner(model: plan.model, kerasVersion: checkpoint.kerasVersion, options: options)
        _ = try tuner.fit(train: data, trainIndices: Array(0..<data.count)) { event in
            if case .epochEnd(let record) = event { print(record.line(of: options.epochs)) }
        }

        // Save for Keras, and evaluate on held-out images.
        let tuned = tuner.network.exportModel()
        try KerasH5Writer.write(tuned, to: "/tmp/fashion-finetuned.h5", classNames: data.classNames)
        // Or by the extension: .keras / .weights.h5 for Keras 3, .onnx for ONNX runtimes.
        try ModelWriter.write(tuned, to: "/tmp/fashion-finetuned.onnx", metadata: ModelMetadata(classNames: data.classNames, preprocess: .caffe))
        let predictor = try Predictor(model: tuned)
        let result = try predictor.evaluate(try predictor.predict(try DataSource(path: "checkpoints/fashion/test")))
        print("test accuracy:", result.accuracy)
        // --- end ---

        XCTAssertGreaterThan(result.accuracy, 0.7)
        try? FileManager.default.removeItem(atPath: "/tmp/fashion-finetuned.h5")
    }

    /// The README's example is this test's code, line for line.
    func testReadmeShowsThisCode() throws {
        let readme = try String(contentsOf: Fixtures.root.appendingPathComponent("README.md"), encoding: .utf8)
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        let example = source.components(separatedBy: "// --- README example ---\n")[1].components(separatedBy: "        // --- end ---")[0]
        let lines = example.split(separator: "\n").map { $0.dropFirst(8) }.map(String.init)
        for line in lines where !line.isEmpty {
            XCTAssertTrue(readme.contains(line), "README lacks: \(line)")
        }
    }
}
