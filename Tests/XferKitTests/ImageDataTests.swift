// Image folders against Keras: checkpoints/images/sample_expected.{json,bin} hold what
// tf_keras.utils.image_dataset_from_directory and preprocess_input make of
// checkpoints/images/sample/ (written by checkpoints/make_image_fixtures.py).

import Foundation
import XCTest
@testable import XferKit

final class ImageDataTests: XCTestCase {
    static let imagesDir = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("checkpoints/images")
    static let sampleDir = imagesDir.appendingPathComponent("sample")

    /// sample_expected.json
    struct Expected: Decodable {
        struct ArrayEntry: Decodable {
            var offset_bytes: Int
            var shape: [Int]
        }
        var class_names: [String]
        var file_paths: [String]
        var labels: [Int]
        var arrays: [String: ArrayEntry]
    }

    static let expected: Expected = {
        let json = try! Data(contentsOf: imagesDir.appendingPathComponent("sample_expected.json"))
        return try! JSONDecoder().decode(Expected.self, from: json)
    }()
    static let expectedBin = try! Data(contentsOf: imagesDir.appendingPathComponent("sample_expected.bin"))

    /// A float32 array of sample_expected.bin and its shape.
    static func keras(_ name: String) -> (values: [Float], shape: [Int]) {
        let entry = expected.arrays[name]!
        let count = entry.shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { out in
            expectedBin.withUnsafeBytes { bin in
                out.copyMemory(from: UnsafeRawBufferPointer(rebasing: bin[entry.offset_bytes..<entry.offset_bytes + count * 4]))
            }
        }
        return (values.map { Float(bitPattern: $0.bitPattern.littleEndian) }, entry.shape)
    }

    static func maxAbsDiff(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Loads every sample of `folder` at `height` x `width` and compares with Keras's array
    /// `name`, image by image; returns the largest difference.
    func compareWithKeras(_ folder: ImageFolder, _ name: String, preprocess: PreprocessMode,
                          tolerance: Float, file: StaticString = #filePath, line: UInt = #line) -> Float {
        let (want, shape) = Self.keras(name)
        let (n, h, w) = (shape[0], shape[1], shape[2])
        let batch = folder.load(Array(0..<n), height: h, width: w, preprocess: preprocess)
        XCTAssertEqual(batch.loaded.count, n, file: file, line: line)
        let size = h * w * 3
        var worst: Float = 0
        for i in 0..<n {
            let err = Self.maxAbsDiff(batch.pixels[i * size..<(i + 1) * size], want[i * size..<(i + 1) * size])
            XCTAssertLessThanOrEqual(err, tolerance, "\(name): \(folder.samples[i].relativePath)", file: file, line: line)
            worst = max(worst, err)
        }
        print("\(name) (\(preprocess)): max |xfer - Keras| = \(worst)")
        return worst
    }

    // MARK: - Listing

    func testClassNamesFileOrderAndLabelsMatchKeras() throws {
        var warnings: [ImageWarning] = []
        let folder = try ImageFolder(url: Self.sampleDir) { warnings.append($0) }
        XCTAssertEqual(folder.classNames, Self.expected.class_names)
        XCTAssertEqual(folder.samples.map(\.relativePath), Self.expected.file_paths)
        XCTAssertEqual(folder.samples.map(\.label), Self.expected.labels)
        XCTAssertEqual(warnings.map(\.description), [])
    }

    func testSortingIsPythonCodePointOrder() {
        // Python: sorted(["b", "B", "a", "_", "é", "Z"]) == ['B', 'Z', '_', 'a', 'b', 'é']
        XCTAssertEqual(ImageFolder.pythonSorted(["b", "B", "a", "_", "é", "Z"]), ["B", "Z", "_", "a", "b", "é"])
    }

    // MARK: - Pixels and preprocessing

    func testPixelsMatchKeras() throws {
        let folder = try ImageFolder(url: Self.sampleDir)
        let err32 = compareWithKeras(folder, "images", preprocess: .none, tolerance: 1e-3)
        let err24x40 = compareWithKeras(folder, "images_24x40", preprocess: .none, tolerance: 1e-3)
        XCTAssertLessThanOrEqual(max(err32, err24x40), 1e-3)
    }

    func testPreprocessModesMatchKerasOnKerasPixels() {
        let images = Self.keras("images").values
        for (mode, name) in [(PreprocessMode.caffe, "caffe"), (.tf, "tf"), (.torch, "torch")] {
            var x = images
            x.withUnsafeMutableBufferPointer { mode.apply(to: $0) }
            let err = Self.maxAbsDiff(x[...], Self.keras(name).values[...])
            print("preprocess_input mode \(name) alone: max |xfer - Keras| = \(err)")
            XCTAssertLessThanOrEqual(err, 1e-4, name)
        }
        var x = images
        x.withUnsafeMutableBufferPointer { PreprocessMode.none.apply(to: $0) }
        XCTAssertEqual(x, images)
    }

    func testPreprocessedBatchesMatchKeras() throws {
        let folder = try ImageFolder(url: Self.sampleDir)
        // Pixel error e becomes e (caffe), e / 127.5 (tf), e / (255 * 0.224) (torch) at most.
        _ = compareWithKeras(folder, "caffe", preprocess: .caffe, tolerance: 1e-3 + 1e-4)
        _ = compareWithKeras(folder, "tf", preprocess: .tf, tolerance: 1e-3 / 127.5 + 1e-4)
        _ = compareWithKeras(folder, "torch", preprocess: .torch, tolerance: 1e-3 / (255 * 0.224) + 1e-4)
    }

    func testBatchesInAnyOrderAndSize() throws {
        let folder = try ImageFolder(url: Self.sampleDir)
        let (want, _) = Self.keras("images")
        let size = 32 * 32 * 3
        let indices = [18, 2, 7, 2]
        let batch = folder.load(indices, height: 32, width: 32, preprocess: .none)
        XCTAssertEqual(batch.loaded.indices, indices)
        XCTAssertEqual(batch.loaded.labels, indices.map { Self.expected.labels[$0] })
        for (slot, i) in indices.enumerated() {
            XCTAssertLessThanOrEqual(
                Self.maxAbsDiff(batch.pixels[slot * size..<(slot + 1) * size], want[i * size..<(i + 1) * size]), 1e-3)
        }
    }

    // MARK: - Damaged files and bad folders

    func testBrokenFilesAreSkippedWithAWarningAndNoLibraryOutput() throws {
        let dir = try makeTemporaryCopyOfSample()
        defer { try? FileManager.default.removeItem(at: dir) }
        let broken = Self.imagesDir.appendingPathComponent("broken")
        for name in try FileManager.default.contentsOfDirectory(atPath: broken.path) {
            try FileManager.default.copyItem(at: broken.appendingPathComponent(name),
                                             to: dir.appendingPathComponent("cat/\(name)"))
        }
        try Data("GIF89a".utf8).write(to: dir.appendingPathComponent("dog/animation.gif"))
        try Data().write(to: dir.appendingPathComponent("dog/empty.png"))

        var warnings: [String] = []
        let stderrText = try capturingStandardError {
            // Files that are no image at all are dropped when the folder is opened ...
            let folder = try ImageFolder(url: dir) { warnings.append($0.description) }
            let root = dir.relativePath
            XCTAssertEqual(warnings, [
                "\(root)/cat/not_an_image.jpg: not an image (neither JPEG nor PNG data), skipped",
                "\(root)/dog/animation.gif: GIF images are not supported (convert to PNG), skipped",
                "\(root)/dog/empty.png: empty file, skipped",
            ])
            XCTAssertEqual(folder.samples.count, Self.expected.file_paths.count + 2)

            // ... files whose data is cut short when a batch meets them.
            warnings = []
            let all = Array(folder.samples.indices)
            let batch = folder.load(all, height: 32, width: 32, preprocess: .none) { warnings.append($0.description) }
            XCTAssertEqual(warnings, [
                "\(root)/cat/truncated.jpg: JPEG data ends early (truncated), skipped",
                "\(root)/cat/truncated.png: damaged PNG: file ends early (truncated), skipped",
            ])
            XCTAssertEqual(batch.loaded.indices.map { folder.samples[$0].relativePath }, Self.expected.file_paths)
            XCTAssertEqual(batch.loaded.labels, Self.expected.labels)
            XCTAssertLessThanOrEqual(Self.maxAbsDiff(batch.pixels[...], Self.keras("images").values[...]), 1e-3)

            // Later batches leave them out without warning again.
            warnings = []
            let again = folder.load(all, height: 32, width: 32, preprocess: .none) { warnings.append($0.description) }
            XCTAssertEqual(again.loaded.count, Self.expected.file_paths.count)
            XCTAssertEqual(warnings, [])
        }
        XCTAssertEqual(stderrText, "", "the JPEG and PNG libraries must not print")
    }

    func testDecodingNonImagesThrowsBadInput() {
        for (bytes, message) in [
            (Data("hello".utf8), "not an image (neither JPEG nor PNG data)"),
            (Data(), "empty file"),
            (Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), "JPEG data ends early (truncated)"),
        ] {
            XCTAssertThrowsError(try DecodedImage(data: bytes, name: "x.jpg")) { error in
                let error = error as? XferError
                XCTAssertEqual(error?.kind, .badInput)
                XCTAssertEqual(error?.subject, "x.jpg")
                XCTAssertEqual(error?.message, message)
            }
        }
    }

    func testFolderWithoutClassesOrImagesIsAnError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-image-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        func expectError(_ message: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try ImageFolder(url: dir), file: file, line: line) { error in
                let error = error as? XferError
                XCTAssertEqual(error?.kind, .badInput, file: file, line: line)
                XCTAssertEqual(error?.subject, dir.path, file: file, line: line)
                XCTAssertEqual(error?.message, message, file: file, line: line)
                XCTAssertNotNil(error?.hint, file: file, line: line)
            }
        }
        expectError("no class subfolders")
        try Data("x".utf8).write(to: dir.appendingPathComponent("loose.jpg"))  // not in a class folder
        expectError("no class subfolders")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("cat"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: dir.appendingPathComponent("cat/notes.txt"))
        expectError("no images in the class subfolders cat")
        try Data("x".utf8).write(to: dir.appendingPathComponent("cat/fake.png"))
        XCTAssertThrowsError(try ImageFolder(url: dir)) { error in
            XCTAssertEqual((error as? XferError)?.message, "none of its 1 image files can be read")
        }
        XCTAssertThrowsError(try ImageFolder(url: dir.appendingPathComponent("missing"))) { error in
            XCTAssertEqual((error as? XferError)?.kind, .badInput)
        }
    }

    // MARK: - Helpers

    func makeTemporaryCopyOfSample() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-image-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.sampleDir, to: dir)
        return dir
    }

    /// Runs `body` with file descriptor 2 sent to a file; returns what was written to it.
    func capturingStandardError(_ body: () throws -> Void) throws -> String {
        let capture = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: capture.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: capture) }
        let handle = try FileHandle(forWritingTo: capture)
        fflush(stderr)
        let saved = dup(2)
        dup2(handle.fileDescriptor, 2)
        defer {
            fflush(stderr)
            dup2(saved, 2)
            close(saved)
            try? handle.close()
        }
        try body()
        fflush(stderr)
        return try String(contentsOf: capture, encoding: .utf8)
    }
}
