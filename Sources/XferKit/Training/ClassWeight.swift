// `--class-weight balanced|JSON`: Keras's `fit(class_weight=...)`. Each sample's weight is its
// class's (tf-keras `_make_class_weight_map_fn`: the class is the argmax of a target row, or the
// rounded value of a single target), multiplying its loss; the loss stays Σ wᵢ·lossᵢ / N. The
// logged metric is not weighted (Keras weights `weighted_metrics` only, not `metrics`).
//
// `balanced` is scikit-learn's `compute_class_weight("balanced")`: N / (classes · countᶜ),
// counted on the training samples.

import Foundation

/// Weights per class.
package struct ClassWeights: Sendable, Equatable {
    package var weights: [Float]

    package init(_ weights: [Float]) { self.weights = weights }

    /// Parses `--class-weight`: `balanced`, or a JSON object from class id (or class name, with
    /// `names`) to weight. `classes` is the number of classes the head has (2 for one sigmoid
    /// unit); `classOf` the training samples' classes (for `balanced`).
    package static func parse(_ text: String, classes: Int, names: [String]?, classOf: [Int]) throws -> ClassWeights {
        let flag = "--class-weight"
        if text == "balanced" {
            var counts = [Int](repeating: 0, count: classes)
            for c in classOf where c >= 0 && c < classes { counts[c] += 1 }
            if let empty = counts.firstIndex(of: 0) {
                throw XferError.usage(flag, "balanced: class \(names.flatMap { empty < $0.count ? $0[empty] : nil } ?? String(empty)) has no training samples")
            }
            let n = Float(classOf.count)
            return ClassWeights(counts.map { n / (Float(classes) * Float($0)) })
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw XferError.usage(flag, "'\(text)' is neither 'balanced' nor a JSON object", hint: "e.g. --class-weight '{\"0\": 1, \"1\": 3.5}'")
        }
        var weights = [Float](repeating: 1, count: classes)
        var seen = Set<Int>()
        for (key, value) in object {
            guard let c = Int(key) ?? names?.firstIndex(of: key) else {
                throw XferError.usage(flag, "'\(key)' is not a class id\(names == nil ? "" : " or class name")",
                                      hint: names.map { "classes: " + $0.joined(separator: ", ") } ?? "keys are class ids 0, 1, ...")
            }
            guard c >= 0 && c < classes else { throw XferError.usage(flag, "class \(key) is not one of the \(classes) classes") }
            guard let w = (value as? NSNumber)?.doubleValue, w.isFinite, w >= 0 else {
                throw XferError.usage(flag, "the weight of class \(key) is not a number ≥ 0")
            }
            weights[c] = Float(w)
            seen.insert(c)
        }
        // Keras wants every class from 0 to the last one named.
        if let highest = seen.max(), seen.count != highest + 1 {
            let missing = (0...highest).first { !seen.contains($0) }!
            throw XferError.usage(flag, "names classes up to \(highest) but not class \(missing)",
                                  hint: "Keras's class_weight gives a weight to every class 0 … \(highest)")
        }
        return ClassWeights(weights)
    }

    /// The weight of each of `targets`' rows (n, width).
    package func sampleWeights(_ targets: Tensor) -> [Float] {
        let n = targets.shape[0], w = targets.count / max(n, 1)
        return (0..<n).map { i in
            let row = targets.values[(i * w)..<((i + 1) * w)]
            let c = w == 1 ? Int(row.first!.rounded()) : row.indices.max { row[$0] < row[$1] }! - i * w
            return c >= 0 && c < weights.count ? weights[c] : 1
        }
    }
}
