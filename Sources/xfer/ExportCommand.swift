// `xfer export MODEL --to OUT`: write a checkpoint in a format people deploy. The format is the
// extension's (Checkpoint/ModelOutput.swift): .onnx for ONNX runtimes, .keras / .weights.h5 for
// Keras 3, .h5 for Keras 2.

import ArgumentParser
import Foundation
import XferKit

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as ONNX (.onnx), Keras 3 (.keras, .weights.h5) or Keras 2 (.h5).",
        discussion: """
        The format is chosen by the extension of --to. ONNX: opset \(ONNXWriter.opset), the whole model in \
        inference mode, input `input` float32 (batch, H, W, C) as the Keras model takes it, output `output`; \
        the class names and the preprocessing are in the model's metadata (class_names, preprocess). \
        A layer ONNX export cannot map is an error naming it (exit 3).
        """)

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).", completion: .file())
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions

    @Option(name: .long, help: ArgumentHelp("The file to write; its extension chooses the format: \(ModelFileFormat.extensionList).", valueName: "OUT.onnx"), completion: .file())
    var to: String

    @Option(name: .long, help: "Record this preprocessing in the output's metadata (default: what the checkpoint records).")
    var preprocess: PreprocessMode?

    func run() throws {
        let inputs = [CommandFile("CHECKPOINT", checkpoint)] + (checkpointOptions.config.map { [CommandFile("--config", $0)] } ?? [])
        try checkOutputs([CommandFile("--to", to)], inputs: inputs)
        _ = try ModelFileFormat(outputPath: to, flag: "--to")
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        for dataset in loaded.nonFiniteWeights {
            warn("\(checkpoint): \(dataset) holds NaN or infinite values")
        }
        var model = KerasModel(loaded)
        model.preprocess = preprocess ?? loaded.preprocess
        try model.write(to: to, protecting: inputs.map(\.path), trainingState: nil, caller: "--to")
        say("Wrote \(to) (\(ModelFileFormat(path: to)!.description))")
    }
}
