// `xfer predict CHECKPOINT --data DATA [--output OUT.h5]`

import ArgumentParser
import Foundation
import XferKit

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run a checkpoint on DATA: print the top-1 class of each input, or write all predictions.")

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).")
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(name: .long, help: ArgumentHelp("Write dataset `predictions` (N, classes) float32 to this HDF5 file.", valueName: "OUT.h5"))
    var output: String?

    var inputs: [CommandFile] {
        [CommandFile("CHECKPOINT", checkpoint), CommandFile("--data", dataOptions.data)]
            + (checkpointOptions.config.map { [CommandFile("--config", $0)] } ?? [])
    }

    func run() throws {
        if let output { try checkOutputs([CommandFile("--output", output)], inputs: inputs) }
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        let data = try dataOptions.open()
        let predictor = try Predictor(model: loaded.model)
        let bar = ProgressBar("predict")
        let p = try predictor.predict(data, batchSize: dataOptions.batchSize, progress: { bar.update($0, $1) }, warning: warn)
        bar.finish()
        let names = loaded.classNames ?? data.classNames
        if let output {
            try writeAtomically(output, protecting: inputs.map(\.path), create: HDF5File.create) { f in
                // As Keras's predict shapes them: (N, classes), or (N, 1, 1, 512) for a headless base.
                let shape = p.sampleShape.isEmpty ? p.probabilities.shape : [p.indices.count] + p.sampleShape
                try f.write("/predictions", shape: shape, floats: p.probabilities.values)
                try f.write("/indices", shape: [p.indices.count], int64s: p.indices.map { Int64($0) })
                if let names { try f.setStrings("/", "class_names", names) }
                try f.flush()
            }
            say("Wrote \(p.indices.count) predictions to \(output)")
            return
        }
        let classes = p.probabilities.shape[1]
        for (row, index) in p.indices.enumerated() {
            let probs = Array(p.probabilities.values[(row * classes)..<((row + 1) * classes)])
            let top = probs.indices.max { probs[$0] < probs[$1] }!
            let label = names.flatMap { top < $0.count ? $0[top] : nil } ?? String(top)
            say("\(data.sampleName(index))\t\(label)\t\(String(format: "%.4f", Double(probs[top])))")
        }
    }
}
