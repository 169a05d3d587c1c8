// `xfer evaluate CHECKPOINT --data DATA`

import ArgumentParser
import Foundation
import XferKit

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Loss and accuracy of a checkpoint on labelled DATA.")

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).")
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions
    @OptionGroup var dataOptions: DataOptions

    func run() throws {
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        let data = try dataOptions.open()
        _ = try data.requireLabels(for: "evaluate")
        let predictor = try Predictor(model: loaded.model)
        try predictor.checkEvaluable(data)
        if let note = data.classNamesDiffer(from: loaded.classNames, theirs: "the model's") { warn(note) }
        let bar = ProgressBar("evaluate")
        let p = try predictor.predict(data, batchSize: dataOptions.batchSize, progress: { bar.update($0, $1) }, warning: warn)
        bar.finish()
        let r = try predictor.evaluate(p)
        say(String(format: "loss: %.4f - accuracy: %.4f", r.loss, r.accuracy))
    }
}
