// `xfer predict CHECKPOINT PATH... [--data DATA] [--output OUT.csv|OUT.json|OUT.h5] [--top-k K]
// [--threshold T]`: the model run on image files, folders of images (flat or in class
// subfolders, listed recursively in Keras's order) or one HDF5 DATA file; one line per sample,
// by head kind (the checkpoint's loss, else its last activation):
//   softmax      the top class and its probability (--top-k: the K best, each with its own)
//   1 sigmoid    the class (p > threshold, default 0.5: class 1) and the probability of class 1
//   k sigmoids   every label whose probability is above the threshold, each with it
//   regression   the values
// `--output` writes all of it instead, in the format of its extension: CSV (a header, then a
// row per sample: the printed columns, then every output's value), JSON (one object), or HDF5
// (Keras's `predict` array).

import ArgumentParser
import Foundation
import XferKit

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run a checkpoint on images or DATA: print each input's class (or labels, or values), or write them all.",
        discussion: """
        PATH is an image file (JPEG or PNG, told by its bytes), a folder of images (flat or in \
        class subfolders, listed recursively), or an HDF5 file with x (N,H,W,C) (or (N,F), (N,T,F) \
        for a model of vectors or sequences); give as many \
        image files and folders as you like. Each line: the file name, then (tab-separated) the \
        class name and its probability. Example: xfer predict tuned.h5 photos/ --top-k 3
        """)

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).", completion: .file())
    var checkpoint: String

    @Argument(help: ArgumentHelp("Image files, folders of images, or one HDF5 DATA file.", valueName: "PATH"), completion: .file())
    var paths: [String] = []

    @Option(name: .long, help: ArgumentHelp("The same as a PATH: an image file or folder, or an HDF5 file with x (N,H,W,C), or (N,F) or (N,T,F) for a model of vectors or sequences.", valueName: "DATA"),
            completion: .file())
    var data: String?

    @OptionGroup var checkpointOptions: CheckpointOptions
    @OptionGroup var read: ReadOptions

    @Option(name: .long, help: ArgumentHelp("Write the predictions, in the format of the extension: .csv (a row per file), .json, or .h5 (dataset `predictions`, (N, outputs) float32).", valueName: "OUT.csv"),
            completion: .file(extensions: ["csv", "json", "h5"]))
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

    /// Every PATH, `--data` first.
    var allPaths: [String] { (data.map { [$0] } ?? []) + paths }

    var inputs: [CommandFile] {
        [CommandFile("CHECKPOINT", checkpoint)] + (data.map { [CommandFile("--data", $0)] } ?? [])
            + paths.map { CommandFile("PATH", $0) }
            + (checkpointOptions.config.map { [CommandFile("--config", $0)] } ?? [])
    }

    enum OutputFormat { case csv, json, hdf5 }

    /// The format `--output` names by its extension.
    static func outputFormat(_ path: String) throws -> OutputFormat {
        switch (path as NSString).pathExtension.lowercased() {
        case "csv": return .csv
        case "json": return .json
        case "h5", "hdf5": return .hdf5
        case let ext:
            throw XferError.usage("--output \(path)", ext.isEmpty ? "has no extension naming a format" : "names a .\(ext) file, which predict does not write",
                                  hint: "end the name in .csv, .json or .h5 (the extension chooses the format)")
        }
    }

    func run() throws {
        guard !allPaths.isEmpty else {
            throw XferError.usage("PATH", "no images to predict on",
                                  hint: "give image files, folders of images or an HDF5 DATA file, e.g. xfer predict model.h5 photos/")
        }
        if let output { try checkOutputs([CommandFile("--output", output)], inputs: inputs) }
        let format = try output.map(Self.outputFormat)
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        let data = try openInputs(for: loaded)
        let predictor = try KerasModel(loaded).withLoss(try loss.map(LossConfig.parse)).predictor()
        let kind = predictor.lossConfig.kind
        if topK != nil, !kind.isCategorical || predictor.outputCount < 2 {
            let n = predictor.outputCount
            throw XferError.usage("--top-k", "applies to a softmax head, and this model's loss is \(kind.shortName) on \(n) output\(n == 1 ? "" : "s")")
        }
        try data.checkFits(inputShape: loaded.model.inputShape)
        if let line = read.inputLine(for: loaded, data: data) { note(line) }
        let bar = ProgressBar("predict")
        let p = try predictor.predict(data, batchSize: read.batchSize, progress: { bar.update($0, $1) }, warning: warn)
        bar.finish()
        let names = loaded.classNames ?? data.classNames
        let rows = predictionRows(p, kind: kind, names: names, data: data)
        switch format {
        case nil:
            for row in rows { say(([row.file] + row.cells).joined(separator: "\t")) }
        case .csv?:
            try writeAtomically(output!, protecting: inputs.map(\.path), contents: Data(csvText(rows, kind: kind, names: names, outputs: p.probabilities.shape[1]).utf8))
            say("Wrote \(rows.count) predictions to \(output!)")
        case .json?:
            try writeAtomically(output!, protecting: inputs.map(\.path), contents: Data((try jsonText(jsonObject(rows, kind: kind, names: names)) + "\n").utf8))
            say("Wrote \(rows.count) predictions to \(output!)")
        case .hdf5?:
            try writeAtomically(output!, protecting: inputs.map(\.path), create: HDF5File.create) { f in
                // As Keras's predict shapes them: (N, classes), or (N, 1, 1, 512) for a headless base.
                let shape = p.sampleShape.isEmpty ? p.kerasOutputs.shape : [p.indices.count] + p.sampleShape
                try f.write("/predictions", shape: shape, floats: p.kerasOutputs.values)
                try f.write("/indices", shape: [p.indices.count], int64s: p.indices.map { Int64($0) })
                if let names { try f.setStrings("/", "class_names", names) }
                try f.flush()
            }
            say("Wrote \(p.indices.count) predictions to \(output!)")
        }
    }

    /// One HDF5 DATA file alone, or image files and folders (with the model's preprocessing and
    /// color mode, said on stderr).
    func openInputs(for loaded: Checkpoint) throws -> DataSource {
        let all = allPaths
        let arrays = all.filter(Self.isHDF5)
        if !arrays.isEmpty {
            guard all.count == 1 else {
                throw XferError.usage("PATH \(arrays[0])", "is an HDF5 DATA file, which predict reads alone, and \(all.count) paths were given",
                                      hint: "predict on the HDF5 file and the images in separate runs")
            }
            return try read.open(all[0], for: loaded)
        }
        Convolution.path = read.conv
        let s = try read.settings(for: loaded)
        return try DataSource(images: all, preprocess: s.preprocess, colorMode: s.colorMode, warning: warn)
    }

    /// A regular file that is HDF5 by its signature or its name; anything else is taken for an image.
    static func isHDF5(_ path: String) -> Bool {
        guard !isFolder(path), FileManager.default.fileExists(atPath: path) else { return false }
        let lower = path.lowercased()
        if lower.hasSuffix(".h5") || lower.hasSuffix(".hdf5") || lower.hasSuffix(".he5") { return true }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let head = (try? h.read(upToCount: 8)) ?? Data()
        return head == Data([0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A])
    }

    /// One sample's prediction: its name, the printed cells, and its outputs.
    struct Row {
        var file: String
        var cells: [String]
        /// (class, probability) as printed: the top K, the binary class, or the labels above the threshold.
        var picks: [(name: String, p: Float)]
        var outputs: [Float]
    }

    func predictionRows(_ p: Predictions, kind: LossKind, names: [String]?, data: DataSource) -> [Row] {
        let classes = p.probabilities.shape[1]
        func name(_ c: Int) -> String { names.flatMap { c < $0.count ? $0[c] : nil } ?? String(c) }
        return p.indices.enumerated().map { row, index in
            let probs = Array(p.probabilities.values[(row * classes)..<((row + 1) * classes)])
            var picks: [(name: String, p: Float)] = []
            var cells: [String]
            if kind.isRegression {
                cells = probs.map { String(format: "%.6g", Double($0)) }
            } else if kind == .binaryCrossentropy && classes == 1 {
                picks = [(name(probs[0] > threshold ? 1 : 0), probs[0])]
                cells = [picks[0].name, fmt(probs[0])]
            } else if kind == .binaryCrossentropy {
                picks = probs.indices.filter { probs[$0] > threshold }.map { (name($0), probs[$0]) }
                cells = picks.isEmpty ? ["-"] : picks.map { "\($0.name):\(fmt($0.p))" }
            } else {
                // The first of equal probabilities first, as argmax.
                let order = probs.indices.sorted { probs[$0] != probs[$1] ? probs[$0] > probs[$1] : $0 < $1 }
                picks = order.prefix(min(topK ?? 1, classes)).map { (name($0), probs[$0]) }
                cells = picks.flatMap { [$0.name, fmt($0.p)] }
            }
            return Row(file: data.sampleName(index), cells: cells, picks: picks, outputs: probs)
        }
    }

    func fmt(_ v: Float) -> String { String(format: "%.4f", Double(v)) }

    /// The column name of each output: its class or label name, else `output_i`.
    func outputNames(_ names: [String]?, _ count: Int) -> [String] {
        (0..<count).map { i in names.flatMap { i < $0.count ? $0[i] : nil } ?? "output_\(i)" }
    }

    /// CSV (RFC 4180): `file` and the printed columns, then one column per output.
    func csvText(_ rows: [Row], kind: LossKind, names: [String]?, outputs: Int) -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let outputColumns = outputNames(names, outputs)
        var header = ["file"]
        let k = kind.isCategorical ? min(topK ?? 1, outputs) : 1
        if kind.isRegression {
            header += outputColumns
        } else if kind == .binaryCrossentropy && outputs > 1 {
            header += ["labels"] + outputColumns
        } else if k > 1 {
            header += (1...k).flatMap { ["class_\($0)", "probability_\($0)"] } + outputColumns
        } else {
            header += ["class", "probability"] + (kind == .binaryCrossentropy ? [] : outputColumns)
        }
        var lines = [header.map(field).joined(separator: ",")]
        for row in rows {
            var cells = [row.file]
            if kind.isRegression {
                cells += row.outputs.map { String(format: "%.6g", Double($0)) }
            } else if kind == .binaryCrossentropy && outputs > 1 {
                cells += [row.picks.map(\.name).joined(separator: " ")] + row.outputs.map(fmtFull)
            } else {
                cells += row.picks.flatMap { [$0.name, fmtFull($0.p)] } + (kind == .binaryCrossentropy ? [] : row.outputs.map(fmtFull))
            }
            lines.append(cells.map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Files keep every digit a float32 has.
    func fmtFull(_ v: Float) -> String { "\(v)" }

    /// `{"class_names": [...], "predictions": [{"file", "class", "probability", ["top_k"], "outputs"}]}`.
    func jsonObject(_ rows: [Row], kind: LossKind, names: [String]?) -> [String: Any] {
        let head: String = kind.isRegression ? "regression"
            : kind == .binaryCrossentropy ? ((rows.first?.outputs.count ?? 1) == 1 ? "binary" : "multi_label") : "softmax"
        let list: [[String: Any]] = rows.map { row in
            var o: [String: Any] = ["file": row.file, "outputs": row.outputs.map { Double($0) }]
            switch head {
            case "softmax", "binary":
                if let top = row.picks.first { o["class"] = top.name; o["probability"] = Double(top.p) }
                if topK != nil { o["top_k"] = row.picks.map { ["class": $0.name, "probability": Double($0.p)] as [String: Any] } }
            case "multi_label":
                o["labels"] = row.picks.map { ["label": $0.name, "probability": Double($0.p)] as [String: Any] }
            default: break
            }
            return o
        }
        return ["head": head, "class_names": names ?? NSNull(), "predictions": list]
    }
}
