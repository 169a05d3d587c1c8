// An image folder in the layout of Keras's `image_dataset_from_directory`, listed in the order
// Keras lists it, and loaded a batch at a time the way Keras loads it.
//
// Listing (keras/src/utils/dataset_utils.py, index_directory, labels="inferred"):
//   - class names: the folder's subfolders, names not starting with ".", sorted as Python's
//     sorted() sorts str (by code point, which for UTF-8 is byte order); index = label;
//   - each class folder is walked recursively like os.walk (symlinked subfolders are not
//     entered); walk roots are sorted by path, the files of each root by name;
//   - a file is listed if its lowercased name ends with .bmp .gif .jpeg .jpg or .png.
// Keras then fails on the first file it cannot decode; xfer instead names it in a warning and
// skips it. Every listed file's header is checked when the folder is opened (a non-image, an
// unsupported format or a truncated header is dropped then); a file whose image data turns
// out damaged is dropped from the batch that meets it, with a warning, and from later batches.
// Only regular files are read (a FIFO, socket or device, or a link to one, is skipped with a
// warning, never opened for a blocking read), each up to 256 MiB (FileChecks.swift); a
// subfolder that cannot be listed is named in a warning.
//
// Loading (image_dataset.py, load_image): decode to RGB (DecodedImage), resize bilinearly to
// the model's input size (ImageResize), then the `preprocess_input` mode (PreprocessMode).
// Images are decoded on all cores, each straight into its slot of the caller's batch buffer,
// so memory stays bounded by one batch whatever the size of the folder.

import Dispatch
import Foundation

/// A file of an image folder that was skipped, and why.
package struct ImageWarning: Sendable, CustomStringConvertible {
    /// The file or subfolder, as a path below the folder path the caller gave.
    package var path: String
    /// What is wrong, ending in ", skipped".
    package var message: String
    /// `<path>: <message>`; the CLI prints it as `xfer: warning: <path>: <message>`.
    package var description: String { "\(path): \(message)" }
}

/// Which samples a batch holds, in buffer order (files that failed to decode are left out).
package struct LoadedBatch: Sendable, Equatable {
    /// Indices into ``ImageFolder/samples``.
    package var indices: [Int]
    /// The class index of each image.
    package var labels: [Int]
    package var count: Int { indices.count }
}

/// A batch of decoded, resized and preprocessed images.
package struct ImageBatch: Sendable {
    /// // (N, H, W, 3) float32, N = `loaded.count`
    package var pixels: [Float]
    package var height: Int
    package var width: Int
    package var loaded: LoadedBatch
}

/// An image folder in the Keras `image_dataset_from_directory` layout: one subfolder per class.
///
/// ```swift
/// let folder = try ImageFolder(url: URL(fileURLWithPath: "data/train")) { print("xfer: warning: \($0)") }
/// print(folder.classNames, folder.samples.count)
/// let batch = folder.load(Array(0..<min(32, folder.samples.count)), height: 224, width: 224,
///                         preprocess: .caffe) { print("xfer: warning: \($0)") }
/// // batch.pixels: (batch.loaded.count, 224, 224, 3), batch.loaded.labels: class indices
/// ```
package struct ImageFolder: Sendable {
    /// One image file and its class.
    package struct Sample: Sendable, Equatable {
        package var url: URL
        /// The path below the folder, "/"-separated, e.g. `cat/1.jpg` (Keras's `file_paths`
        /// without the folder prefix).
        package var relativePath: String
        /// Index into ``ImageFolder/classNames``.
        package var label: Int
    }

    /// File name endings Keras lists (compared lowercased). GIF and BMP files are listed, as
    /// Keras does, but xfer skips them with a warning.
    package static let imageExtensions = [".bmp", ".gif", ".jpeg", ".jpg", ".png"]

    package let url: URL
    /// Sorted subfolder names; a sample's label indexes this.
    package let classNames: [String]
    /// Readable image files in Keras's order (without shuffling).
    package let samples: [Sample]
    /// Per class (indexed like ``classNames``): how many of ``samples`` it has. A class folder
    /// with no readable image has 0: its class exists (Keras counts it) but nothing teaches it.
    package var samplesPerClass: [Int] {
        var counts = [Int](repeating: 0, count: classNames.count)
        for s in samples where s.label >= 0 { counts[s.label] += 1 }
        return counts
    }
    private let displayRoot: String
    private let failedAtLoad = SampleSet()

    /// Lists the folder and checks each image file's header.
    ///
    /// - Parameter warning: called, in file order, for each listed file that is skipped.
    /// - Throws: ``XferError`` `.badInput` (subject = the folder path) for a missing folder, a
    ///   folder without class subfolders, or one without any readable image.
    package init(url: URL, warning: (ImageWarning) -> Void = { _ in }) throws {
        self.url = url
        var root = url.relativePath
        while root.count > 1, root.hasSuffix("/") { root.removeLast() }
        displayRoot = root
        let layoutHint = "an image folder holds one subfolder per class with the images in it, "
            + "e.g. \(root)/cat/1.jpg and \(root)/dog/1.png (the Keras image_dataset_from_directory layout)"

        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw XferError.badInput(root, "no such file or folder")
        }
        guard isDirectory.boolValue else {
            throw XferError.badInput(root, "not a folder", hint: layoutHint)
        }
        let classNames = try Self.classFolders(of: url, display: root)
        guard !classNames.isEmpty else {
            throw XferError.badInput(root, "no class subfolders", hint: layoutHint)
        }
        self.classNames = classNames

        var listed: [Sample] = []
        for (label, name) in classNames.enumerated() {
            let classURL = url.appendingPathComponent(name, isDirectory: true)
            for file in Self.imageFiles(below: classURL, unlistable: { folder, why in
                let path = root + "/" + name + (folder.isEmpty ? "" : "/" + folder)
                warning(ImageWarning(path: path, message: "cannot list the folder (\(why)), skipped"))
            }) {
                let relative = name + "/" + file
                listed.append(Sample(url: url.appendingPathComponent(relative), relativePath: relative, label: label))
            }
        }
        guard !listed.isEmpty else {
            throw XferError.badInput(
                root, "no images in the class subfolders \(classNames.joined(separator: ", "))",
                hint: "images are .jpeg, .jpg or .png files; " + layoutHint)
        }

        let problems = Self.checkHeaders(listed)
        var kept: [Sample] = []
        for (sample, problem) in zip(listed, problems) {
            if let problem {
                warning(ImageWarning(path: root + "/" + sample.relativePath, message: problem + ", skipped"))
            } else {
                kept.append(sample)
            }
        }
        guard !kept.isEmpty else {
            throw XferError.badInput(root, "none of its \(listed.count) image files can be read",
                                     hint: "the warnings above say what is wrong with each")
        }
        samples = kept
    }

    /// Decodes, resizes to `height` x `width` and preprocesses the samples at `indices` into
    /// `batch`, one image after another. // batch: (N, height, width, 3), N ≤ indices.count
    ///
    /// A file that cannot be decoded is reported through `warning` (once per folder), and the
    /// images after it move up, so the batch holds `LoadedBatch.count` images.
    package func load(
        _ indices: [Int], height: Int, width: Int, preprocess: PreprocessMode,
        into batch: UnsafeMutableBufferPointer<Float>, warning: (ImageWarning) -> Void = { _ in }
    ) -> LoadedBatch {
        load(indices, height: height, width: width, preprocess: preprocess, colorMode: .rgb, into: batch, warning: warning)
    }

    /// The same, decoded to `colorMode`'s channels. // batch: (N, height, width, colorMode.channels)
    package func load(
        _ indices: [Int], height: Int, width: Int, preprocess: PreprocessMode, colorMode: ColorMode,
        into batch: UnsafeMutableBufferPointer<Float>, warning: (ImageWarning) -> Void = { _ in }
    ) -> LoadedBatch {
        let channels = colorMode.channels
        let imageSize = height * width * channels
        precondition(height > 0 && width > 0, "image size must be positive")
        precondition(batch.count >= indices.count * imageSize, "batch buffer too small")
        let knownBad = failedAtLoad.snapshot()
        let todo = indices.filter { !knownBad.contains($0) }
        guard let base = batch.baseAddress, !todo.isEmpty else { return LoadedBatch(indices: [], labels: []) }

        var problems = [String?](repeating: nil, count: todo.count)
        problems.withUnsafeMutableBufferPointer { problems in
            // On the engine's threads: while a training step holds them (this batch being read
            // ahead), the images are decoded on this thread alone, so the process never runs more
            // threads than its budget plus the one reading ahead.
            parallelFor(todo.count) { slot, _ in
                let out = base + slot * imageSize
                do {
                    let data = try readRegularFile(samples[todo[slot]].url.path)
                    let image = try data.withUnsafeBytes { try decodeImageBytes($0, channels: channels) }
                    image.resize(into: out, height: height, width: width)
                    preprocess.apply(to: UnsafeMutableBufferPointer(start: out, count: imageSize), channels: channels)
                } catch let error as ImageDecodeError {
                    problems[slot] = error.message
                } catch {
                    problems[slot] = "cannot read the file"
                }
            }
        }

        var kept: [Int] = []
        for (slot, index) in todo.enumerated() {
            if let problem = problems[slot] {
                if failedAtLoad.insert(index) {
                    warning(ImageWarning(path: displayPath(samples[index]), message: problem + ", skipped"))
                }
                continue
            }
            if kept.count != slot {
                (base + kept.count * imageSize).update(from: base + slot * imageSize, count: imageSize)
            }
            kept.append(index)
        }
        return LoadedBatch(indices: kept, labels: kept.map { samples[$0].label })
    }

    /// ``load(_:height:width:preprocess:into:warning:)`` into a new buffer.
    package func load(
        _ indices: [Int], height: Int, width: Int, preprocess: PreprocessMode,
        warning: (ImageWarning) -> Void = { _ in }
    ) -> ImageBatch {
        load(indices, height: height, width: width, preprocess: preprocess, colorMode: .rgb, warning: warning)
    }

    /// The same, decoded to `colorMode`'s channels.
    package func load(
        _ indices: [Int], height: Int, width: Int, preprocess: PreprocessMode, colorMode: ColorMode,
        warning: (ImageWarning) -> Void = { _ in }
    ) -> ImageBatch {
        let imageSize = height * width * colorMode.channels
        var pixels = [Float](repeating: 0, count: indices.count * imageSize)
        let loaded = pixels.withUnsafeMutableBufferPointer {
            load(indices, height: height, width: width, preprocess: preprocess, colorMode: colorMode, into: $0, warning: warning)
        }
        pixels.removeLast(pixels.count - loaded.count * imageSize)
        return ImageBatch(pixels: pixels, height: height, width: width, loaded: loaded)
    }

    /// How a sample is named in a warning: below the folder the caller gave, or as given.
    private func displayPath(_ sample: Sample) -> String {
        displayRoot.isEmpty ? sample.relativePath : displayRoot + "/" + sample.relativePath
    }

    // MARK: - Unlabelled images (predict)

    /// Images to predict on, without labels: each path an image file (any name; the format is
    /// told by its bytes) or a folder, whose images (Keras's extensions) are listed recursively in
    /// Keras's order (`image_dataset_from_directory(labels=None)`), class subfolders or not.
    /// A sample is named by its path below the folder when `paths` is one folder (as a class
    /// folder names its samples), otherwise by the path as given. ``classNames`` is empty and
    /// every label -1.
    ///
    /// - Throws: ``XferError`` `.badInput` for a path that does not exist, a folder (given alone)
    ///   without images, a single image file that cannot be read (its problem), or when no
    ///   image at all can be read.
    package init(unlabelled paths: [String], warning: (ImageWarning) -> Void = { _ in }) throws {
        func trimmed(_ p: String) -> String {
            var root = p
            while root.count > 1, root.hasSuffix("/") { root.removeLast() }
            return root
        }
        let single = paths.count == 1 && PathKind(paths[0]) == .directory
        let shownRoot = single ? trimmed(paths[0]) : ""
        func shown(_ sample: Sample) -> String { shownRoot.isEmpty ? sample.relativePath : shownRoot + "/" + sample.relativePath }
        displayRoot = shownRoot
        url = URL(fileURLWithPath: single ? paths[0] : ".")
        classNames = []
        var listed: [Sample] = []
        for path in paths {
            let root = trimmed(path)
            switch PathKind(path) {
            case .missing:
                throw XferError.badInput(root, "no such file or folder", hint: "give image files, folders of images, or an HDF5 DATA file")
            case .directory:
                let folder = URL(fileURLWithPath: path, isDirectory: true)
                let files = Self.imageFiles(below: folder, unlistable: { sub, why in
                    warning(ImageWarning(path: root + (sub.isEmpty ? "" : "/" + sub), message: "cannot list the folder (\(why)), skipped"))
                })
                if files.isEmpty {
                    guard paths.count > 1 else {
                        throw XferError.badInput(root, "holds no images (.jpeg, .jpg, .png) in it or below it",
                                                 hint: "give image files or folders of them")
                    }
                    warning(ImageWarning(path: root, message: "holds no images (.jpeg, .jpg, .png), skipped"))
                }
                for f in files {
                    listed.append(Sample(url: folder.appendingPathComponent(f), relativePath: single ? f : root + "/" + f, label: -1))
                }
            default:
                // A file named on the command line is read whatever its name; what is not a
                // regular file is refused when its header is read (FileChecks.swift).
                listed.append(Sample(url: URL(fileURLWithPath: path), relativePath: path, label: -1))
            }
        }
        var problems = Self.checkHeaders(listed)
        if listed.count == 1, PathKind(paths[0]) != .directory, problems[0] == nil {
            // One image file: decoded now, so damage past its header is the error itself, not a
            // warning followed by "no readable samples".
            do {
                let data = try readRegularFile(listed[0].url.path)
                _ = try data.withUnsafeBytes { try decodeImageBytes($0) }
            } catch let error as ImageDecodeError {
                problems[0] = error.message
            } catch {
                problems[0] = "cannot read the file"
            }
        }
        if listed.count == 1, let problem = problems[0] {
            throw XferError.badInput(listed[0].relativePath, problem, hint: "give a JPEG or PNG image")
        }
        var kept: [Sample] = []
        for (sample, problem) in zip(listed, problems) {
            if let problem {
                warning(ImageWarning(path: shown(sample), message: problem + ", skipped"))
            } else {
                kept.append(sample)
            }
        }
        guard !kept.isEmpty else {
            throw XferError.badInput(paths.count == 1 ? trimmed(paths[0]) : paths.joined(separator: " "),
                                     "none of its \(listed.count) image files can be read",
                                     hint: "the warnings above say what is wrong with each")
        }
        samples = kept
    }

    // MARK: - Listing

    /// Python's sorted() on str: by code point, which is the byte order of UTF-8.
    static func pythonSorted(_ names: [String]) -> [String] {
        names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    private static func classFolders(of url: URL, display: String) throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
            throw XferError.badInput(display, "cannot list the folder")
        }
        return pythonSorted(names).filter { name in
            var isDirectory: ObjCBool = false
            let path = url.appendingPathComponent(name).path
            return !name.hasPrefix(".")
                && FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                && isDirectory.boolValue
        }
    }

    /// The image files below `folder` as "/"-separated relative paths, in Keras's order.
    /// `unlistable` is told each folder (relative path, "" for `folder`) that cannot be listed, and why.
    static func imageFiles(below folder: URL, unlistable: (String, String) -> Void = { _, _ in }) -> [String] {
        // os.walk(folder): (root, files) for every folder, roots sorted by path. All roots share
        // the prefix `folder`, so sorting the relative parts "", "/a", "/a/b" is the same.
        var roots: [(key: String, files: [String])] = []
        func walk(_ directory: URL, key: String) {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else {
                unlistable(String(key.dropFirst()), folderListingProblem(directory.path) ?? "cannot be read")
                return
            }
            var files: [String] = []
            var subfolders: [String] = []
            for name in names {
                let entry = directory.appendingPathComponent(name)
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: entry.path, isDirectory: &isDirectory), isDirectory.boolValue {
                    // Like os.walk(followlinks=False): a symlinked folder is not entered.
                    let type = (try? FileManager.default.attributesOfItem(atPath: entry.path))?[.type] as? FileAttributeType
                    if type != .typeSymbolicLink { subfolders.append(name) }
                } else {
                    files.append(name)
                }
            }
            roots.append((key, files))
            for name in subfolders { walk(directory.appendingPathComponent(name, isDirectory: true), key: key + "/" + name) }
        }
        walk(folder, key: "")
        roots.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        var listed: [String] = []
        for root in roots {
            let prefix = root.key.isEmpty ? "" : String(root.key.dropFirst()) + "/"
            for name in pythonSorted(root.files) {
                let lower = name.lowercased()
                if imageExtensions.contains(where: { lower.hasSuffix($0) }) { listed.append(prefix + name) }
            }
        }
        return listed
    }

    /// For each sample, nil if its header reads as a JPEG or PNG, else what is wrong.
    /// Reads the first 16 KiB of each file, or all of it (up to 256 MiB) when the header runs past that.
    private static func checkHeaders(_ samples: [Sample]) -> [String?] {
        let prefixSize = 16 * 1024
        var problems = [String?](repeating: nil, count: samples.count)
        problems.withUnsafeMutableBufferPointer { problems in
            parallelFor(samples.count) { i, _ in
                let path = samples[i].url.path
                do {
                    // Only regular files, bounded (FileChecks.swift): a FIFO or device never blocks here.
                    var bytes = try readRegularFile(path, prefix: prefixSize)
                    do {
                        _ = try bytes.withUnsafeBytes { try readImageHeader($0) }
                    } catch let error as ImageDecodeError {
                        guard bytes.count == prefixSize else { throw error }
                        bytes = try readRegularFile(path)
                        _ = try bytes.withUnsafeBytes { try readImageHeader($0) }
                    }
                } catch let error as ImageDecodeError {
                    problems[i] = error.message
                } catch {
                    problems[i] = "cannot read the file"
                }
            }
        }
        return problems
    }
}

/// Sample indices that failed to decode, shared by all copies of an ImageFolder.
private final class SampleSet: @unchecked Sendable {
    private let lock = NSLock()
    private var indices = Set<Int>()

    func snapshot() -> Set<Int> { lock.withLock { indices } }
    /// Returns true if `index` was not in the set yet.
    func insert(_ index: Int) -> Bool { lock.withLock { indices.insert(index).inserted } }
}
