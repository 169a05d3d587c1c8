// `KerasModel.predict` and `evaluate`: the model run over data as `xfer predict` and
// `xfer evaluate` run it (Predictor: the loss decides how outputs are read, the loss comes
// from the logits as Keras's `evaluate` computes it), on a batch, on one image file, on a
// folder of images, or on DATA. Images are read as the image-folder reader reads them
// (TensorFlow's decoding, bilinear resize, `preprocess_input`), with the model's recorded
// preprocessing (`caffe` when it records none, as for an image folder).

import Foundation

/// What the model says about one input, read by its head as `xfer predict` prints it.
///
/// ```swift
/// let model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
/// let p = try model.predict(image: "checkpoints/fashion/test/5_sandal/test_00240.png")
/// print(p.className ?? "class \(p.classIndex!)", p.probability!)
/// ```
public struct Prediction: Sendable, CustomStringConvertible {
    /// The input: the image's path as given (below the folder for ``KerasModel/predict(folder:batchSize:warning:)-(String,_,_)``),
    /// or the sample's index in DATA.
    public var input: String
    /// The outputs: probabilities (softmax or sigmoid applied) of a classifier, values of a regression.
    public var outputs: [Float]
    /// The predicted class: the most likely one of a softmax head (the first of equal ones),
    /// 1 or 0 of a binary head (probability above or below 0.5); nil for multi-label and regression heads.
    public var classIndex: Int?
    /// The name of ``classIndex`` when the model records its class names.
    public var className: String?
    /// The probability of ``classIndex`` for a softmax head; for a binary head, the probability
    /// of class 1 (Keras's sigmoid output), as `xfer predict` prints it.
    public var probability: Float?
    /// The class names of the model's outputs, when it records them.
    public var classNames: [String]?
    /// How the outputs read: the loss's kind.
    let kind: LossKind

    /// The `k` most likely classes of a softmax head, best first, each with its probability.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// for (name, p) in try model.predict(image: "checkpoints/fashion/test/6_shirt/test_00411.png").top(3) {
    ///     print(name, p)
    /// }
    /// ```
    public func top(_ k: Int) -> [(className: String, probability: Float)] {
        let order = outputs.indices.sorted { outputs[$0] != outputs[$1] ? outputs[$0] > outputs[$1] : $0 < $1 }
        return order.prefix(max(0, k)).map { (name($0), outputs[$0]) }
    }

    /// The class names of a multi-label head's outputs above `threshold`, each with its probability.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/losses/multilabel.h5")
    /// let p = try model.predict(try DataSource(contentsOf: "checkpoints/losses/multilabel_data.h5"))[0]
    /// print(p.labels(above: 0.5))
    /// ```
    public func labels(above threshold: Float = 0.5) -> [(className: String, probability: Float)] {
        outputs.indices.filter { outputs[$0] > threshold }.map { (name($0), outputs[$0]) }
    }

    private func name(_ c: Int) -> String { classNames.flatMap { c < $0.count ? $0[c] : nil } ?? String(c) }

    /// The line `xfer predict` prints: the input, then by head the class and its probability
    /// (softmax), the class and p(class 1) (binary), the labels above 0.5 (multi-label), or the
    /// values (regression), separated by tabs.
    public var description: String {
        func fmt(_ v: Float) -> String { String(format: "%.4f", Double(v)) }
        var cells: [String]
        if kind.isRegression {
            cells = outputs.map { String(format: "%.6g", Double($0)) }
        } else if kind == .binaryCrossentropy && outputs.count == 1 {
            cells = [name(outputs[0] > 0.5 ? 1 : 0), fmt(outputs[0])]
        } else if kind == .binaryCrossentropy {
            let on = labels(above: 0.5)
            cells = on.isEmpty ? ["-"] : on.map { "\($0.className):\(fmt($0.probability))" }
        } else {
            cells = top(1).flatMap { [$0.className, fmt($0.probability)] }
        }
        return ([input] + cells).joined(separator: "\t")
    }

    init(input: String, outputs: [Float], kind: LossKind, classNames: [String]?) {
        self.input = input; self.outputs = outputs; self.kind = kind; self.classNames = classNames
        if kind.isCategorical && !outputs.isEmpty {
            let best = outputs.indices.max { outputs[$0] != outputs[$1] ? outputs[$0] < outputs[$1] : $0 > $1 }!
            classIndex = best
            probability = outputs[best]
        } else if kind == .binaryCrossentropy && outputs.count == 1 {
            classIndex = outputs[0] > 0.5 ? 1 : 0
            probability = outputs[0]
        }
        if let c = classIndex, let names = classNames, c < names.count { className = names[c] }
    }
}

/// Warnings collected while reading images, for the error of an image that could not be read.
private final class Problems: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ line: String) { lock.withLock { lines.append(line) } }
    /// What the first warning about `path` says, without the path and the ", skipped".
    func first(for path: String) -> String? {
        lock.withLock {
            lines.first.map { line in
                var text = line.hasPrefix(path + ": ") ? String(line.dropFirst(path.count + 2)) : line
                if text.hasSuffix(", skipped") { text.removeLast(", skipped".count) }
                return text
            }
        }
    }
}

extension EvaluationResult: CustomStringConvertible {
    /// The line `xfer evaluate` prints: `loss: 0.3577 - accuracy: 0.9440 - ...`.
    public var description: String { line }
}

extension KerasModel {
    /// What runs the model for `predict` and `evaluate` (the CLI's Predictor).
    package func predictor() throws -> Predictor { try Predictor(model: spec, loss: loss) }

    /// Runs the model over every sample of `data` and reads each output by the head.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// for p in try model.predict(try DataSource(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5.io.h5")) {
    ///     print(p)
    /// }
    /// ```
    /// - Throws: ``XferError`` (`.badInput`) when the samples do not have the model's input shape
    ///   or none can be read.
    public func predict(_ data: DataSource, batchSize: Int = 32) throws -> [Prediction] {
        try predict(data, batchSize: batchSize, warning: { _ in })
    }

    /// `predict(_:batchSize:)` of DATA, naming each sample that cannot be read to `warning`.
    func predict(_ data: DataSource, batchSize: Int, warning: @escaping (String) -> Void) throws -> [Prediction] {
        let predictor = try predictor()
        let p = try predictor.predict(data, batchSize: batchSize, warning: warning)
        let names = classNames ?? data.classNames
        let width = p.probabilities.shape[1]
        return p.indices.enumerated().map { row, index in
            Prediction(input: data.sampleName(index), outputs: Array(p.probabilities.values[(row * width)..<((row + 1) * width)]),
                       kind: predictor.lossConfig.kind, classNames: names)
        }
    }

    /// Runs the model on a batch of inputs, already preprocessed, of shape (N, height, width,
    /// channels), and returns what Keras's `model.predict` returns: (N, outputs) probabilities of
    /// a classifier, values of a regression (a `fromLogits` model's logits).
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fixtures/k2_vgg_full.h5")
    /// let x = Tensor(shape: [2] + model.inputShape, repeating: 0.5)
    /// let y = try model.predict(x)   // (2, 5)
    /// ```
    /// - Throws: ``XferError`` (`.usage`) when `batch` does not have the model's input shape.
    public func predict(_ batch: Tensor, batchSize: Int = 32) throws -> Tensor {
        let predictor = try predictor()
        let raw = try predictor.network.predict(batch, batchSize: batchSize)
        let flat = Tensor(shape: [raw.shape[0], raw.count / max(raw.shape[0], 1)], values: raw.values)
        return predictor.appliesSoftmax ? predictor.loss.outputs(flat) : flat
    }

    /// Reads one image file (JPEG or PNG), resizes it to the model's input and preprocesses it
    /// as the model's images were (``preprocess``), and returns the prediction: for a
    /// classifier, its class (by name when the model records its class names) and probability.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// let p = try model.predict(image: "checkpoints/fashion/test/7_sneaker/test_00112.png")
    /// print(p.className ?? String(p.classIndex!), p.probability!)
    /// ```
    /// - Throws: ``XferError`` (`.badInput`) naming the file when it is not a readable image or
    ///   the model does not take RGB images.
    public func predict(image path: String) throws -> Prediction {
        let problems = Problems()
        do {
            if let p = try predict(images: [path], batchSize: 1, warning: problems.add).first { return p }
        } catch let e as XferError where e.subject == path && e.message == "holds no readable samples" {
        }
        throw XferError.badInput(path, problems.first(for: path) ?? "is not a readable image", hint: "give a JPEG or PNG image")
    }

    /// ``predict(image:)-(String)`` of a file URL.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// print(try model.predict(image: URL(fileURLWithPath: "checkpoints/fashion/test/8_bag/test_00031.png")))
    /// ```
    public func predict(image url: URL) throws -> Prediction { try predict(image: url.path) }

    /// Predicts every image below `folder` (subfolders included, in the order Keras lists an
    /// image folder), one ``Prediction`` each, whose ``Prediction/input`` is the file's path below
    /// the folder. A file that cannot be read is skipped and named to `warning`.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// for p in try model.predict(folder: "checkpoints/fashion/test/8_bag") { print(p) }
    /// ```
    /// - Throws: ``XferError`` (`.badInput`) when the folder cannot be listed or holds no readable image.
    public func predict(folder: String, batchSize: Int = 32, warning: ((String) -> Void)? = nil) throws -> [Prediction] {
        switch PathKind(folder) {
        case .directory: break
        case .missing: throw XferError.badInput(folder, "no such folder")
        default: throw XferError.badInput(folder, "is not a folder", hint: "predict(folder:) takes a folder of images; predict(image:) one image")
        }
        do {
            return try predict(images: [folder], batchSize: batchSize, warning: warning ?? { _ in })
        } catch let e as XferError where e.subject == folder && e.message == "holds no readable samples" {
            throw XferError.badInput(folder, "holds no readable image (JPEG or PNG)")
        }
    }

    /// ``predict(folder:batchSize:warning:)-(String,_,_)`` of a folder URL.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
    /// let all = try model.predict(folder: URL(fileURLWithPath: "checkpoints/fashion/test"))
    /// ```
    public func predict(folder url: URL, batchSize: Int = 32, warning: ((String) -> Void)? = nil) throws -> [Prediction] {
        try predict(folder: url.path, batchSize: batchSize, warning: warning)
    }

    /// The image files and folders at `paths`, read as `xfer predict` reads them (decoded to the
    /// model's color mode, resized, preprocessed as ``imageSettings`` says), `batchSize` at a time;
    /// a file that cannot be read is skipped and named to `warning`.
    func predict(images paths: [String], batchSize: Int, warning: @escaping (String) -> Void) throws -> [Prediction] {
        let s = imageSettings
        let data = try DataSource(images: paths, preprocess: s.preprocess, colorMode: s.colorMode, warning: warning)
        return try predict(data, batchSize: batchSize, warning: warning)
    }

    /// The loss and the metrics Keras's `model.evaluate` gives for the model's ``loss`` on
    /// labelled `data`, with per-class precision, recall, F1 and the confusion matrix for a
    /// classifier: what `xfer evaluate` prints.
    ///
    /// ```swift
    /// let model = try KerasModel(contentsOf: "checkpoints/losses/bce_sigmoid.h5")
    /// let result = try model.evaluate(try DataSource(contentsOf: "checkpoints/losses/bce_sigmoid_data.h5"))
    /// print(result)   // loss: ... - accuracy: ... - auc: ... - precision: ... - recall: ...
    /// ```
    /// - Throws: ``XferError`` (`.badInput`) when the data have no labels, labels the model has
    ///   no output for, or samples of another shape.
    public func evaluate(_ data: DataSource, batchSize: Int = 32) throws -> EvaluationResult {
        let predictor = try predictor()
        try predictor.checkEvaluable(data)
        let p = try predictor.predict(data, batchSize: batchSize)
        return try predictor.evaluate(p, classNames: classNames ?? data.classNames)
    }
}
