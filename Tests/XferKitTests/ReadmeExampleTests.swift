// The README's Swift example has one source, Examples/Sources/FineTune/main.swift (a package
// of its own that depends on XferKit by path; scripts/examples.sh builds and runs it). These
// tests check that the README's "From Swift" block and the DocC tutorial show that file as it
// is, and run the same code here (the block below, which must also equal the file).

import Foundation
import XCTest
import XferKit

final class ReadmeExampleTests: XCTestCase {
    static let root = Fixtures.root
    static func text(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }
    /// The example, as the file holds it.
    static func example() throws -> String { try text("Examples/Sources/FineTune/main.swift") }

    /// The body of the first ```swift block after `heading` in a Markdown file.
    static func swiftBlock(in markdown: String, after heading: String) throws -> String {
        let section = try XCTUnwrap(markdown.components(separatedBy: heading).dropFirst().first, "no \(heading)")
        let block = try XCTUnwrap(section.components(separatedBy: "```swift\n").dropFirst().first, "no swift block after \(heading)")
        return try XCTUnwrap(block.components(separatedBy: "```").first) 
    }

    func testReadmeShowsTheExampleFile() throws {
        XCTAssertEqual(try Self.swiftBlock(in: Self.text("README.md"), after: "## From Swift"), try Self.example())
    }

    func testDocCTutorialShowsTheExampleFile() throws {
        let article = try Self.text("Sources/XferKit/XferKit.docc/GettingStarted.md")
        XCTAssertEqual(try Self.swiftBlock(in: article, after: "## The whole program"), try Self.example())
    }

    /// The README example fits on one screen.
    func testTheExampleFitsOnOneScreen() throws {
        let lines = try Self.example().split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertLessThanOrEqual(lines.count, 30)
        XCTAssertLessThanOrEqual(lines.map(\.count).max() ?? 0, 120)
    }

    /// This test's code is the example file's, line for line (after `import XferKit`).
    func testThisTestRunsTheExampleFile() throws {
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        let body = source.components(separatedBy: "        // --- example ---\n")[1].components(separatedBy: "        // --- end ---")[0]
        let mine = body.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.dropFirst(8)) }
        let file = try Self.example().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        XCTAssertEqual(file.first, "import XferKit")
        XCTAssertEqual(mine, Array(file.dropFirst(2)))
    }

    func testReadmeExampleRuns() async throws {
        let cwd = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(Self.root.path)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }

        // --- example ---
        // A VGG-style network Keras pretrained on Fashion-MNIST classes 0–4, fine-tuned on the other five.
        var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")   // .h5, .weights.h5, .keras
        let train = try DataSource(contentsOf: "checkpoints/fashion/train")              // one folder per class
        try model.freeze(before: "block3")
        try model.replaceTop(with: [.flatten, .dense(64, activation: .relu), .dropout(0.5)], classes: train.classCount)
        print(model.summary())

        // Train with progress (cancelling the task stops it), then evaluate on held-out images.
        try await model.fit(train, epochs: 3, optimizer: .sgd(learningRate: 0.01, momentum: 0.9),
                            validation: .split(0.2), callbacks: [.earlyStopping(patience: 2)]) { event in
            if case .epochEnd = event { print(event) }
        }
        print("test:", try model.evaluate(try DataSource(contentsOf: "checkpoints/fashion/test")))

        // Save for Keras 3 and for ONNX runtimes (the extension chooses the format), and predict a photo.
        try model.save(to: "/tmp/fashion-tuned.keras")
        try model.export(to: "/tmp/fashion-tuned.onnx")
        let photo = try model.predict(image: "checkpoints/fashion/test/7_sneaker/test_00112.png")
        print(photo.className!, photo.probability!)
        // --- end ---

        XCTAssertGreaterThan(try model.evaluate(try DataSource(contentsOf: "checkpoints/fashion/test")).accuracy, 0.7)
        XCTAssertEqual(try KerasModel(contentsOf: "/tmp/fashion-tuned.keras").classNames, train.classNames)
        XCTAssertEqual(photo.className, "7_sneaker")
        for file in ["/tmp/fashion-tuned.keras", "/tmp/fashion-tuned.onnx"] { try? FileManager.default.removeItem(atPath: file) }
    }
}
