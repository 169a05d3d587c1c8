// The model files xfer writes, chosen by the output's extension (docs/CONTRACT.md, "Outputs"):
//
//   .h5, .hdf5    Keras 2 full model (KerasH5Writer), what tf_keras.models.load_model opens
//   .keras        Keras 3 archive (Keras3Writer), what keras.models.load_model opens
//   .weights.h5   Keras 3 weights (Keras3Writer), what model.load_weights takes on the same architecture
//   .onnx         ONNX model for inference (ONNXWriter)
//
// `ModelFileFormat(outputPath:)` is checked before any work, so a name xfer cannot write
// (`.tflite`, no extension) is a usage error (exit 2) and never a file of another format under
// that name. `ModelMetadata` is what travels with the model in every format.

import Foundation

/// A model file format xfer writes.
package enum ModelFileFormat: String, Sendable, CaseIterable {
    case kerasH5 = ".h5"
    case keras = ".keras"
    case kerasWeights = ".weights.h5"
    case onnx = ".onnx"

    /// The extensions, as help texts and errors list them.
    package static let extensionList = ".h5, .keras, .weights.h5, .onnx"

    /// The format an output path names by its extension (case-insensitive), nil for any other.
    package init?(path: String) {
        let name = (path as NSString).lastPathComponent.lowercased()
        if name.hasSuffix(".weights.h5") && name.count > ".weights.h5".count { self = .kerasWeights }
        else if (name.hasSuffix(".h5") && name.count > 3) || (name.hasSuffix(".hdf5") && name.count > 5) { self = .kerasH5 }
        else if name.hasSuffix(".keras") && name.count > 6 { self = .keras }
        else if name.hasSuffix(".onnx") && name.count > 5 { self = .onnx }
        else { return nil }
    }

    /// The format `path` names, or a usage error (exit 2) naming `flag` and the formats xfer writes.
    package init(outputPath path: String, flag: String, allowed: [ModelFileFormat] = ModelFileFormat.allCases) throws {
        guard let format = ModelFileFormat(path: path), allowed.contains(format) else {
            let ext = (path as NSString).pathExtension
            let what = ext.isEmpty ? "has no extension naming a model format" : "names a .\(ext) file, which xfer cannot write"
            throw XferError.usage("\(flag) \(path)", what,
                                  hint: "end the name in " + allowed.map(\.rawValue).joined(separator: ", ")
                                      + " (the extension chooses the format)")
        }
        self = format
    }

    /// What the format is, for messages.
    package var description: String {
        switch self {
        case .kerasH5: return "Keras 2 full model (.h5)"
        case .keras: return "Keras 3 model archive (.keras)"
        case .kerasWeights: return "Keras 3 weights (.weights.h5)"
        case .onnx: return "ONNX model (.onnx)"
        }
    }
}

/// What travels with a model besides its architecture and weights.
package struct ModelMetadata: Sendable, Equatable {
    /// The class of each output (the image folder's subfolder names), in output order.
    package var classNames: [String]?
    /// The preprocessing the model's inputs need (`--preprocess`, or the data's default).
    package var preprocess: PreprocessMode?
    /// The loss the model was trained with and the optimizer (written as a `.h5`'s
    /// `training_config`, so Keras's `load_model` compiles the model with them; the loss alone
    /// as `xfer.loss` in a `.keras`'s metadata.json and the root attribute `loss` of a
    /// `.weights.h5`, which Keras ignores and xfer reads back).
    package var loss: LossConfig?
    package var optimizer: OptimizerConfig?
    /// The channels the model's images were decoded to (`--color-mode`).
    package var colorMode: ColorMode?
    /// The (H, W, C) the model's inputs had.
    package var inputShape: [Int]?

    package init(classNames: [String]? = nil, preprocess: PreprocessMode? = nil) {
        self.classNames = classNames; self.preprocess = preprocess
    }

    /// The same with `optimizer` as the one to record.
    package func compiled(with optimizer: OptimizerConfig) -> ModelMetadata {
        var m = self
        m.optimizer = optimizer
        return m
    }

    /// As a JSON object (metadata.json's "xfer" entry).
    var json: [String: Any] {
        var o: [String: Any] = [:]
        if let classNames, !classNames.isEmpty { o["class_names"] = classNames }
        if let preprocess { o["preprocess"] = preprocess.rawValue }
        if let colorMode { o["color_mode"] = colorMode.rawValue }
        if let inputShape { o["input_shape"] = inputShape }
        if let loss { o["loss"] = loss.kerasConfig }
        return o
    }

    /// The root attributes of an HDF5 model file (`.h5`, `.weights.h5`), which Keras ignores:
    /// `class_names`, `preprocess`, `color_mode`, `input_shape` (JSON `[H, W, C]`).
    func writeAttributes(to file: HDF5File) throws {
        if let classNames, !classNames.isEmpty { try file.setStrings("/", "class_names", classNames) }
        if let preprocess { try file.setString("/", "preprocess", preprocess.rawValue, utf8: true) }
        if let colorMode { try file.setString("/", "color_mode", colorMode.rawValue, utf8: true) }
        if let inputShape { try file.setString("/", "input_shape", "[" + inputShape.map(String.init).joined(separator: ", ") + "]", utf8: true) }
    }

    /// What ``writeAttributes(to:)`` wrote (each absent or unreadable value left nil; class
    /// names and the loss are read by the checkpoint reader itself).
    static func recordedInputs(_ file: HDF5File) -> (colorMode: ColorMode?, inputShape: [Int]?) {
        func text(_ name: String) -> String? {
            guard file.hasAttribute("/", name) else { return nil }
            return (try? file.string("/", name)) ?? nil
        }
        return (text("color_mode").flatMap(ColorMode.init(rawValue:)), text("input_shape").flatMap(parseShape))
    }

    /// `[H, W, C]` of three positive whole numbers, else nil.
    static func parseShape(_ json: Any?) -> [Int]? {
        var value = json
        if let text = json as? String { value = try? JSONSerialization.jsonObject(with: Data(text.utf8)) }
        guard let list = value as? [Any], list.count == 3 else { return nil }
        let ints = list.compactMap { ($0 as? NSNumber).flatMap { n -> Int? in
            let d = n.doubleValue
            return d == d.rounded() && d >= 1 && d <= Double(KerasConfigParser.maximumSize) ? Int(d) : nil
        } }
        return ints.count == 3 ? ints : nil
    }
}

/// Writes a model in the format its path names.
package enum ModelWriter {
    /// Writes `model` to `path` in the format of its extension (`ModelFileFormat`), atomically.
    /// `protecting` lists inputs never to overwrite; `trainingState` (for `--resume`) goes into
    /// the Keras formats and is left out of ONNX, which is for inference.
    package static func write(_ model: ModelSpec, to path: String, protecting inputs: [String] = [],
                             metadata: ModelMetadata = .init(), trainingState: TrainingState? = nil) throws {
        try checkFormat(model, path)
        switch try ModelFileFormat(outputPath: path, flag: "output") {
        case .kerasH5:
            try KerasH5Writer.write(model, to: path, protecting: inputs, metadata: metadata, trainingState: trainingState)
        case .keras:
            try Keras3Writer.writeArchive(model, to: path, protecting: inputs, metadata: metadata, trainingState: trainingState)
        case .kerasWeights:
            try Keras3Writer.writeWeights(model, to: path, protecting: inputs, metadata: metadata, trainingState: trainingState)
        case .onnx:
            try ONNXWriter.write(model, to: path, protecting: inputs, metadata: metadata)
        }
    }

    /// Refuses, before any work, a model the format of `path` cannot keep as it is: a full model
    /// for the other Keras whose RandomCrop means something else there (Engine/Layers/RandomCrop.swift).
    /// (A path of no model format is the caller's to refuse.)
    package static func checkFormat(_ model: ModelSpec, _ path: String) throws {
        guard let format = try? ModelFileFormat(outputPath: path, flag: "output") else { return }
        switch format {
        case .kerasH5: try checkCropSemantics(model, writingKeras3: false, path: path)
        case .keras: try checkCropSemantics(model, writingKeras3: true, path: path)
        case .kerasWeights, .onnx: break
        }
    }
}
