// What training records per epoch, and the two ways it leaves the process:
// `--csv-log FILE` (one row per epoch) and `--plot FILE.svg` (loss and accuracy
// curves, train and validation, as a standalone SVG a browser shows).

import Foundation

/// One epoch's metrics (Keras `History.history` entries).
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
/// let data = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")
/// let history = try await model.fit(data, epochs: 2, batchSize: 4)
/// print(history.map(\.loss), history.last!.metricName, history.last!.accuracy)
/// ```
public struct EpochRecord: Sendable, Equatable {
    /// The epoch, from 1.
    public var epoch: Int
    /// The epoch's mean training loss.
    public var loss: Double
    /// The loss's metric (``metricName``): accuracy for a classifier, mae for regression.
    public var accuracy: Double
    /// The validation loss, with validation data.
    public var valLoss: Double?
    /// The validation metric (``metricName`` of the validation data), with validation data.
    public var valAccuracy: Double?
    /// The learning rate the epoch ran with.
    public var learningRate: Float
    /// Keras's name of ``accuracy``'s metric: `accuracy`, `binary_accuracy` (multi-label), `mae`.
    public var metricName = "accuracy"
    /// The phase of a two-phase run (`--then-unfreeze`): 1 (the head), 2 (after unfreezing).
    package var phase = 1

    package init(epoch: Int, loss: Double, accuracy: Double, valLoss: Double? = nil, valAccuracy: Double? = nil, learningRate: Float) {
        self.epoch = epoch; self.loss = loss; self.accuracy = accuracy
        self.valLoss = valLoss; self.valAccuracy = valAccuracy; self.learningRate = learningRate
    }

    /// `epoch 3/10 - loss: 0.4321 - accuracy: 0.8750 [- val_loss: ... - val_accuracy: ...]`
    /// (docs/CONTRACT.md; `mae` or `binary_accuracy` in place of accuracy for those heads).
    ///
    /// ```swift
    /// var model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// let history = try await model.fit(try DataSource(contentsOf: "checkpoints/training/fit_plain.h5"), epochs: 2, batchSize: 4)
    /// print(history[0].line(of: 2))   // epoch 1/2 - loss: ... - accuracy: ...
    /// ```
    public func line(of epochs: Int) -> String {
        var s = String(format: "epoch %d/%d - loss: %.4f - ", epoch, epochs, loss) + metricName + String(format: ": %.4f", accuracy)
        if let v = valLoss, let a = valAccuracy { s += String(format: " - val_loss: %.4f - val_", v) + metricName + String(format: ": %.4f", a) }
        return s
    }
}

/// `epoch,loss,accuracy,val_loss,val_accuracy,lr` with one row per epoch (empty cells when there
/// is no validation data; the metric's own name for `mae`/`binary_accuracy`), and a last column
/// `phase` (1 or 2) when the run had two phases.
package func csvLog(_ history: [EpochRecord]) -> String {
    let m = history.first?.metricName ?? "accuracy"
    let phased = history.contains { $0.phase != 1 }
    var out = "epoch,loss,\(m),val_loss,val_\(m),lr\(phased ? ",phase" : "")\n"
    for r in history {
        let v = r.valLoss.map { String($0) } ?? "", a = r.valAccuracy.map { String($0) } ?? ""
        out += "\(r.epoch),\(r.loss),\(r.accuracy),\(v),\(a),\(r.learningRate)\(phased ? ",\(r.phase)" : "")\n"
    }
    return out
}

/// Two panels side by side, loss and accuracy against epoch, train solid and validation dashed;
/// in a two-phase run a grey dashed vertical line between the phases' epochs in both panels,
/// labelled `phaseLabel` (default `phase 2`).
package func svgPlot(_ history: [EpochRecord], title: String, phaseLabel: String? = nil) -> String {
    let panelW = 420.0, panelH = 280.0, margin = 50.0
    let width = 2 * panelW + 3 * margin, height = panelH + 2 * margin + 30
    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    func panel(_ x0: Double, _ name: String, _ train: [Double], _ val: [Double?], fixedMax: Double?) -> String {
        let all = train + val.compactMap { $0 }
        let hi = fixedMax ?? max((all.max() ?? 1) * 1.05, 1e-9)
        let lo = fixedMax == nil ? 0 : 0
        let n = max(history.count, 2)
        func px(_ i: Int) -> Double { x0 + Double(i) / Double(n - 1) * panelW }
        func py(_ v: Double) -> Double { margin + 30 + panelH - (v - Double(lo)) / (hi - Double(lo)) * panelH }
        var s = "<rect x=\"\(x0)\" y=\"\(margin + 30)\" width=\"\(panelW)\" height=\"\(panelH)\" fill=\"none\" stroke=\"#888\"/>\n"
        s += "<text x=\"\(x0 + panelW / 2)\" y=\"\(margin + 22)\" text-anchor=\"middle\" font-size=\"14\">\(name)</text>\n"
        for k in 0...4 {
            let v = Double(lo) + (hi - Double(lo)) * Double(k) / 4
            s += "<text x=\"\(x0 - 6)\" y=\"\(py(v) + 4)\" text-anchor=\"end\" font-size=\"10\">\(String(format: "%.3g", v))</text>\n"
            s += "<line x1=\"\(x0)\" y1=\"\(py(v))\" x2=\"\(x0 + panelW)\" y2=\"\(py(v))\" stroke=\"#eee\"/>\n"
        }
        for (i, r) in history.enumerated() where history.count <= 20 || i % max(1, history.count / 10) == 0 {
            s += "<text x=\"\(px(i))\" y=\"\(margin + 30 + panelH + 14)\" text-anchor=\"middle\" font-size=\"10\">\(r.epoch)</text>\n"
        }
        s += "<text x=\"\(x0 + panelW / 2)\" y=\"\(margin + 30 + panelH + 28)\" text-anchor=\"middle\" font-size=\"11\">epoch</text>\n"
        func polyline(_ values: [Double?], _ color: String, dashed: Bool) -> String {
            let pts = values.enumerated().compactMap { i, v in v.map { "\(px(i)),\(py($0))" } }
            guard !pts.isEmpty else { return "" }
            var line = "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(pts.joined(separator: " "))\"/>\n"
            for p in pts { line += "<circle cx=\"\(p.split(separator: ",")[0])\" cy=\"\(p.split(separator: ",")[1])\" r=\"2.5\" fill=\"\(color)\"/>\n" }
            return line
        }
        s += polyline(train.map { $0 }, "#1f77b4", dashed: false)
        s += polyline(val, "#d62728", dashed: true)
        if let k = history.firstIndex(where: { $0.phase == 2 }), k > 0 {
            // Halfway between phase 1's last epoch and phase 2's first.
            let x = (px(k - 1) + px(k)) / 2
            s += "<line class=\"phase\" x1=\"\(x)\" y1=\"\(margin + 30)\" x2=\"\(x)\" y2=\"\(margin + 30 + panelH)\" stroke=\"#888\" stroke-width=\"1.5\" stroke-dasharray=\"3 3\"/>\n"
            s += "<text x=\"\(x + 4)\" y=\"\(margin + 44)\" font-size=\"10\" fill=\"#555\">\(esc(phaseLabel ?? "phase 2"))</text>\n"
        }
        return s
    }
    var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\">\n"
    svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    svg += "<text x=\"\(width / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">\(esc(title))</text>\n"
    svg += panel(margin, "loss", history.map(\.loss), history.map(\.valLoss), fixedMax: nil)
    let metric = history.first?.metricName ?? "accuracy"
    svg += panel(2 * margin + panelW, metric, history.map(\.accuracy), history.map(\.valAccuracy),
                 fixedMax: metric.hasSuffix("accuracy") ? 1 : nil)
    let ly = height - 12
    svg += "<line x1=\"\(margin)\" y1=\"\(ly - 4)\" x2=\"\(margin + 24)\" y2=\"\(ly - 4)\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
    svg += "<text x=\"\(margin + 30)\" y=\"\(ly)\" font-size=\"11\">train</text>\n"
    svg += "<line x1=\"\(margin + 80)\" y1=\"\(ly - 4)\" x2=\"\(margin + 104)\" y2=\"\(ly - 4)\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>"
    svg += "<text x=\"\(margin + 110)\" y=\"\(ly)\" font-size=\"11\">validation</text>\n"
    svg += "</svg>\n"
    return svg
}
