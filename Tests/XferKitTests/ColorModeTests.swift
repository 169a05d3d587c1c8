// --color-mode against TensorFlow: checkpoints/predict/pixels.h5 holds what
// tf.io.decode_image(channels=1|4) + tf.image.resize((32, 32), bilinear) — the loading of
// image_dataset_from_directory(color_mode="grayscale"|"rgba") — make of every image in
// checkpoints/images/sample (written by checkpoints/make_predict_fixtures.py).

import Foundation
import XCTest
@testable import XferKit

final class ColorModeTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let sample = root.appendingPathComponent("checkpoints/images/sample")
    static let pixels = root.appendingPathComponent("checkpoints/predict/pixels.h5").path

    /// The image at `relative` (below sample/), decoded to `mode` and resized to 32×32, unpreprocessed.
    func load(_ relative: String, _ mode: ColorMode) throws -> [Float] {
        let folder = try ImageFolder(unlabelled: [Self.sample.appendingPathComponent(relative).path])
        let batch = folder.load([0], height: 32, width: 32, preprocess: .none, colorMode: mode)
        XCTAssertEqual(batch.loaded.count, 1, relative)
        return batch.pixels
    }

    func compare(_ mode: ColorMode) throws -> [String] {
        let file = try HDF5File.open(Self.pixels)
        let names = try file.children("/\(mode.rawValue)")
        XCTAssertGreaterThan(names.count, 10)
        var worst: Float = 0
        for name in names {
            let relative = name.replacingOccurrences(of: "|", with: "/")
            let (shape, want) = try file.floats("/\(mode.rawValue)/\(name)")
            XCTAssertEqual(shape, [32, 32, mode.channels])
            let got = try load(relative, mode)
            XCTAssertEqual(got.count, want.count, relative)
            let err = zip(got, want).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
            XCTAssertLessThanOrEqual(err, 1e-3, "\(mode): \(relative)")
            worst = max(worst, err)
        }
        print("\(mode): max |xfer - TensorFlow| = \(worst) over \(names.count) images")
        let refused = try file.string("/", "refused_\(mode.rawValue)") ?? "[]"
        return try JSONDecoder().decode([String].self, from: Data(refused.utf8))
    }

    func testGrayscaleIsTensorFlowsDecodeWithOneChannel() throws {
        let refused = try compare(.grayscale)
        // TensorFlow cannot make grey of a CMYK JPEG; xfer makes it from the RGB it decodes.
        XCTAssertEqual(refused, ["cat/cmyk_adobe.jpg"])
        XCTAssertEqual(try load("cat/cmyk_adobe.jpg", .grayscale).count, 32 * 32)
    }

    func testRGBAKeepsPNGAlphaAndGivesJPEGOpaqueAlpha() throws {
        let refused = try compare(.rgba)
        // TensorFlow refuses 4 channels for a JPEG: xfer gives it its RGB and alpha 255, as
        // Keras's load_img(color_mode="rgba") does; the RGB is TensorFlow's own (channels=3).
        XCTAssertTrue(refused.contains("cat/gray.jpg") && refused.contains("Zebra/tiny_7x5.jpg"), "\(refused)")
        for jpeg in refused {
            let rgba = try load(jpeg, .rgba), rgb = try load(jpeg, .rgb)
            XCTAssertEqual(rgba.count, 32 * 32 * 4)
            for p in 0..<(32 * 32) {
                XCTAssertEqual(rgba[4 * p + 3], 255, jpeg)
                for c in 0..<3 where rgba[4 * p + c] != rgb[3 * p + c] {
                    XCTFail("\(jpeg): pixel \(p) channel \(c) is \(rgba[4 * p + c]), RGB decode gives \(rgb[3 * p + c])")
                    return
                }
            }
        }
    }

    func testCaffeAndTorchNeedRGB() throws {
        for mode in [PreprocessMode.caffe, .torch] {
            XCTAssertThrowsError(try DataSource(images: [Self.sample.path], preprocess: mode, colorMode: .grayscale)) { error in
                XCTAssertEqual((error as? XferError)?.kind, .usage, "\(error)")
            }
        }
        XCTAssertNoThrow(try DataSource(images: [Self.sample.path], preprocess: .tf, colorMode: .rgba))
    }
}
