// Access to the Keras-written fixtures in checkpoints/fixtures (made by
// checkpoints/make_checkpoints.py). Every expected number comes from there.

import Foundation
import XCTest
@testable import XferKit

enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let dir = root.appendingPathComponent("checkpoints/fixtures")

    struct Entry: Decodable {
        var name: String
        var file: String
        var expected: String?
        var io: String?
        var xfer_args: [String]
        var error: ErrorSpec?
        struct ErrorSpec: Decodable { var exit: Int32; var mentions: [String] }
    }

    struct Expected: Decodable {
        var file: String
        var keras_version: String?
        var input_shape: [Int]
        var total_params: Int
        var trainable_params: Int
        var non_trainable_params: Int
        var optimizer_params: Int?
        var layers: [Layer]
        struct Layer: Decodable {
            var name: String
            var type: String
            var output_shape: [Int?]
            var params: Int
            var trainable_params: Int
            var non_trainable_params: Int
            var trainable: Bool
            var parent: String?
        }
    }

    static func index() throws -> [Entry] {
        try JSONDecoder().decode([Entry].self, from: Data(contentsOf: dir.appendingPathComponent("index.json")))
    }

    static func expected(_ e: Entry) throws -> Expected? {
        guard let name = e.expected else { return nil }
        return try JSONDecoder().decode(Expected.self, from: Data(contentsOf: dir.appendingPathComponent(name)))
    }

    static func path(_ file: String) -> String { dir.appendingPathComponent(file).path }

    /// `--input-shape` / `--config` of an index entry, as load options.
    static func options(_ e: Entry) -> (inputShape: [Int]?, config: String?) {
        var shape: [Int]?
        var config: String?
        var i = 0
        while i + 1 < e.xfer_args.count {
            if e.xfer_args[i] == "--input-shape" { shape = e.xfer_args[i + 1].split(separator: ",").map { Int($0)! } }
            if e.xfer_args[i] == "--config" { config = path(e.xfer_args[i + 1]) }
            i += 2
        }
        return (shape, config)
    }

    /// A fresh temporary folder, removed at the end of the test.
    static func tempDir(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// The convolution cores the parity tests hold to Keras, each in turn: im2col + SGEMM (the exact
/// reference) and Winograd forced wherever oneDNN can run it (on a CPU without AVX-512 that
/// second pass runs im2col again, and `winogradRuns` says so). The setting is restored after.
func forEachConvolutionPath(_ body: (ConvolutionPath) throws -> Void) rethrows {
    let saved = Convolution.path
    defer { Convolution.path = saved }
    for path in [ConvolutionPath.im2col, .winograd] {
        Convolution.path = path
        try body(path)
    }
}

/// Whether oneDNN runs Winograd on this CPU (a VGG-sized 3×3 layer as the probe).
var winogradRuns: Bool {
    let g = ConvGeometry(input: [14, 14, 64], Conv2DConfig(filters: 64, kernelSize: (3, 3), padding: .same))!
    return ConvolutionChoice(g, path: .winograd).winograd
}

/// How many Conv2D layers of `model` run on Winograd under the current path.
func winogradLayerCount(_ model: ModelSpec) throws -> Int {
    try ModelGraph(model).nodes.filter { node in
        guard let conv = node.layer.op as? Conv2DConfig, let g = ConvGeometry(input: node.inputShapes[0], conv) else { return false }
        return ConvolutionChoice(g).winograd
    }.count
}
