// `xfer predict CHECKPOINT --data DATA [--output OUT.h5] [--top-k K] [--threshold T]`: one line
// per sample, by head kind (the checkpoint's loss, else its last activation):
//   softmax      the top class and its probability (--top-k: the K best, each with its own)
//   1 sigmoid    the class (p > threshold, default 0.5: class 1) and the probability of class 1
//   k sigmoids   every label whose probability is above the threshold, each with it
//   regression   the values

import ArgumentParser
import Foundation
import XferKit

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run a checkpoint on DATA: print each input's class (or labels, or values), or write all predictions.")

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).")
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(name: .long, help: ArgumentHelp("Write dataset `predictions` (N, classes) float32 to this HDF5 file.", valueName: "OUT.h5"))
    var output: String?

    @Option(name: .long, help: ArgumentHelp("Print the K most likely classes of a softmax head.", valueName: "K"))
    var topK: Int?

    @Option(name: .long, help: ArgumentHelp("Probability above which a sigmoid head says class 1, or a multi-label head prints a label.", valueName: "T"))
    var threshold: Float = 0.5

    @Option(name: .long, help: ArgumentHelp("The loss that says how to read the outputs (default: the checkpoint's compiled loss, else its last activation's).", valueName: "LOSS"))
    var loss: String?

    func validate() throws {
        if let k = topK, k < 1 { throw ValidationError("--top-k must be at least 1") }
        guard threshold >= 0 && threshold <= 1 else { throw ValidationError("--threshold must be in [0, 1]") }
    }

    var inputs: [CommandFile] {
        [CommandFile("CHECKPOINT", checkpoint), CommandFile("--data", dataOptions.data)]
            + (checkpointOptions.config.map { [CommandFile("--config", $0)] } ?? [])
    }

    func run() throws {
        if let output { try checkOutputs([CommandFile("--output", output)], inputs: inputs) }
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        let data = try dataOptions.open()
        let predictor = try KerasModel(loaded).withLoss(try loss.map(LossConfig.parse)).predictor()
        let kind = predictor.lossConfig.kind
        if topK != nil, !kind.isCategorical || predictor.outputCount < 2 {
            let n = predictor.outputCount
            throw XferError.usage("--top-k", "applies to a softmax head, and this model's loss is \(kind.shortName) on \(n) output\(n == 1 ? "" : "s")")
        }
        let bar = ProgressBar("predict")
        let p = try predictor.predict(data, batchSize: dataOptions.batchSize, progress: { bar.update($0, $1) }, warning: warn)
        bar.finish()
        let names = loaded.classNames ?? data.classNames
        if let output {
            try writeAtomically(output, protecting: inputs.map(\.path), create: HDF5File.create) { f in
                // As Keras's predict shapes them: (N, classes), or (N, 1, 1, 512) for a headless base.
                let shape = p.sampleShape.isEmpty ? p.kerasOutputs.shape : [p.indices.count] + p.sampleShape
                try f.write("/predictions", shape: shape, floats: p.kerasOutputs.values)
                try f.write("/indices", shape: [p.indices.count], int64s: p.indices.map { Int64($0) })
                if let names { try f.setStrings("/", "class_names", names) }
                try f.flush()
            }
            say("Wrote \(p.indices.count) predictions to \(output)")
            return
        }
        let classes = p.probabilities.shape[1]
        func name(_ c: Int) -> String { names.flatMap { c < $0.count ? $0[c] : nil } ?? String(c) }
        func fmt(_ v: Float) -> String { String(format: "%.4f", Double(v)) }
        for (row, index) in p.indices.enumerated() {
            let probs = Array(p.probabilities.values[(row * classes)..<((row + 1) * classes)])
            var cells: [String]
            if kind.isRegression {
                cells = probs.map { String(format: "%.6g", Double($0)) }
            } else if kind == .binaryCrossentropy && classes == 1 {
                cells = [name(probs[0] > threshold ? 1 : 0), fmt(probs[0])]
            } else if kind == .binaryCrossentropy {
                let on = probs.indices.filter { probs[$0] > threshold }
                cells = on.isEmpty ? ["-"] : on.map { "\(name($0)):\(fmt(probs[$0]))" }
            } else {
                // The first of equal probabilities first, as argmax.
                let order = probs.indices.sorted { probs[$0] != probs[$1] ? probs[$0] > probs[$1] : $0 < $1 }
                let k = min(topK ?? 1, classes)
                cells = order.prefix(k).flatMap { [name($0), fmt(probs[$0])] }
            }
            say(([data.sampleName(index)] + cells).joined(separator: "\t"))
        }
    }
}
