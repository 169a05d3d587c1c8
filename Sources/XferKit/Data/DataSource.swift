// DATA as docs/CONTRACT.md defines it: an image folder (Keras
// `image_dataset_from_directory` layout), or an HDF5 file with `x` (N, H, W, C)
// float32, already preprocessed, and, for training and evaluation, `y` (N integer
// labels, or N×classes one-hot). Batches are read on demand, so memory stays
// bounded by the batch whatever the size of the data.

import Foundation

/// Samples with labels, read a batch at a time.
public final class DataSource: @unchecked Sendable {
    public enum Kind: Sendable { case images, arrays }

    public let path: String
    public let kind: Kind
    /// Number of samples.
    public let count: Int
    /// Label of each sample (nil when the data has no labels).
    public let labels: [Int]?
    /// Why `y` could not be read as labels, when an HDF5 file holds a `y` that is not labels
    /// (`predict` does not need it; training and evaluation report this).
    public let labelProblem: XferError?
    /// Class names (image folders: the sorted subfolder names).
    public let classNames: [String]?
    /// For arrays: the (H, W, C) of one sample.
    public let sampleShape: [Int]?

    private let folder: ImageFolder?
    private let file: HDF5File?
    private let preprocess: PreprocessMode

    /// Number of classes: the folder's classes, or max label + 1 (or the one-hot width).
    public let classCount: Int

    /// Opens DATA. `preprocess` applies to image folders only (`caffe` when nil); HDF5 arrays are
    /// used as they are unless a mode is given.
    public init(path: String, preprocess: PreprocessMode? = nil, warning: @escaping (String) -> Void = { _ in }) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw XferError.badInput(path, "no such file or folder",
                                     hint: "--data takes an image folder (one subfolder per class) or an HDF5 file with x and y")
        }
        if isDir.boolValue {
            let f = try ImageFolder(url: URL(fileURLWithPath: path)) { warning($0.description) }
            folder = f; file = nil; kind = .images
            count = f.samples.count
            labels = f.samples.map(\.label)
            labelProblem = nil
            classNames = f.classNames
            classCount = f.classNames.count
            sampleShape = nil
            self.preprocess = preprocess ?? .caffe
            return
        }
        let h = try HDF5File.open(path)
        guard h.kind("/x") == .dataset else {
            throw XferError.badInput(path, "has no dataset 'x'",
                                     hint: "an HDF5 DATA file holds x (N, H, W, C) float32 and y (N labels or N×classes one-hot)")
        }
        let xShape = try h.shape("/x")
        guard xShape.count == 4, xShape[0] > 0 else {
            throw XferError.badInput(path, "x has shape \(shapeText(xShape)), expected (N, H, W, C)")
        }
        folder = nil; file = h; kind = .arrays
        count = xShape[0]
        sampleShape = Array(xShape.dropFirst())
        self.preprocess = preprocess ?? PreprocessMode.none
        if h.kind("/y") == .dataset {
            let (yShape, y) = try h.doubles("/y")
            var l: [Int] = []
            var width = 0
            if yShape.count == 1 || (yShape.count == 2 && yShape[1] == 1) {
                l = y.map { Int($0) }
            } else if yShape.count == 2 && yShape[1] > 1 {
                width = yShape[1]
                l = (0..<yShape[0]).map { i in
                    let row = y[(i * width)..<((i + 1) * width)]
                    return row.indices.max { row[$0] < row[$1] }! - i * width
                }
            }
            var problem: XferError?
            if yShape.count > 2 || (yShape.count == 2 && yShape[1] < 1) {
                problem = XferError.badInput(path, "y has shape \(shapeText(yShape)), expected (N) labels or (N, classes) one-hot")
            } else if l.count != count {
                problem = XferError.badInput(path, "x has \(count) samples but y has \(l.count) labels",
                                             hint: "x and y must hold the same samples in the same order")
            } else if !l.allSatisfy({ $0 >= 0 }) {
                problem = XferError.badInput(path, "y holds negative labels")
            }
            labelProblem = problem
            labels = problem == nil ? l : nil
            classCount = problem == nil ? max(width, (l.max() ?? -1) + 1) : 0
        } else {
            labels = nil
            labelProblem = nil
            classCount = 0
        }
        var names: [String]?
        if let stored = try? h.strings("/", "class_names"), !stored.isEmpty { names = stored }
        classNames = names
    }

    /// How a sample is named in output: its path inside an image folder, else its index.
    public func sampleName(_ index: Int) -> String {
        folder.map { $0.samples[index].relativePath } ?? String(index)
    }

    /// The samples `indices` as one (n, H, W, C) tensor with their labels. Image folders are
    /// decoded, resized to `height`×`width` and preprocessed (unreadable images are skipped with
    /// a warning, so fewer samples may come back); arrays must already have that shape.
    public func batch(_ indices: [Int], height: Int, width: Int, warning: @escaping (String) -> Void = { _ in })
        throws -> (x: Tensor, labels: [Int], indices: [Int]) {
        if let folder {
            let b = folder.load(indices, height: height, width: width, preprocess: preprocess) { warning($0.description) }
            return (Tensor(shape: [b.loaded.count, height, width, 3], values: b.pixels), b.loaded.labels, b.loaded.indices)
        }
        let h = file!
        let shape = sampleShape!
        guard shape[0] == height, shape[1] == width else {
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
        if preprocess != .none {
            values.withUnsafeMutableBufferPointer { preprocess.apply(to: $0) }
        }
        return (Tensor(shape: [indices.count] + shape, values: values), indices.map { labels?[$0] ?? -1 }, indices)
    }
}
