// Reading a Keras checkpoint of any kind a user has into a `ModelSpec` with its weights.
//
//   Keras 2 `save_weights("x.h5")`   root attrs layer_names/weight_names (docs/KERAS-FORMATS.md A.1)
//   Keras 2/3 `model.save("x.h5")`   root attr model_config + group model_weights (A.2)
//   Keras 3 `save_weights("x.weights.h5")`  groups layers/<snake_case>/vars/<i> (A.3.1)
//   Keras 3 `model.save("x.keras")`  zip of metadata.json, config.json, model.weights.h5 (A.3.2)
//
// The architecture comes from the file's own configuration, from `--config`, or, for a
// weights-only file, is inferred from layer names and weight shapes: a keras.applications family
// (FamilyInference.swift), a transfer model around one, or a VGG-style network.

import Foundation
import ZIPFoundation

/// The kinds of checkpoint xfer reads.
package enum CheckpointFormat: String, Sendable, Codable {
    case keras2Weights = "Keras 2 weights-only HDF5 (save_weights .h5)"
    case keras2Model = "Keras 2 full model HDF5 (.h5)"
    case keras3LegacyModel = "Keras 3 full model HDF5 (legacy .h5)"
    case keras3Weights = "Keras 3 weights (.weights.h5)"
    case keras3Archive = "Keras 3 model archive (.keras)"

    /// Short identifier used in `--json`.
    package var id: String {
        switch self {
        case .keras2Weights: return "keras2-weights-h5"
        case .keras2Model: return "keras2-model-h5"
        case .keras3LegacyModel: return "keras3-model-h5"
        case .keras3Weights: return "keras3-weights-h5"
        case .keras3Archive: return "keras3-keras"
        }
    }
}

/// Where the architecture of a loaded checkpoint came from.
package enum ArchitectureSource: Sendable, Equatable {
    case checkpoint
    case configFile(String)
    case inferredVGG
    /// A keras.applications family (or a transfer model around one), as described.
    case inferredFamily(String)

    /// Inferred from the weights rather than read from a configuration.
    package var isInferred: Bool {
        switch self {
        case .inferredVGG, .inferredFamily: return true
        case .checkpoint, .configFile: return false
        }
    }
}

/// Options for reading a checkpoint (the CLI's `--input-shape` and `--config`).
package struct CheckpointLoadOptions: Sendable {
    /// (H, W, C). For inferred architectures the default is 224×224×3.
    package var inputShape: [Int]?
    /// A Keras model JSON (`model.to_json()`) or another checkpoint that carries a configuration.
    package var configPath: String?
    /// What to do with the weight values.
    package var values: WeightValues
    /// Told, in one line, which architecture was inferred for a weights-only file (the CLI prints
    /// it on stderr).
    package var notify: (@Sendable (String) -> Void)?

    package init(inputShape: [Int]? = nil, configPath: String? = nil, values: WeightValues = .load,
                 notify: (@Sendable (String) -> Void)? = nil) {
        self.inputShape = inputShape; self.configPath = configPath; self.values = values; self.notify = notify
    }
}

/// How a checkpoint's weight values are read.
package enum WeightValues: Sendable {
    /// Into memory, for running or writing the model.
    case load
    /// Every byte read through a small buffer and checked (readable, finite), then dropped:
    /// a full validation in bounded memory, at the speed of reading the file.
    case verify
    /// Shapes only.
    case skip
}

/// A Keras checkpoint, read and validated.
package struct Checkpoint: Sendable {
    package var path: String
    package var format: CheckpointFormat
    /// The Keras version the file records (`keras_version`), if any.
    package var kerasVersion: String?
    package var architecture: ArchitectureSource
    /// The model, weights included (values empty unless read with `.load`).
    package var model: ModelSpec
    /// Datasets holding NaN or infinite values (with `.load` or `.verify`).
    package var nonFiniteWeights: [String] = []
    /// Class names stored by `xfer finetune` (root attribute `class_names` of an .h5 or
    /// .weights.h5, `xfer.class_names` in a .keras archive's metadata.json; ignored by Keras).
    package var classNames: [String]?
    /// The preprocessing recorded with the model (`preprocess`, stored beside the class names).
    package var preprocess: PreprocessMode?
    /// The color mode recorded with the model (`color_mode`), and its input size (`input_shape`).
    package var colorMode: ColorMode?
    package var recordedInputShape: [Int]?
    /// The loss the model was compiled with (`training_config` of a full-model .h5,
    /// `compile_config` of a .keras archive, else the loss xfer records beside its outputs), when
    /// it is one xfer knows.
    package var compiledLoss: LossConfig?
    /// Where ``compiledLoss`` was found: `training_config`, `compile_config`, or `recorded loss` (xfer's own record).
    package var compiledLossSource: String?

    /// What the checkpoint records for its inputs and outputs, to carry into a file written from
    /// it: class names, preprocessing, color mode, input size.
    package var recordedMetadata: ModelMetadata {
        var m = ModelMetadata(classNames: classNames, preprocess: preprocess)
        m.colorMode = colorMode
        // The size the model was read at (an open-size model's --input-shape included).
        let shape = model.inputShape
        m.inputShape = recordedInputShape ?? (shape.count == 3 && shape.allSatisfy { $0 > 0 } ? shape : nil)
        return m
    }

    /// Reads and validates the checkpoint at `path`.
    package static func load(_ path: String, options: CheckpointLoadOptions = .init()) throws -> Checkpoint {
        do {
            var checkpoint = try CheckpointReader(path: path, options: options).read()
            // The version travels with the model, so what trains it needs nothing else.
            checkpoint.model.kerasVersion = checkpoint.kerasVersion
            return checkpoint
        } catch let e as XferError where e.kind == .badInput && !e.subject.hasPrefix("-") && !e.subject.hasPrefix(path)
                    && !(options.configPath.map { e.subject.hasPrefix($0) } ?? false) {
            // A layer found wanting (its subject is the layer): the line names the file first.
            throw XferError(e.kind, path, e.subject.isEmpty ? e.message : "layer '\(e.subject)': \(e.message)", hint: e.hint)
        }
    }
}

struct CheckpointReader {
    let path: String
    let options: CheckpointLoadOptions

    func read() throws -> Checkpoint {
        try HDF5File.checkRegularFile(path, what: "checkpoint file", hint: "give the checkpoint file itself (.h5, .weights.h5 or .keras)")
        if try isZip(path) { return try readArchive() }
        let file = try HDF5File.open(path)
        // The input size xfer records stands in for --input-shape (a .weights.h5 read with an
        // open-size --config needs it).
        if options.inputShape == nil, let shape = ModelMetadata.recordedInputs(file).inputShape {
            var withShape = options
            withShape.inputShape = shape
            return try CheckpointReader(path: path, options: withShape).read()
        }
        if file.hasAttribute("/", "model_config") {
            let version = try file.string("/", "keras_version")
            let format: CheckpointFormat = (version?.hasPrefix("3") ?? false) ? .keras3LegacyModel : .keras2Model
            let json = try file.string("/", "model_config") ?? ""
            var (model, source) = try architecture(own: parseKerasModelConfig(Data(json.utf8), source: path, kerasVersion: version))
            let root = file.exists("/model_weights") ? "/model_weights" : "/"
            let reader = LegacyWeightReader(file: file, root: root, values: options.values)
            try reader.assign(to: &model)
            var c = Checkpoint(path: path, format: format, kerasVersion: version, architecture: source, model: model,
                               nonFiniteWeights: reader.nonFinite.paths, classNames: try file.strings("/", "class_names"),
                               preprocess: recordedPreprocess(file))
            (c.colorMode, c.recordedInputShape) = ModelMetadata.recordedInputs(file)
            // A training_config that cannot be read only loses the default loss.
            if let text = try? file.string("/", "training_config"),
               let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] {
                c.compiledLoss = LossConfig.fromKeras(json["loss"])
                c.compiledLossSource = "training_config"
            }
            return c
        }
        if file.hasAttribute("/", "layer_names") || file.hasAttribute("/", "layer_names0") {
            let version = try file.string("/", "keras_version")
            var (model, source) = try architecture(own: nil) {
                try inferFamily(WeightsOnlyLayout.legacy(file), from: "layer names and weight shapes") {
                    try inferVGG(names: try legacyLayerNames(file), shapes: { try legacyShapes(file, layer: $0) })
                }
            }
            let reader = LegacyWeightReader(file: file, root: "/", values: options.values)
            try reader.assign(to: &model)
            return Checkpoint(path: path, format: .keras2Weights, kerasVersion: version, architecture: source, model: model,
                              nonFiniteWeights: reader.nonFinite.paths)
        }
        if file.kind("/layers") == .group || file.kind("/_layer_checkpoint_dependencies") == .group {
            var (model, source) = try architecture(own: nil) {
                try inferFamily(WeightsOnlyLayout.keras3(file), from: "layer paths and weight shapes") {
                    let (names, shapes) = try keras3NamedLayers(file)
                    return try inferVGG(names: names, shapes: { shapes[$0] ?? [] })
                }
            }
            let reader = Keras3WeightReader(file: file, values: options.values)
            try reader.assign(to: &model)
            var c = Checkpoint(path: path, format: .keras3Weights, kerasVersion: nil, architecture: source, model: model,
                               nonFiniteWeights: reader.nonFinite.paths, classNames: try file.strings("/", "class_names"),
                               preprocess: recordedPreprocess(file))
            (c.colorMode, c.recordedInputShape) = ModelMetadata.recordedInputs(file)
            // The loss xfer records there (Keras3Writer); Keras ignores it.
            if let text = try? file.string("/", "loss") {
                c.compiledLoss = LossConfig.fromKeras(try? JSONSerialization.jsonObject(with: Data(text.utf8)))
                c.compiledLossSource = "recorded loss"
            }
            return c
        }
        throw XferError.badInput(path, "is an HDF5 file but not a Keras checkpoint (no model_config, layer_names or layers/ group)",
                                 hint: "give a file written by Keras: model.save(...) or model.save_weights(...)")
    }

    /// The architecture to use: `--config` wins, then the file's own, then inference.
    private func architecture(own: ModelSpec?, infer: (() throws -> Inferred)? = nil) throws -> (ModelSpec, ArchitectureSource) {
        var model: ModelSpec
        var source: ArchitectureSource
        var defaultInput = [224, 224, 3]
        var said: String?
        if let configPath = options.configPath {
            model = try loadConfig(configPath); source = .configFile(configPath)
        } else if let own {
            model = own; source = .checkpoint
        } else if let infer {
            let inferred = try infer()
            (model, source, defaultInput, said) = (inferred.model, inferred.source, inferred.defaultInput, inferred.said)
        } else {
            throw XferError.badInput(path, "carries no architecture", hint: "give --config MODEL.json")
        }
        if let shape = options.inputShape {
            let recorded = model.inputShape
            if !source.isInferred, recorded.contains(where: { $0 < 0 }) {
                // Fill in the sizes the model leaves open; the ones it fixes must stay.
                guard recorded.count == shape.count, !zip(recorded, shape).contains(where: { $0 >= 0 && $0 != $1 }) else {
                    throw XferError.badInput(path, "--input-shape \(shapeText(shape)) does not fit the model's input \(shapeText(recorded))",
                                             hint: "give the sizes the model leaves open (None) and keep the ones it fixes")
                }
            }
            model = source.isInferred ? FamilyInference.withInputShape(model, shape) : model
            model.inputShape = shape
        } else if source.isInferred {
            model = FamilyInference.withInputShape(model, defaultInput)
        } else if model.inputShape.contains(where: { $0 < 0 }) {
            throw XferError.badInput(path, "the model's input \(shapeText(model.inputShape)) leaves its size open (None)",
                                     hint: "give --input-shape H,W,C")
        }
        try model.checkFitsInMemory(source: path)
        if let said {
            options.notify?("\(path): inferred \(said), input \(model.inputShape.map(String.init).joined(separator: "×")); --config to give the architecture")
        }
        return (model, source)
    }

    /// An architecture inferred from a weights-only file, and what to say about it.
    struct Inferred {
        var model: ModelSpec
        var source: ArchitectureSource
        var defaultInput = [224, 224, 3]
        var said: String?
    }

    /// A keras.applications family (or a transfer model around one) that the file's weights fit
    /// exactly; else a VGG-style network (`vgg`); else the error names the closest family.
    private func inferFamily(_ layout: @autoclosure () throws -> WeightsOnlyLayout, from what: String,
                             vgg: () throws -> ModelSpec) throws -> Inferred {
        let (found, closest) = try FamilyInference.infer(try layout(), source: path)
        if let found {
            return Inferred(model: found.model, source: .inferredFamily(found.description), defaultInput: found.defaultInput,
                            said: "\(found.description) from \(what)" + (found.assumed.map { " (\($0))" } ?? ""))
        }
        do {
            let model = try vgg()
            return Inferred(model: model, source: .inferredVGG,
                            said: "a VGG-style network (\(model.layers.filter { $0.kind.op is Conv2DConfig }.count) convolutions) from \(what)")
        } catch let e as XferError where e.kind == .badInput && (closest != nil || !e.message.contains("VGG convolution") && !e.message.contains("VGG dense")) {
            // Not a VGG-style file either (a damaged VGG-style one keeps its own message).
            throw XferError.badInput(path, "weights only, and its layers fit no keras.applications architecture xfer knows\(closest.map { " (\($0))" } ?? "") nor a VGG-style one",
                                     hint: "give --config MODEL.json (model.to_json()) or a checkpoint that carries the architecture")
        }
    }

    /// `--config FILE`: a model JSON, or a checkpoint that carries one.
    private func loadConfig(_ configPath: String) throws -> ModelSpec {
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw XferError.usage("--config", "\(configPath): no such file")
        }
        try HDF5File.checkRegularFile(configPath, what: "model configuration", hint: "--config takes model.to_json() output, a full-model .h5 or a .keras file")
        if try isZip(configPath) {
            return try CheckpointReader(path: configPath, options: .init(values: .skip)).archiveConfig()
        }
        if let data = try? readBounded(configPath, limit: Self.configLimit), data.first == UInt8(ascii: "{") {
            return try parseKerasModelConfig(data, source: configPath)
        }
        let file = try HDF5File.open(configPath)
        guard let json = try file.string("/", "model_config") else {
            throw XferError.badInput(configPath, "carries no model configuration",
                                     hint: "--config takes model.to_json() output, a full-model .h5 or a .keras file")
        }
        return try parseKerasModelConfig(Data(json.utf8), source: configPath)
    }

    // MARK: .keras

    private func openArchive() throws -> Archive {
        do {
            return try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
        } catch {
            throw XferError.badInput(path, "is not a readable .keras archive (zip): \(error)",
                                     hint: "the file is damaged or truncated; save the model again")
        }
    }

    /// The most a model configuration (config.json, metadata.json, a model JSON) may take: the
    /// largest keras.applications configs are a few MB.
    static let configLimit = 64 << 20

    /// The most `model.weights.h5` may inflate to for `model`: its weights, room for optimizer
    /// state (Adam keeps two more copies) and HDF5's own structure. The archive's declared sizes
    /// are not trusted: the bytes are counted as they inflate.
    func weightsLimit(for model: ModelSpec) -> Int {
        let values = (try? model.checkFitsInMemory(source: path)) ?? 0
        return values.multipliedReportingOverflow(by: 4 * 4).partialValue.addingReportingOverflow(64 << 20).partialValue
    }

    private struct TooLarge: Error {}

    private func entry(_ archive: Archive, _ name: String, limit: Int = Self.configLimit) throws -> Data {
        guard let e = archive[name] else {
            throw XferError.badInput(path, "the .keras archive has no \(name)", hint: "save the model again with model.save(\"x.keras\")")
        }
        var data = Data()
        do {
            let crc = try archive.extract(e, skipCRC32: false, consumer: {
                guard data.count + $0.count <= limit else { throw TooLarge() }
                data.append($0)
            })
            // ZIPFoundation computes the checksum but leaves the comparison to the caller.
            // Deflate cannot inflate past about 1032 bytes per compressed byte: a smaller recorded
            // compressed size is a damaged record (Python's zipfile, so Keras, reads only that many).
            let inflatable = e.compressedSize.multipliedReportingOverflow(by: 1032).partialValue &+ 64
            // A stored member's two sizes are one.
            let sizesAgree = e.isCompressed ? UInt64(data.count) <= max(inflatable, e.compressedSize) : e.compressedSize == e.uncompressedSize
            guard crc == e.checksum, UInt64(data.count) == e.uncompressedSize, sizesAgree else {
                throw XferError.badInput(path, "\(name) inside the archive is damaged (its \(crc == e.checksum ? "size" : "checksum") does not match the archive's record)",
                                         hint: "the file is damaged or truncated; save the model again")
            }
        } catch let e as XferError {
            throw e
        } catch is TooLarge {
            let bound = name == "model.weights.h5" ? "the \(limit >> 20) MiB this model's weights can need" : "\(limit >> 20) MiB, more than any Keras configuration"
            throw XferError.badInput(path, "\(name) inside the archive inflates past \(bound)",
                                     hint: "the archive is damaged or crafted (a zip bomb); save the model again")
        } catch {
            throw XferError.badInput(path, "\(name) inside the archive is damaged (\(error))",
                                     hint: "the file is damaged or truncated; save the model again")
        }
        return data
    }

    func archiveConfig() throws -> ModelSpec {
        let archive = try openArchive()
        return try parseKerasModelConfig(try entry(archive, "config.json"), source: "\(path): config.json")
    }

    private func readArchive() throws -> Checkpoint {
        let archive = try openArchive()
        var version: String?
        var classNames: [String]?
        var preprocess: PreprocessMode?
        var recordedLoss: LossConfig?
        var colorMode: ColorMode?
        var inputShape: [Int]?
        if archive["metadata.json"] != nil,
           let meta = try? JSONSerialization.jsonObject(with: try entry(archive, "metadata.json")) as? [String: Any] {
            version = meta["keras_version"] as? String
            // What xfer records beside Keras's keys (Keras3Writer).
            let own = meta["xfer"] as? [String: Any]
            classNames = own?["class_names"] as? [String]
            preprocess = (own?["preprocess"] as? String).flatMap(PreprocessMode.init(rawValue:))
            recordedLoss = LossConfig.fromKeras(own?["loss"])
            colorMode = (own?["color_mode"] as? String).flatMap(ColorMode.init(rawValue:))
            inputShape = ModelMetadata.parseShape(own?["input_shape"])
        }
        let own = try parseKerasModelConfig(try entry(archive, "config.json"), source: "\(path): config.json", kerasVersion: version)
        var (model, source) = try architecture(own: own)
        let weights = try HDF5File.open(image: try entry(archive, "model.weights.h5", limit: weightsLimit(for: model)),
                                        path: "\(path): model.weights.h5")
        let reader = Keras3WeightReader(file: weights, values: options.values)
        try explainingUncroppedCrop(model) { try reader.assign(to: &model) }
        var c = Checkpoint(path: path, format: .keras3Archive, kerasVersion: version, architecture: source, model: model,
                           nonFiniteWeights: reader.nonFinite.paths, classNames: classNames, preprocess: preprocess)
        c.colorMode = colorMode
        c.recordedInputShape = inputShape
        // Keras's compile_config, else the loss xfer records in metadata.json.
        c.compiledLoss = recordedLoss
        c.compiledLossSource = "recorded loss"
        if let json = try? JSONSerialization.jsonObject(with: try entry(archive, "config.json")) as? [String: Any],
           let compile = json["compile_config"] as? [String: Any], let loss = LossConfig.fromKeras(compile["loss"]) {
            c.compiledLoss = loss
            c.compiledLossSource = "compile_config"
        }
        return c
    }

    /// The root attribute `preprocess` xfer writes, when it names a mode.
    private func recordedPreprocess(_ file: HDF5File) -> PreprocessMode? {
        guard file.hasAttribute("/", "preprocess") else { return nil }
        return ((try? file.string("/", "preprocess")) ?? nil).flatMap(PreprocessMode.init(rawValue:))
    }

    /// The `model.weights.h5` of the `.keras` archive at `path`, in memory (for the training
    /// state a `.keras` written by `xfer finetune` keeps there).
    func archiveWeights() throws -> HDF5File {
        let archive = try openArchive()
        let model = try parseKerasModelConfig(try entry(archive, "config.json"), source: "\(path): config.json")
        return try HDF5File.open(image: try entry(archive, "model.weights.h5", limit: weightsLimit(for: model)),
                                 path: "\(path): model.weights.h5")
    }

    // MARK: Names for inference

    private func legacyLayerNames(_ file: HDF5File) throws -> [String] {
        try file.strings("/", "layer_names") ?? []
    }

    private func legacyShapes(_ file: HDF5File, layer: String) throws -> [[Int]] {
        let group = "/" + layer
        guard let names = try file.strings(group, "weight_names") else { return [] }
        return try names.map { try file.shape(group + "/" + $0) }
    }

    /// Keras 3 `.weights.h5` keeps layer names only in the `name` attribute of each `vars` group
    /// (Keras ≥ 3.6); the file order is alphabetical, so names are returned as found and the
    /// VGG inference orders them.
    private func keras3NamedLayers(_ file: HDF5File) throws -> ([String], [String: [[Int]]]) {
        var names: [String] = []
        var shapes: [String: [[Int]]] = [:]
        for child in try file.children("/layers") {
            let vars = "/layers/\(child)/vars"
            guard file.kind(vars) == .group, let name = try file.string(vars, "name") else {
                if file.kind("/layers/\(child)/layers") == .group {
                    throw XferError.badInput(path, "holds a nested model; its architecture cannot be inferred",
                                             hint: "give --config with the model's JSON or a .keras file of it")
                }
                throw XferError.badInput(path, "does not record layer names (tf-keras and Keras before 3.6 do not write them)",
                                         hint: "give --config with the model's JSON or a .keras file of it")
            }
            names.append(name)
            let keys = try file.children(vars).sorted { (Int($0) ?? 0) < (Int($1) ?? 0) }
            shapes[name] = try keys.map { try file.shape("\(vars)/\($0)") }
        }
        return (orderVGG(names), shapes)
    }

    // MARK: VGG inference

    /// VGG order: blocks by number, convolutions by number then the block's pool, then the top.
    private func orderVGG(_ names: [String]) -> [String] {
        func key(_ n: String) -> (Int, Int, Int) {
            let top = ["input", "flatten", "global_average_pooling2d", "global_max_pooling2d", "fc1", "fc2", "predictions"]
            if n.hasPrefix("input") { return (0, 0, 0) }
            if let m = n.wholeMatch(of: #/block(\d+)_conv(\d+)/#) { return (1, Int(m.1)! * 1000 + Int(m.2)!, 0) }
            if let m = n.wholeMatch(of: #/block(\d+)_pool/#) { return (1, Int(m.1)! * 1000 + 999, 0) }
            return (2, top.firstIndex(of: n) ?? 99, 0)
        }
        return names.sorted { key($0) < key($1) }
    }

    private func inferVGG(names: [String], shapes: (String) throws -> [[Int]]) throws -> ModelSpec {
        var layers: [LayerSpec] = []
        var convs = 0
        for name in names {
            let kind: LayerKind
            let className: String
            if name.hasPrefix("input") {
                kind = .input; className = "InputLayer"
            } else if name.wholeMatch(of: #/block\d+_conv\d+/#) != nil {
                let s = try shapes(name)
                guard let k = s.first, k.count == 4, k.allSatisfy({ (1...KerasConfigParser.maximumSize).contains($0) }) else {
                    throw XferError.badInput(path, "layer '\(name)' has no 4-D kernel, so it is not a VGG convolution",
                                             hint: "give --config with the model's JSON")
                }
                kind = .conv2D(Conv2DConfig(filters: k[3], kernelSize: (k[0], k[1]), padding: .same,
                                            useBias: s.count > 1, activation: .relu))
                className = "Conv2D"; convs += 1
            } else if name.wholeMatch(of: #/block\d+_pool/#) != nil {
                kind = .maxPooling2D(Pool2DConfig()); className = "MaxPooling2D"
            } else if name == "flatten" {
                kind = .flatten; className = "Flatten"
            } else if name == "global_average_pooling2d" || name == "avg_pool" {
                kind = .globalAveragePooling2D(keepdims: false); className = "GlobalAveragePooling2D"
            } else if name == "global_max_pooling2d" || name == "max_pool" {
                kind = .globalMaxPooling2D(keepdims: false); className = "GlobalMaxPooling2D"
            } else if name == "fc1" || name == "fc2" || name == "predictions" {
                let s = try shapes(name)
                guard let k = s.first, k.count == 2, k.allSatisfy({ (1...KerasConfigParser.maximumSize).contains($0) }) else {
                    throw XferError.badInput(path, "layer '\(name)' has no 2-D kernel, so it is not a VGG dense layer",
                                             hint: "give --config with the model's JSON")
                }
                kind = .dense(DenseConfig(units: k[1], useBias: s.count > 1, activation: name == "predictions" ? .softmax : .relu))
                className = "Dense"
            } else {
                throw XferError.badInput(path, "weights only, and layer '\(name)' is not a VGG-style name, so the architecture cannot be inferred",
                                         hint: "give --config MODEL.json (model.to_json()) or a checkpoint that carries the architecture")
            }
            layers.append(LayerSpec(name: name, className: className, kind: kind))
        }
        guard convs > 0 else {
            throw XferError.badInput(path, "weights only, with no VGG-style layers to infer an architecture from",
                                     hint: "give --config MODEL.json (model.to_json())")
        }
        let hasInput = layers.first.map { if case .input = $0.kind { return true } else { return false } } ?? false
        let name = convs == 13 ? "vgg16" : convs == 16 ? "vgg19" : "vgg"
        return ModelSpec(name: name, className: hasInput ? "Functional" : "Sequential", inputShape: [224, 224, 3], layers: layers)
    }
}

/// The file's bytes, refusing more than `limit` (a regular file is checked by the caller).
func readBounded(_ path: String, limit: Int) throws -> Data {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw XferError.badInput(path, "cannot be read") }
    defer { try? handle.close() }
    let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
    guard data.count <= limit else {
        throw XferError.badInput(path, "is larger than a model configuration can be (\(limit >> 20) MiB)")
    }
    return data
}

/// True if the file starts with a zip signature.
func isZip(_ path: String) throws -> Bool {
    guard let handle = FileHandle(forReadingAtPath: path) else { return false }
    defer { try? handle.close() }
    let head = (try? handle.read(upToCount: 4)) ?? Data()
    return head == Data([0x50, 0x4B, 0x03, 0x04])
}
