// `xfer evaluate CHECKPOINT --data DATA [--loss LOSS] [--per-class] [--json]`: the loss and the
// metrics Keras's `model.evaluate` gives for the checkpoint's loss (Metrics/Evaluation.swift).

import ArgumentParser
import Foundation
import XferKit

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Loss and metrics of a checkpoint on labelled DATA, as Keras's model.evaluate.")

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).", completion: .file())
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(name: .long, help: ArgumentHelp("The loss (default: the one the checkpoint was compiled with, else what its last activation implies).", valueName: "LOSS"))
    var loss: String?

    @Flag(name: .long, help: "Also print precision, recall and F1 per class and the confusion matrix.")
    var perClass = false

    @Flag(name: .long, help: "Print the results as one JSON object.")
    var json = false

    func run() throws {
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        let data = try dataOptions.open(for: loaded)
        let predictor = try KerasModel(loaded).withLoss(try loss.map(LossConfig.parse)).predictor()
        // Labels by class name: a folder of 2 of the model's 5 classes is labelled as the model knows them.
        if let names = loaded.classNames { try data.matchClasses(to: names) }
        try predictor.checkEvaluable(data)
        if let line = dataOptions.read.inputLine(for: loaded, data: data) { note(line) }
        let bar = ProgressBar("evaluate")
        let p = try predictor.predict(data, batchSize: dataOptions.batchSize, progress: { bar.update($0, $1) }, warning: warn)
        bar.finish()
        let names = loaded.classNames ?? data.classNames
        let r = try predictor.evaluate(p, classNames: names)
        if json {
            var object: [String: Any] = ["loss": r.loss, "loss_name": r.lossName, "samples": r.count,
                                         "metrics": Dictionary(uniqueKeysWithValues: r.metrics.map { ($0.name, $0.value) })]
            if perClass, let rows = r.perClass {
                object["per_class"] = rows.map { ["class": $0.name, "precision": $0.precision, "recall": $0.recall,
                                                  "f1": $0.f1, "support": $0.support] as [String: Any] }
                if let confusion = r.confusion { object["confusion"] = confusion }
            }
            print(try jsonText(object))
            return
        }
        say(r.line)
        guard perClass else { return }
        guard let rows = r.perClass else {
            say("(no per-class table: the loss is \(r.lossName))")
            return
        }
        say(perClassTable(rows, confusion: r.confusion))
    }
}

/// The per-class table and the confusion matrix (rows: true class, columns: predicted), or the
/// per-label table of a multi-label head.
func perClassTable(_ rows: [ClassMetrics], confusion: [[Int]]?) -> String {
    let width = max(5, rows.map(\.name.count).max() ?? 5)
    func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
    func left(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
    var lines = [pad(confusion == nil ? "label" : "class", width) + "  precision     recall         f1    support"]
    for r in rows {
        lines.append(pad(r.name, width) + String(format: "  %9.4f  %9.4f  %9.4f  %9d", r.precision, r.recall, r.f1, r.support))
    }
    guard let confusion else { return lines.joined(separator: "\n") }
    lines.append("")
    lines.append("Confusion matrix (rows: true class, columns: predicted):")
    let digits: Int = confusion.flatMap { $0 }.map { String($0).count }.max() ?? 1
    let names: Int = rows.map { min($0.name.count, 12) }.max() ?? 1
    let cell = max(6, digits + 1, names + 1)
    lines.append(pad("", width) + rows.map { left(String($0.name.prefix(12)), cell) }.joined())
    for (i, row) in confusion.enumerated() {
        lines.append(pad(rows[i].name, width) + row.map { left(String($0), cell) }.joined())
    }
    return lines.joined(separator: "\n")
}
