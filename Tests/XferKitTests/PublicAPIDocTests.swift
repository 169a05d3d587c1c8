// The public API stays documented: every `public` declaration of XferKit has a DocC comment,
// and every public type, initialiser and function has an example in it (each example is
// compiled and run by scripts/examples.sh, through scripts/doc_examples.py).

import Foundation
import XCTest

final class PublicAPIDocTests: XCTestCase {
    func testEveryPublicDeclarationIsDocumentedWithAnExample() throws {
        let sources = Fixtures.root.appendingPathComponent("Sources/XferKit")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
            .compactMap { $0 as? URL }.filter { $0.pathExtension == "swift" }
        var undocumented: [String] = [], withoutExample: [String] = [], declarations = 0
        for file in files {
            let lines = try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() {
                let text = line.trimmingCharacters(in: .whitespaces)
                guard text.hasPrefix("public ") else { continue }
                declarations += 1
                var j = i - 1
                while j >= 0, lines[j].trimmingCharacters(in: .whitespaces).hasPrefix("@") { j -= 1 }
                var doc: [String] = []
                while j >= 0, lines[j].trimmingCharacters(in: .whitespaces).hasPrefix("///") { doc.append(lines[j]); j -= 1 }
                let place = "\(file.lastPathComponent):\(i + 1) \(text.prefix(70))"
                if doc.isEmpty { undocumented.append(place); continue }
                let words = text.split(separator: " ").map(String.init)
                let kind = words.first { !["public", "static", "final", "mutating", "convenience", "private(set)"].contains($0) } ?? ""
                if ["struct", "class", "enum", "func", "init"].contains(where: { kind == $0 || kind.hasPrefix($0 + "(") }),
                   !doc.contains(where: { $0.contains("```") }) {
                    withoutExample.append(place)
                }
            }
        }
        XCTAssertGreaterThan(declarations, 100)
        XCTAssertEqual(undocumented, [], "public declarations without a DocC comment")
        XCTAssertEqual(withoutExample, [], "public types and functions without an example")
    }
}
