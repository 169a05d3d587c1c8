// The README's main job, shortened: fine-tune the Keras-pretrained Fashion-MNIST backbone
// on a subset of the other task's images and check that it learns (chance is 20 %).

import Foundation
import XCTest

final class FashionJobTests: XCTestCase {
    let fashion = CLI.root.appendingPathComponent("checkpoints/fashion")

    /// A copy of the first `perClass` images of each class of `split`.
    func subset(_ split: String, perClass: Int, in dir: URL) throws -> URL {
        let fm = FileManager.default
        let src = fashion.appendingPathComponent(split), dst = dir.appendingPathComponent(split)
        for cls in try fm.contentsOfDirectory(atPath: src.path).sorted() where !cls.hasPrefix(".") {
            let to = dst.appendingPathComponent(cls)
            try fm.createDirectory(at: to, withIntermediateDirectories: true)
            for f in try fm.contentsOfDirectory(atPath: src.appendingPathComponent(cls).path).sorted().prefix(perClass) {
                try fm.copyItem(at: src.appendingPathComponent(cls).appendingPathComponent(f), to: to.appendingPathComponent(f))
            }
        }
        return dst
    }

    func testShortFineTuneBeatsChanceByAWideMargin() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-fashion-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try subset("train", perClass: 60, in: dir), test = try subset("test", perClass: 30, in: dir)
        let out = dir.appendingPathComponent("tuned.h5").path
        let r = try CLI.run(["finetune", fashion.appendingPathComponent("fashion_vgg.h5").path, "--data", train.path,
                             "--freeze-until", "block4", "--head", "flatten,dense:64:relu,dropout:0.5",
                             "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9", "--epochs", "3", "--seed", "0", "--output", out])
        XCTAssertEqual(r.status, 0, r.stderr)
        let e = try CLI.run(["evaluate", out, "--data", test.path])
        XCTAssertEqual(e.status, 0, e.stderr)
        let accuracy = Double(e.stdout.components(separatedBy: "accuracy: ").last!.trimmingCharacters(in: .whitespacesAndNewlines))!
        print("short fashion job: \(e.stdout)")
        XCTAssertGreaterThan(accuracy, 0.6, "chance is 0.2")
    }

    func testSameSeedGivesTheSameBytes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xfer-fashion-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let train = try subset("train", perClass: 20, in: dir)
        var files: [Data] = []
        for k in 0..<2 {
            let out = dir.appendingPathComponent("run\(k).h5").path
            let r = try CLI.run(["finetune", fashion.appendingPathComponent("fashion_vgg.h5").path, "--data", train.path,
                                 "--freeze-until", "block3", "--epochs", "2", "--seed", "5", "--output", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            files.append(try Data(contentsOf: URL(fileURLWithPath: out)))
        }
        XCTAssertEqual(files[0], files[1], "a seeded run repeats bit for bit")
    }
}
