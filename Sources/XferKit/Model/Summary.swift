// Parameter counts and the `model.summary()`-style table, counted as Keras counts
// (docs/KERAS-FORMATS.md C.1): a row's `Param #` is every weight of the layer (nested
// models: of all their layers); a weight is trainable when its layer and every
// enclosing model are trainable and it is not a BatchNormalization moving statistic.

import Foundation

/// One row of the summary: a layer, or a layer inside a nested model (`parent` set).
package struct SummaryRow: Sendable, Encodable, Equatable {
    package var name: String
    package var type: String
    /// With the batch axis as `nil`.
    package var outputShape: [Int?]
    package var params: Int
    package var trainableParams: Int
    package var nonTrainableParams: Int
    package var trainable: Bool
    package var parent: String?
    /// Nesting depth, 0 for top-level layers.
    package var depth: Int

    enum CodingKeys: String, CodingKey {
        case name, type, params, trainable, parent
        case outputShape = "output_shape"
        case trainableParams = "trainable_params"
        case nonTrainableParams = "non_trainable_params"
    }
}

/// What `xfer import` prints: rows and the three totals.
package struct ModelSummary: Sendable {
    package var modelName: String
    package var rows: [SummaryRow]
    package var totalParams: Int
    package var trainableParams: Int
    package var nonTrainableParams: Int

    package init(_ model: ModelSpec) throws {
        modelName = model.name
        rows = []
        let (t, n) = try ModelSummary.collect(model, enclosingTrainable: model.trainable, parent: nil, depth: 0, into: &rows)
        trainableParams = t
        nonTrainableParams = n
        totalParams = t + n
    }

    /// (trainable, non-trainable) counts of `model`'s layers, appending their rows.
    private static func collect(_ model: ModelSpec, enclosingTrainable: Bool, parent: String?, depth: Int,
                                into rows: inout [SummaryRow]) throws -> (Int, Int) {
        let outputs = try model.layerOutputShapes()
        var total = (0, 0)
        for (layer, out) in zip(model.layers, outputs) {
            let rowIndex = rows.count
            rows.append(SummaryRow(name: layer.name, type: layer.className, outputShape: [nil] + out.map { $0 },
                                   params: 0, trainableParams: 0, nonTrainableParams: 0,
                                   trainable: layer.trainable, parent: parent, depth: depth))
            // A row counts the layer on its own, as `layer.trainable_weights` does. The totals
            // take each weight by its own layer's flag: a nested model's flag does not reach into
            // its layers (see `ModelSpec.weightCounts`).
            let counts: (Int, Int)
            if case .model(let inner) = layer.kind {
                counts = try collect(inner, enclosingTrainable: enclosingTrainable,
                                     parent: layer.name, depth: depth + 1, into: &rows)
            } else {
                counts = layer.ownCounts(enclosingTrainable: enclosingTrainable)
            }
            let own = layer.ownCounts()
            rows[rowIndex].params = own.0 + own.1
            rows[rowIndex].trainableParams = own.0
            rows[rowIndex].nonTrainableParams = own.1
            total.0 += counts.0; total.1 += counts.1
        }
        return total
    }

    /// The Keras-style table with a Trainable column, then the three `... params:` lines.
    /// `extra` adds a last column (`title`, and a cell per layer name).
    package func render(title: String? = nil, extra: (title: String, cells: [String: String])? = nil) -> String {
        // Names come out of the file: escaped, so a name cannot break the table or drive the terminal.
        let nameCells = rows.map { String(repeating: "  ", count: $0.depth) + "\($0.name) (\($0.type))".terminalSafe }
        let shapeCells = rows.map { r in "(" + r.outputShape.map { $0.map(String.init) ?? "None" }.joined(separator: ", ") + ")" }
        let w0 = max(30, (nameCells.map(\.count).max() ?? 0) + 2)
        let w1 = max(22, (shapeCells.map(\.count).max() ?? 0) + 2)
        let w2 = max(12, (rows.map { formatCount($0.params).count }.max() ?? 0) + 2)
        let w3 = extra == nil ? 9 : 11
        let w4 = extra.map { max($0.title.count, $0.cells.values.map(\.count).max() ?? 0) } ?? 0
        let width = w0 + w1 + w2 + w3 + w4 + 1
        func line(_ a: String, _ b: String, _ c: String, _ d: String, _ e: String = "") -> String {
            var l = " " + a.padding(toLength: w0 - 1, withPad: " ", startingAt: 0) + b.padding(toLength: w1, withPad: " ", startingAt: 0)
                + c.padding(toLength: w2, withPad: " ", startingAt: 0)
            l += extra == nil ? d : d.padding(toLength: w3, withPad: " ", startingAt: 0) + e
            return l
        }
        var out: [String] = []
        out.append("Model: \"\((title ?? modelName).terminalSafe)\"")
        out.append(String(repeating: "_", count: width))
        out.append(line("Layer (type)", "Output Shape", "Param #", "Trainable", extra?.title ?? ""))
        out.append(String(repeating: "=", count: width))
        for (i, r) in rows.enumerated() {
            let t = r.params == 0 && !isModelType(r.type) ? "-" : (r.trainable ? "Y" : "N")
            out.append(line(nameCells[i], shapeCells[i], formatCount(r.params), t, extra?.cells[r.name] ?? ""))
        }
        out.append(String(repeating: "=", count: width))
        out.append("Total params: \(formatCount(totalParams))")
        out.append("Trainable params: \(formatCount(trainableParams))")
        out.append("Non-trainable params: \(formatCount(nonTrainableParams))")
        out.append(String(repeating: "_", count: width))
        return out.joined(separator: "\n")
    }

    private func isModelType(_ t: String) -> Bool { t == "Functional" || t == "Sequential" }
}

extension LayerSpec {
    /// (trainable, non-trainable) parameter counts of this layer taken alone, as Keras's
    /// `layer.trainable_weights` / `non_trainable_weights`: nothing trainable when the layer
    /// (or a nested model) is itself frozen.
    package func ownCounts(enclosingTrainable: Bool = true) -> (Int, Int) {
        let effective = enclosingTrainable && trainable
        if case .model(let inner) = kind {
            let c = inner.weightCounts()
            return effective && inner.trainable ? c : (0, c.0 + c.1)
        }
        var c = (0, 0)
        for w in weights {
            if effective && w.isTrainableKind { c.0 += w.count } else { c.1 += w.count }
        }
        return c
    }
}

extension ModelSpec {
    /// (trainable, non-trainable) counts of every weight inside, each by its own layer's
    /// flag, as an enclosing model's `trainable_weights` sees them: Keras 3 keeps the flag on
    /// each variable (`base.trainable = False` then `block5_conv3.trainable = True` trains
    /// block5_conv3), and tf-keras drops a nested model's own flag when it loads a file.
    package func weightCounts() -> (Int, Int) {
        var c = (0, 0)
        for l in layers {
            let s: (Int, Int)
            if case .model(let inner) = l.kind { s = inner.weightCounts() } else { s = l.ownCounts() }
            c.0 += s.0; c.1 += s.1
        }
        return c
    }
}

/// 1050 → "1,050", as Keras prints counts.
package func formatCount(_ n: Int) -> String {
    let digits = String(n)
    var out = ""
    for (i, ch) in digits.reversed().enumerated() {
        if i > 0 && i % 3 == 0 && ch != "-" { out.append(",") }
        out.append(ch)
    }
    return String(out.reversed())
}
