// `xfer import CHECKPOINT`: read, validate and summarise a checkpoint; optionally
// re-save it (`--to`, in the format of its extension: .h5, .keras, .weights.h5, .onnx).

import ArgumentParser
import Foundation
import XferKit

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read and validate a Keras checkpoint and print its summary.",
        discussion: """
        Reads Keras 2 .h5 (save_weights, or a full model), Keras 3 .weights.h5 and .keras files, \
        nested models included. Prints the format, a Keras-style table and the Total / Trainable / \
        Non-trainable parameter counts, which equal Keras's.

        Layers read: \(supportedLayerClasses.joined(separator: ", ")), and Sequential / Functional \
        models of them used as layers, in a single chain.
        """
    )

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).", completion: .file())
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions

    @Flag(name: .long, help: "Print one JSON object instead of the table.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("Also write the model, in the format of the extension: .h5 (Keras 2 full model), .keras or .weights.h5 (Keras 3), .onnx.", valueName: "OUT.h5"), completion: .file())
    var to: String?

    func run() throws {
        if let to {
            try checkOutputs([CommandFile("--to", to)], inputs: [CommandFile("CHECKPOINT", checkpoint)]
                                 + (checkpointOptions.config.map { [CommandFile("--config", $0)] } ?? []))
            _ = try ModelFileFormat(outputPath: to, flag: "--to")
        }
        // Without --to the values are only verified (every byte read and checked, in bounded memory).
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions(values: to == nil ? .verify : .load))
        for dataset in loaded.nonFiniteWeights {
            warn("\(checkpoint): \(dataset) holds NaN or infinite values")
        }
        let summary = try ModelSummary(loaded.model)
        if let to {
            try KerasModel(loaded).write(to: to, protecting: [checkpoint] + (checkpointOptions.config.map { [$0] } ?? []),
                                         trainingState: nil, caller: "--to")
        }
        if json {
            print(try summaryJSON(loaded, summary))
        } else {
            say(formatLine(loaded))
            if case .inferredFamily(let what) = loaded.architecture {
                say("Architecture: inferred from layer names and weight shapes (\(what)), input \(loaded.model.inputShape.map(String.init).joined(separator: "×"))")
            } else if loaded.architecture == .inferredVGG {
                say("Architecture: inferred from layer names and weight shapes (VGG-style), input \(loaded.model.inputShape.map(String.init).joined(separator: "×"))")
            } else if case .configFile(let path) = loaded.architecture {
                say("Architecture: from \(path)")
            }
            say(summary.render())
            if let to { say("Wrote \(to)") }
        }
    }
}

func formatLine(_ c: Checkpoint) -> String {
    "Format: \(c.format.rawValue)" + (c.kerasVersion.map { ", Keras \($0)" } ?? "")
}

func summaryJSON(_ c: Checkpoint, _ s: ModelSummary) throws -> String {
    let layers: [[String: Any]] = s.rows.map { r in
        [
            "name": r.name, "type": r.type,
            "output_shape": r.outputShape.map { $0.map { $0 as Any } ?? NSNull() },
            "params": r.params, "trainable_params": r.trainableParams, "non_trainable_params": r.nonTrainableParams,
            "trainable": r.trainable, "parent": r.parent.map { $0 as Any } ?? NSNull(),
        ]
    }
    let object: [String: Any] = [
        "format": c.format.id,
        "keras_version": c.kerasVersion.map { $0 as Any } ?? NSNull(),
        "architecture": c.architecture.isInferred ? "inferred" : "checkpoint",
        "input_shape": c.model.inputShape,
        "total_params": s.totalParams, "trainable_params": s.trainableParams, "non_trainable_params": s.nonTrainableParams,
        "layers": layers,
    ]
    return try jsonText(object)
}

/// `object` as JSON text for `--json`, keys sorted.
func jsonText(_ object: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    // JSONSerialization escapes C0 controls but leaves DEL and C1 raw: escape them too, so the
    // JSON stays valid and no name from the file reaches the terminal as a control code.
    var text = ""
    for u in String(decoding: data, as: UTF8.self).unicodeScalars {
        if u.value == 0x7f || (0x80...0x9f).contains(u.value) {
            text += String(format: "\\u%04x", u.value)
        } else {
            text.unicodeScalars.append(u)
        }
    }
    return text
}
