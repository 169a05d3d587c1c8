// DATA as docs/CONTRACT.md defines it: an image folder (Keras
// `image_dataset_from_directory` layout), or an HDF5 file with `x` float32, already
// preprocessed — (N, H, W, C) images, or, for models that take no images, (N, features)
// vectors or (N, T, features) sequences, each sample of the model's input shape — and, for
// training and evaluation, `y` (N integer labels, or N×classes one-hot). Batches are read on
// demand, so memory stays bounded by the batch whatever the size of the data. The image
// steps (decoding, resizing, color mode, `preprocess_input`) never touch non-image arrays.

import Foundation

/// Samples with labels, read a batch at a time.
///
/// ```swift
/// let train = try DataSource(contentsOf: "checkpoints/fashion/train")        // an image folder
/// let arrays = try DataSource(contentsOf: "checkpoints/training/fit_plain.h5")  // x and y in HDF5
/// print(train.count, train.classCount, train.classNames!, arrays.count)
/// ```
public final class DataSource: @unchecked Sendable {
    package enum Kind: Sendable { case images, arrays }

    /// The folder or file, as given.
    public let path: String
    package let kind: Kind
    /// Number of samples.
    public let count: Int
    /// Label of each sample (nil when the data has no labels).
    package private(set) var labels: [Int]?
    /// Why `y` could not be read as labels, when an HDF5 file holds a `y` that is not labels
    /// (`predict` does not need it; training and evaluation report this).
    package let labelProblem: XferError?
    /// Class names (image folders: the sorted subfolder names).
    public private(set) var classNames: [String]?
    /// For arrays: the shape of one sample, (H, W, C), (T, features) or (features).
    package let sampleShape: [Int]?
    /// For arrays: whether the samples are images (H, W, C).
    package var holdsImages: Bool { kind == .images || sampleShape?.count == 3 }

    private let folder: ImageFolder?
    private let file: HDF5File?
    private let preprocess: PreprocessMode
    /// The channels images are decoded to (for arrays: what their channels amount to).
    package let colorMode: ColorMode
    /// The `preprocess_input` mode applied to the samples.
    package var preprocessing: PreprocessMode { preprocess }

    /// Number of classes: the folder's classes, or max label + 1 (or the one-hot width).
    public private(set) var classCount: Int
    /// The width of `y` when it holds one-hot rows (a softmax must have exactly this many outputs).
    package let oneHotWidth: Int?
    /// `y` as it is, as float32 rows of ``targetWidth`` values (class ids for an image folder):
    /// what the binary, multi-label and regression losses train on. Nil without a numeric `y`,
    /// and for a one-hot `y` (its rows are the labels', ``targetRows(_:)``).
    package private(set) var targets: [Float]?
    /// Values per sample in ``targets`` (1 for class ids or a single regression value).
    package let targetWidth: Int
    /// Keras's `sample_weight`: an HDF5 DATA file's dataset `sample_weight` (N numbers ≥ 0), each
    /// multiplying its sample's training loss. Nil without one.
    package let sampleWeights: [Float]?

    /// Opens DATA. `preprocess` applies to image folders only (`caffe` when nil); HDF5 arrays are
    /// used as they are unless a mode is given.
    ///
    /// Checks what can be checked without a model: DATA is a folder or a regular file (a FIFO or
    /// device is refused, never opened), `x` is (N, H, W, C), (N, T, F) or (N, F) numeric with N > 0, and `y`, when
    /// present, holds one integer label in [0, ``maxClasses``) or one one-hot row per sample (when
    /// it does not, ``labels`` is nil and ``labelProblem`` says why). Image folders: a class
    /// folder without a readable image is named in a warning.
    package convenience init(path: String, preprocess: PreprocessMode? = nil, warning: @escaping (String) -> Void = { _ in }) throws {
        try self.init(path: path, preprocess: preprocess, colorMode: nil, warning: warning)
    }

    /// The same, images decoded to `colorMode`'s channels (RGB when nil).
    /// - Throws: also ``XferError`` `.usage` (`--preprocess`) for a mode that needs RGB on other channels.
    package init(path: String, preprocess: PreprocessMode?, colorMode: ColorMode?, warning: @escaping (String) -> Void = { _ in }) throws {
        self.path = path
        let dataHint = "--data takes an image folder (one subfolder per class) or an HDF5 file with x and y"
        switch PathKind(path) {
        case .directory, .regular: break
        case .missing: throw XferError.badInput(path, "no such file or folder", hint: dataHint)
        case .unreadable(let why): throw XferError.badInput(path, "cannot be read (\(why))")
        case let other: throw XferError.badInput(path, "is \(other.article), not a file or folder", hint: dataHint)
        }
        if PathKind(path) == .directory {
            let f = try ImageFolder(url: URL(fileURLWithPath: path)) { warning($0.description) }
            folder = f; file = nil; kind = .images
            count = f.samples.count
            labels = f.samples.map(\.label)
            targets = f.samples.map { Float($0.label) }
            targetWidth = 1
            sampleWeights = nil
            labelProblem = nil
            classNames = f.classNames
            classCount = f.classNames.count
            oneHotWidth = nil
            sampleShape = nil
            self.preprocess = preprocess ?? .caffe
            self.colorMode = colorMode ?? .rgb
            try Self.checkPreprocess(self.preprocess, channels: self.colorMode.channels, colorMode: self.colorMode)
            var root = path
            while root.count > 1, root.hasSuffix("/") { root.removeLast() }
            for (label, n) in f.samplesPerClass.enumerated() where n == 0 {
                warning("\(root)/\(f.classNames[label]): class folder without a readable image: "
                        + "class \(label) (\(f.classNames[label])) has no samples")
            }
            return
        }
        let h = try HDF5File.open(path)
        guard h.kind("/x") == .dataset else {
            throw XferError.badInput(path, "has no dataset 'x'",
                                     hint: "an HDF5 DATA file holds x (N, H, W, C) float32 (or (N, F), (N, T, F) for a model of vectors or sequences) and y (N labels or N×classes one-hot)")
        }
        let xShape = try h.shape("/x")
        guard (2...4).contains(xShape.count) else {
            throw XferError.badInput(path, "x has shape \(shapeText(xShape)), expected (N, H, W, C) images, (N, T, features) or (N, features)",
                                     hint: "x holds one sample of the model's input shape per row, e.g. (100, 224, 224, 3) or (100, 20)")
        }
        guard xShape[0] > 0 else { throw XferError.badInput(path, "x holds no samples (shape \(shapeText(xShape)))") }
        guard xShape.dropFirst().allSatisfy({ $0 > 0 }) else {
            throw XferError.badInput(path, "x has shape \(shapeText(xShape)): its samples hold no values")
        }
        let xClass = try h.valueClass("/x")
        guard xClass == .float || xClass == .integer else {
            throw XferError.badInput(path, "x is not numeric", hint: "x holds float32 values, already preprocessed")
        }
        folder = nil; file = h; kind = .arrays
        count = xShape[0]
        sampleShape = Array(xShape.dropFirst())
        self.preprocess = preprocess ?? PreprocessMode.none
        if xShape.count == 4 {
            self.colorMode = ColorMode(channels: xShape[3]) ?? .rgb
            try Self.checkPreprocess(self.preprocess, channels: xShape[3], colorMode: nil)
        } else {
            // Vectors and sequences are no pixels: no preprocess_input mode applies.
            self.colorMode = .rgb
            if self.preprocess != .none {
                throw XferError.usage("--preprocess \(self.preprocess.rawValue)", "works on images, and \(path)'s x holds samples of shape \(shapeText(Array(xShape.dropFirst()))), not (H, W, C)",
                                      hint: "leave --preprocess out (or give none) for non-image data, which is used as it is")
            }
        }
        var names: [String]?
        if let stored = try? h.strings("/", "class_names"), !stored.isEmpty { names = stored }
        classNames = names
        sampleWeights = try Self.readSampleWeights(h, path: path, samples: count)
        var oneHot: Int?
        if h.kind("/y") == .dataset {
            switch Self.readLabels(h, path: path, samples: count, classNames: names) {
            case .success(let r):
                labels = r.labels; labelProblem = nil; classCount = r.classes; oneHot = r.width
            case .failure(let problem):
                labels = nil; labelProblem = problem; classCount = 0
            }
        } else {
            labels = nil
            labelProblem = nil
            classCount = 0
        }
        oneHotWidth = oneHot
        // y as it is, for the losses that do not take class labels. One-hot rows are rebuilt from
        // the labels when asked for (`targetRows`), so a large one-hot y is never held twice; a y
        // that cannot be read, or of more than 2^27 values, leaves them nil (labelProblem says why
        // when it matters).
        var raw: (shape: [Int], values: [Float])?
        if oneHot == nil, h.kind("/y") == .dataset, let shape = try? h.shape("/y"), (1...2).contains(shape.count),
           shape[0] == count, shape.count == 1 || (1...Self.maxClasses).contains(shape[1]),
           shape.reduce(1, *) <= 1 << 27, let c = try? h.valueClass("/y"), c == .integer || c == .float {
            raw = try? h.floats("/y")
        }
        targets = raw?.values
        targetWidth = oneHot ?? raw.map { $0.shape.count == 2 ? $0.shape[1] : 1 } ?? 1
    }

    /// Images to predict on, without labels (``ImageFolder/init(unlabelled:warning:)``): image
    /// files and folders of them, decoded to `colorMode` (RGB when nil) and preprocessed with
    /// `preprocess` (`caffe` when nil).
    package init(images paths: [String], preprocess: PreprocessMode?, colorMode: ColorMode?,
                 warning: @escaping (String) -> Void = { _ in }) throws {
        path = paths.count == 1 ? paths[0] : paths.joined(separator: " ")
        let f = try ImageFolder(unlabelled: paths) { warning($0.description) }
        folder = f; file = nil; kind = .images
        count = f.samples.count
        labels = nil; targets = nil; targetWidth = 1; sampleWeights = nil; labelProblem = nil
        classNames = nil; classCount = 0; oneHotWidth = nil; sampleShape = nil
        self.preprocess = preprocess ?? .caffe
        self.colorMode = colorMode ?? .rgb
        try Self.checkPreprocess(self.preprocess, channels: self.colorMode.channels, colorMode: self.colorMode)
    }

    /// `caffe` and `torch` work per RGB channel: on other channels they are a usage error.
    private static func checkPreprocess(_ mode: PreprocessMode, channels: Int, colorMode: ColorMode?) throws {
        guard !mode.accepts(channels: channels) else { return }
        let what = colorMode.map { "images read as \($0.rawValue) have \(channels) channel\(channels == 1 ? "" : "s")" }
            ?? "the arrays have \(channels) channel\(channels == 1 ? "" : "s")"
        throw XferError.usage("--preprocess \(mode.rawValue)", "works on RGB images (3 channels), and \(what)",
                              hint: "use --preprocess none or tf")
    }

    /// `sample_weight`, when the file has one: N (or N×1) finite numbers ≥ 0.
    private static func readSampleWeights(_ h: HDF5File, path: String, samples: Int) throws -> [Float]? {
        guard h.kind("/sample_weight") == .dataset else { return nil }
        let hint = "sample_weight holds one number ≥ 0 per sample (Keras's fit(sample_weight=...))"
        let shape = try h.shape("/sample_weight")
        let c = try h.valueClass("/sample_weight")
        guard c == .integer || c == .float, shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
            throw XferError.badInput(path, "sample_weight has shape \(shapeText(shape)), expected (N) numbers", hint: hint)
        }
        guard shape[0] == samples else {
            throw XferError.badInput(path, "x has \(samples) samples but sample_weight has \(shape[0]) weights", hint: hint)
        }
        let w = try h.floats("/sample_weight").values
        if let bad = w.firstIndex(where: { !$0.isFinite || $0 < 0 }) {
            throw XferError.badInput(path, "sample_weight[\(bad)] is \(w[bad]), not a weight ≥ 0", hint: hint)
        }
        return w
    }

    /// The most classes a label may name (labels are below this): a stray large value in `y`
    /// would otherwise make a softmax head of that many units.
    package static let maxClasses = 1 << 20

    /// `y` as labels: (N) or (N, 1) integer labels, or (N, classes) one-hot rows.
    private static func readLabels(_ h: HDF5File, path: String, samples: Int, classNames: [String]?)
        -> Result<(labels: [Int], classes: Int, width: Int?), XferError> {
        let layout = "y holds N integer class labels 0, 1, ... or N one-hot rows (N, classes)"
        func problem(_ message: String, hint: String? = layout) -> Result<(labels: [Int], classes: Int, width: Int?), XferError> {
            .failure(XferError.badInput(path, message, hint: hint))
        }
        let yShape: [Int]
        do {
            yShape = try h.shape("/y")
            let c = try h.valueClass("/y")
            guard c == .integer || c == .float else { return problem("y is not numeric") }
        } catch let e as XferError { return .failure(e) } catch { return problem("y cannot be read") }
        guard !yShape.isEmpty, yShape.count <= 2, yShape.count == 1 || yShape[1] >= 1 else {
            return problem("y has shape \(shapeText(yShape)), expected (N) labels or (N, classes) one-hot")
        }
        guard yShape[0] == samples else {
            return problem("x has \(samples) samples but y has \(yShape[0]) labels",
                           hint: "x and y must hold the same samples in the same order")
        }
        var labels: [Int] = []
        labels.reserveCapacity(samples)
        var width = 0
        do {
            if yShape.count == 1 || yShape[1] == 1 {
                let (_, y) = try h.doubles("/y")
                for (i, v) in y.enumerated() {
                    guard v.isFinite else { return problem("y[\(i)] is \(v), not a class label") }
                    guard v >= 0 else { return problem("y[\(i)] is \(labelText(v)), a negative class label") }
                    guard v == v.rounded() else {
                        return problem("y[\(i)] is \(labelText(v)), not an integer class label",
                                       hint: "class labels are integers 0, 1, ...; one-hot rows have shape (N, classes)")
                    }
                    guard v < Double(maxClasses) else {
                        return problem("y[\(i)] is \(labelText(v)), more classes than xfer trains (labels below \(maxClasses))")
                    }
                    labels.append(Int(v))
                }
            } else {
                width = yShape[1]
                guard width <= maxClasses else {
                    return problem("y has \(width) columns, more classes than xfer trains (at most \(maxClasses))")
                }
                var bad: XferError?
                var row = 0
                try h.scanFloats("/y") { piece in
                    guard bad == nil else { return }
                    var start = 0
                    while start + width <= piece.count {
                        var hot = -1
                        for j in 0..<width {
                            let v = piece[start + j]
                            if v == 1 && hot < 0 { hot = j; continue }
                            if v == 0 { continue }
                            hot = -2
                            break
                        }
                        if hot < 0 {
                            let shown = piece[start..<(start + min(width, 6))].map { labelText(Double($0)) }.joined(separator: ", ")
                            bad = XferError.badInput(path, "y row \(row) is not one-hot (\(shown)\(width > 6 ? ", ..." : ""))",
                                                     hint: "one-hot rows hold a single 1 and 0 elsewhere; for soft labels give "
                                                        + "integer labels (the argmax of each row) instead")
                            return
                        }
                        labels.append(hot)
                        row += 1
                        start += width
                    }
                }
                if let bad { return .failure(bad) }
            }
        } catch let e as XferError { return .failure(e) } catch { return problem("y cannot be read") }
        let highest = labels.max() ?? -1
        if let names = classNames {
            if width > 0 && width != names.count {
                return problem("y has \(width) one-hot columns but class_names lists \(names.count) classes", hint: nil)
            }
            if highest >= names.count {
                return problem("y holds label \(highest) but class_names lists \(names.count) classes", hint: nil)
            }
        }
        return .success((labels, max(width, highest + 1, classNames?.count ?? 0), width > 0 ? width : nil))
    }

    /// How a sample is named in output: its path inside an image folder, else its index.
    package func sampleName(_ index: Int) -> String {
        folder.map { $0.samples[index].relativePath } ?? String(index)
    }

    /// The samples `indices` as one (n, H, W, C) tensor (arrays: (n, …) of their sample shape)
    /// with their labels. Image folders are decoded, resized to `height`×`width` and preprocessed
    /// (unreadable images are skipped with a warning, so fewer samples may come back); image
    /// arrays must already have that shape. For a model that takes no images use
    /// ``batch(_:inputShape:warning:)``.
    package func batch(_ indices: [Int], height: Int, width: Int, warning: @escaping (String) -> Void = { _ in })
        throws -> (x: Tensor, labels: [Int], indices: [Int], targets: Tensor) {
        if let folder {
            let b = folder.load(indices, height: height, width: width, preprocess: preprocess, colorMode: colorMode) { warning($0.description) }
            // The labels as this DATA holds them (matched to a model's class names, ``matchClasses(to:theirs:)``).
            let batchLabels = labels.map { all in b.loaded.indices.map { all[$0] } } ?? b.loaded.labels
            return (Tensor(shape: [b.loaded.count, height, width, colorMode.channels], values: b.pixels), batchLabels, b.loaded.indices,
                    Tensor(shape: [b.loaded.count, 1], values: batchLabels.map(Float.init)))
        }
        let h = file!
        let shape = sampleShape!
        // Non-image samples were checked against the model's input shape (`checkFits`).
        guard shape.count != 3 || (shape[0] == height && shape[1] == width) else {
            throw XferError.badInput(path, "x holds \(shape[0])×\(shape[1]) samples but the model takes \(height)×\(width)",
                                     hint: "resize the arrays, or give --input-shape to match them")
        }
        let per = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: indices.count * per)
        // Contiguous runs of indices are read with one hyperslab each.
        var i = 0
        while i < indices.count {
            var j = i + 1
            while j < indices.count && indices[j] == indices[j - 1] + 1 { j += 1 }
            let rows = try h.floats("/x", rows: indices[i], count: j - i)
            values.replaceSubrange((i * per)..<(j * per), with: rows)
            i = j
        }
        if preprocess != .none && shape.count == 3 {
            values.withUnsafeMutableBufferPointer { preprocess.apply(to: $0, channels: shape[2]) }
        }
        return (Tensor(shape: [indices.count] + shape, values: values), indices.map { labels?[$0] ?? -1 }, indices,
                targetRows(indices))
    }

    /// The samples `indices` for a model that takes `inputShape`: images resized to its H×W,
    /// other arrays as they are (their shape was checked by ``checkFits(inputShape:)``).
    package func batch(_ indices: [Int], inputShape: [Int], warning: @escaping (String) -> Void = { _ in })
        throws -> (x: Tensor, labels: [Int], indices: [Int], targets: Tensor) {
        let (h, w) = imageSize(inputShape)
        return try batch(indices, height: h, width: w, warning: warning)
    }

    /// The target rows of samples `indices`, (n, ``targetWidth``): `y` as it is (one-hot rows
    /// from the labels; zeros without a `y`).
    package func targetRows(_ indices: [Int]) -> Tensor {
        let w = targetWidth
        var out = [Float](repeating: 0, count: indices.count * w)
        if let targets {
            for (k, i) in indices.enumerated() { out.replaceSubrange((k * w)..<((k + 1) * w), with: targets[(i * w)..<((i + 1) * w)]) }
        } else if oneHotWidth != nil, let labels {
            for (k, i) in indices.enumerated() { out[k * w + labels[i]] = 1 }
        }
        return Tensor(shape: [indices.count, w], values: out)
    }
}

/// The H×W of an image input shape (H, W, C); (0, 0) for vectors and sequences, which are never resized.
package func imageSize(_ inputShape: [Int]) -> (height: Int, width: Int) {
    inputShape.count == 3 ? (inputShape[0], inputShape[1]) : (0, 0)
}

/// A label value as the user wrote it: 3, 1.5, -1, 1e+12.
private func labelText(_ v: Double) -> String { String(format: "%g", v) }

// MARK: - Checks against a model

extension DataSource {
    /// Checks that the samples fit a model that takes `inputShape` — (H, W, C), (T, features) or
    /// (features): an HDF5 file's `x` holds samples of exactly that shape; an image folder
    /// (decoded to its color mode, resized to H×W) needs a model that takes images of its
    /// channels. Call before any expensive work.
    ///
    /// - Throws: ``XferError`` `.badInput` naming this DATA.
    package func checkFits(inputShape shape: [Int]) throws {
        guard shape.count == 3 else {
            // A model of vectors or sequences takes arrays of exactly its input shape.
            let s = sampleShape ?? []
            guard kind == .arrays else {
                throw XferError.badInput(path, "holds images (H, W, C) but the model takes input \(shapeText(shape))",
                                         hint: "give an HDF5 DATA file whose x holds samples of shape \(shapeText(shape))")
            }
            guard s != shape else { return }
            throw XferError.badInput(path, "x holds samples of shape \(shapeText(s)) but the model takes \(shapeText(shape))",
                                     hint: "give an HDF5 DATA file whose x is (N, \(shape.map(String.init).joined(separator: ", ")))")
        }
        switch kind {
        case .images:
            let c = colorMode.channels
            if shape[2] != c {
                let mode = ColorMode(channels: shape[2])
                throw XferError.badInput(path, "holds images decoded as \(colorMode == .rgb ? "RGB" : colorMode.rawValue) (\(c) channel\(c == 1 ? "" : "s")) but the model takes \(shape[2]) channel\(shape[2] == 1 ? "" : "s")",
                                         hint: mode.map { "give --color-mode \($0.rawValue), or leave it out to follow the model" }
                                            ?? "give an HDF5 DATA file whose x has \(shape[2]) channels")
            }
        case .arrays:
            let s = sampleShape ?? []
            guard s != shape else { return }
            if s.count == 3 && s[0] == shape[0] && s[1] == shape[1] {
                throw XferError.badInput(path, "x has \(s[2]) channel\(s[2] == 1 ? "" : "s") per sample but the model takes \(shape[2])",
                                         hint: s[2] == 1 && shape[2] == 3
                                            ? "repeat the gray channel (numpy: np.repeat(x, 3, axis=-1))" : "give data of the model's input shape")
            }
            throw XferError.badInput(path, "x holds samples of shape \(shapeText(s)) but the model takes \(shapeText(shape))",
                                     hint: "resize the arrays, or give --input-shape for a model whose input size is open")
        }
    }

    /// The labels, for training and evaluation.
    /// - Throws: why `y` is not labels, or that there is none (`.badInput` naming this DATA).
    package func requireLabels(for purpose: String) throws -> [Int] {
        if let labels { return labels }
        throw labelProblem ?? XferError.badInput(path, "has no labels (dataset y)", hint: "\(purpose) needs labelled data")
    }

    /// The largest label (-1 without labels).
    package var highestLabel: Int { labels?.max() ?? -1 }

    /// Checks that every label names one of a model's `outputs` classes (Keras fails on a label
    /// at or above the units of the softmax, and on one-hot rows of another width).
    /// - Throws: ``XferError`` `.badInput` naming this DATA.
    package func checkLabels(below outputs: Int) throws {
        if let w = oneHotWidth, w != outputs {
            throw XferError.badInput(path, "y has \(w) one-hot columns but the model has \(outputs) output\(outputs == 1 ? "" : "s")",
                                     hint: "one-hot rows have one column per output of the softmax")
        }
        let highest = highestLabel
        guard highest >= outputs else { return }
        let what = kind == .images
            ? "has \(classCount) classes (\(classNames?[highest] ?? String(highest)) is class \(highest))"
            : "holds label \(highest)"
        throw XferError.badInput(path, "\(what) but the model has \(outputs) output\(outputs == 1 ? "" : "s")",
                                 hint: "the data's classes do not match the model's")
    }

    /// Matches the labels to `modelNames` by class name: each of this DATA's classes (image
    /// folder names, or an HDF5 file's `class_names`) becomes the index of the same name in
    /// `modelNames`, so a folder holding 2 of a model's 5 classes is labelled as the model
    /// knows them. Nothing changes when the names are the same, or when this DATA has none
    /// (labels are then positions, as Keras's).
    /// - Throws: ``XferError`` `.badInput` naming this DATA and every class name the model does
    ///   not have.
    package func matchClasses(to modelNames: [String], theirs: String = "the model's") throws {
        guard let mine = classNames, mine != modelNames, !modelNames.isEmpty else { return }
        let unknown = mine.filter { !modelNames.contains($0) }
        func list(_ names: [String]) -> String {
            names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", ... (\(names.count))" : "")
        }
        guard unknown.isEmpty else {
            let what = kind == .images ? "class folder" : "class name"
            throw XferError.badInput(path, "\(what)\(unknown.count == 1 ? "" : "s") \(list(unknown)) \(unknown.count == 1 ? "is" : "are") not among \(theirs) classes (\(list(modelNames)))",
                                     hint: kind == .images ? "name each class folder as one of those classes, or leave out the folders of other classes"
                                                           : "class_names must name the model's classes")
        }
        guard oneHotWidth == nil else {
            throw XferError.badInput(path, "y is one-hot over its class_names (\(list(mine))), which are not \(theirs) (\(list(modelNames)))",
                                     hint: "give y as integer labels, or one-hot rows in \(theirs) class order")
        }
        let index = mine.map { name in modelNames.firstIndex(of: name)! }
        labels = labels?.map { $0 >= 0 && $0 < index.count ? index[$0] : $0 }
        if kind == .images || targetWidth == 1 {
            targets = targets?.map { v in
                let i = Int(v)
                return Float(v) == Float(i) && i >= 0 && i < index.count ? Float(index[i]) : v
            }
        }
        classNames = modelNames
        classCount = max(classCount, modelNames.count)
    }

    /// A warning when this DATA's class names and `other` are both known and differ: labels are
    /// positions in the sorted class names, so class i here is not class i there. `theirs` names
    /// the other side ("the model's").
    package func classNamesDiffer(from other: [String]?, theirs: String) -> String? {
        guard let mine = classNames, let other, mine != other else { return nil }
        func list(_ names: [String]) -> String {
            names.prefix(8).joined(separator: ", ") + (names.count > 8 ? ", ... (\(names.count))" : "")
        }
        return "\(path): its classes (\(list(mine))) are not \(theirs) (\(list(other))); labels are positions in these lists, "
            + "so they name different classes"
    }

    /// Checks that the data can teach a classifier: samples of at least two classes (a softmax
    /// over one class learns nothing, and samples of one class only teach it to answer that class).
    /// - Throws: ``XferError`` `.badInput` naming this DATA.
    package func checkTrainable() throws {
        if classCount < 2 {
            let which = classNames.map { " (\($0.joined(separator: ", ")))" } ?? ""
            throw XferError.badInput(path, "has only one class\(which): a softmax over one class learns nothing",
                                     hint: kind == .images ? "an image folder holds one subfolder per class, two or more"
                                                           : "y holds labels of two or more classes")
        }
        let present = Set(labels ?? [])
        if present.count == 1, let only = present.first {
            let name = classNames.flatMap { only < $0.count ? " (\($0[only]))" : nil } ?? ""
            throw XferError.badInput(path, "all its samples are of class \(only)\(name): a classifier learns nothing from one class",
                                     hint: kind == .images ? "put images in two or more class folders" : "y holds labels of two or more classes")
        }
    }
}
