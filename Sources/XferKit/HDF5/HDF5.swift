// The only door to libhdf5. Everything above this file speaks Swift: paths are
// "/group/sub/dataset" strings, values come back as Swift arrays, failures are
// thrown `XferError`s that name the file and the object path.
//
// Contract:
// - libhdf5's automatic error-stack printing is switched off before the first
//   call; its messages are collected from the stack and put into the error.
// - Every handle is closed before the function that opened it returns (or in
//   `deinit` for the file itself).
// - The stock Debian build of libhdf5 is not thread-safe, so every call into it
//   runs under one process-wide lock.

import CHDF5
import CXferGuard
import Foundation

/// Serialises all libhdf5 calls of the process.
let hdf5Lock = NSRecursiveLock()

/// Runs libhdf5 calls about `subject` (a file path) under the lock, with the file named for
/// the crash guard (CXferGuard) while they run.
@inline(__always)
func withHDF5<T>(_ subject: String, _ body: () throws -> T) rethrows -> T {
    hdf5Lock.lock()
    xfer_guard_set_subject(subject)
    defer {
        xfer_guard_set_subject(nil)
        hdf5Lock.unlock()
    }
    return try body()
}

private let silenced: Void = {
    xfer_H5_silence_errors()
}()

/// The most specific message on libhdf5's error stack (its innermost entry), then clears it.
func hdf5LastMessage() -> String? {
    final class Box { var messages: [String] = [] }
    let box = Box()
    let walker: H5E_walk2_t = { _, desc, data in
        guard let desc, let data else { return 0 }
        let box = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
        if let text = desc.pointee.desc { box.messages.append(String(cString: text)) }
        return 0
    }
    let ptr = Unmanaged.passUnretained(box).toOpaque()
    _ = H5Ewalk2(xfer_H5E_DEFAULT(), H5E_WALK_UPWARD, walker, ptr)
    _ = H5Eclear2(xfer_H5E_DEFAULT())
    return box.messages.first { !$0.isEmpty }
}

/// What an HDF5 path names.
package enum HDF5ObjectKind: Sendable { case group, dataset }

/// The element kind of a dataset or attribute.
package enum HDF5ValueClass: Sendable { case integer, float, string, other }

/// An open HDF5 file. Reading is by absolute object path.
package final class HDF5File {
    /// The path the user gave, used in every error.
    package let path: String
    let id: hid_t
    /// Keeps an in-memory file image alive while libhdf5 reads it.
    private let image: Data?

    /// The whole file mapped read-only, made on first use by `withContiguousFloats`.
    private var mapping: UnsafeRawBufferPointer?

    private init(path: String, id: hid_t, image: Data? = nil) {
        self.path = path; self.id = id; self.image = image
    }

    deinit {
        if let m = mapping { munmap(UnsafeMutableRawPointer(mutating: m.baseAddress), m.count) }
        withHDF5(path) { _ = H5Fclose(id) }
    }

    // MARK: Opening

    /// Opens an existing file read-only. Checks first what can be checked without libhdf5, so the
    /// common mistakes (missing file, a folder, a FIFO or device, an empty or non-HDF5 file) get
    /// plain messages; then has the probe (CXferGuard) read the whole structure in a child process,
    /// so a file that makes libhdf5 crash, abort, hang or reach outside itself is refused before
    /// libhdf5 runs in this process.
    package static func open(_ path: String) throws -> HDF5File {
        _ = silenced
        try checkRegularFile(path, what: "HDF5 file", hint: "give the checkpoint file itself (.h5, .weights.h5 or .keras)")
        try probe(path, image: nil)
        return try withHDF5(path) {
            let id = H5Fopen(path, xfer_H5F_ACC_RDONLY(), xfer_H5P_DEFAULT())
            if id < 0 {
                let why = hdf5LastMessage() ?? "libhdf5 could not open it"
                throw XferError.badInput(path, "is damaged or truncated (\(why))",
                                         hint: "the file is incomplete; copy or save it again")
            }
            return HDF5File(path: path, id: id)
        }
    }

    /// Refuses what is not a readable, non-empty regular file without opening it, so a FIFO, a
    /// socket or a device never blocks or streams forever.
    static func checkRegularFile(_ path: String, what: String, hint: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == EACCES { throw XferError.badInput(path, "cannot be read (permission denied)") }
            throw XferError.badInput(path, "no such file", hint: "check the path")
        }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw XferError.badInput(path, "is a directory, not an \(what)", hint: hint)
        case S_IFIFO: throw XferError.badInput(path, "is a FIFO (named pipe), not an \(what)", hint: hint)
        case S_IFSOCK: throw XferError.badInput(path, "is a socket, not an \(what)", hint: hint)
        default: throw XferError.badInput(path, "is a device, not an \(what)", hint: hint)
        }
        guard access(path, R_OK) == 0 else { throw XferError.badInput(path, "cannot be read (permission denied)") }
        if st.st_size == 0 {
            throw XferError.badInput(path, "is empty (0 bytes)", hint: "the file was not written completely; save it again")
        }
    }

    /// Processor time the probe may take: generous for a healthy file, whose walk takes
    /// milliseconds plus the reading of any chunked data (its wall time may be six times this, so
    /// a loaded machine does not make a healthy file look damaged). `XFER_HDF5_PROBE_SECONDS`
    /// overrides it.
    static func probeSeconds(bytes: Int) -> Double {
        if let text = ProcessInfo.processInfo.environment["XFER_HDF5_PROBE_SECONDS"], let s = Double(text), s > 0 { return s }
        return 10 + Double(bytes) / 100e6
    }

    /// Address space the probe's child may add to this process's: what a healthy walk needs is
    /// small (attributes, 16 MiB read slabs); more means a crafted size.
    static let probeMemory = 1 << 30

    /// Runs the HDF5 probe (CXferGuard/hdf5_probe.c) on a file or an in-memory image and turns
    /// its verdict into the error xfer reports.
    static func probe(_ path: String, image: Data?) throws {
        var message = [CChar](repeating: 0, count: 2048)
        let seconds = probeSeconds(bytes: image?.count ?? fileSize(path))
        // libhdf5 copies an in-memory image into its own buffer: that copy is allowed on top.
        let memory = probeMemory + (image?.count ?? 0)
        let verdict: Int32 = hdf5Lock.withLock {
            if let image {
                return image.withUnsafeBytes { raw in
                    xfer_hdf5_probe(path, raw.baseAddress, raw.count, seconds, memory, &message, message.count)
                }
            }
            return xfer_hdf5_probe(path, nil, 0, seconds, memory, &message, message.count)
        }
        let text = String(cString: message)
        switch Int(verdict) {
        case Int(XFER_PROBE_OK), Int(XFER_PROBE_UNAVAILABLE):
            return  // unavailable: read in-process, under the fault guard alone
        case Int(XFER_PROBE_REFUSED):
            if text == "!not-hdf5" {
                throw XferError.badInput(path, "is not an HDF5 file",
                                         hint: "xfer reads Keras checkpoints: .h5, .weights.h5 or .keras")
            }
            if text.contains("memory allocation failed") || text.contains("too large to read") {
                let object = text.hasPrefix("!open") ? "its superblock" : text.components(separatedBy: ": ").first ?? text
                throw XferError.badInput(path, "is damaged: reading its structure needs more than \(probeMemory >> 30) GiB of memory (at \(object))",
                                         hint: "the file is corrupt or crafted; copy or save it again")
            }
            if text.hasPrefix("!open: ") {
                throw XferError.badInput(path, "is damaged or truncated (\(text.dropFirst(7)))",
                                         hint: "the file is incomplete; copy or save it again")
            }
            throw XferError.badInput(path, text, hint: "the file is damaged or not a plain Keras checkpoint; save it again with Keras")
        case Int(XFER_PROBE_TIMEOUT):
            throw XferError.badInput(path, "is damaged: libhdf5 did not finish reading its structure within \(Int(seconds.rounded(.up))) s of processor time",
                                     hint: "the file is corrupt (libhdf5 loops on it); copy or save it again")
        default:
            let signal = Int32(text).map { " (signal \($0), \(String(cString: strsignal($0)).lowercased()))" } ?? ""
            throw XferError.badInput(path, "is damaged: libhdf5 crashed reading its structure\(signal)",
                                     hint: "the file is corrupt; copy or save it again")
        }
    }

    private static func fileSize(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Opens an HDF5 file held in memory (e.g. `model.weights.h5` inside a `.keras` zip).
    /// `path` names it in errors.
    package static func open(image: Data, path: String) throws -> HDF5File {
        _ = silenced
        try probe(path, image: image)
        return try withHDF5(path) {
            let fapl = H5Pcreate(xfer_H5P_FILE_ACCESS())
            defer { H5Pclose(fapl) }
            _ = H5Pset_fapl_core(fapl, 1 << 20, false)
            let status = image.withUnsafeBytes { raw in
                H5Pset_file_image(fapl, UnsafeMutableRawPointer(mutating: raw.baseAddress), raw.count)
            }
            guard status >= 0 else {
                throw XferError.badInput(path, "cannot hand the embedded HDF5 file to libhdf5 (\(hdf5LastMessage() ?? "?"))")
            }
            let id = H5Fopen(path, xfer_H5F_ACC_RDONLY(), fapl)
            if id < 0 {
                let why = hdf5LastMessage() ?? "libhdf5 could not open it"
                throw XferError.badInput(path, "is not a readable HDF5 file (\(why))",
                                         hint: "the archive is damaged; save the model again")
            }
            return HDF5File(path: path, id: id, image: image)
        }
    }

    /// Creates (truncates) a file for writing. Callers write to a temporary path and rename.
    package static func create(_ path: String) throws -> HDF5File {
        _ = silenced
        return try withHDF5(path) {
            let id = H5Fcreate(path, xfer_H5F_ACC_TRUNC(), xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT())
            if id < 0 {
                throw XferError.runtime(path, "cannot create HDF5 file (\(hdf5LastMessage() ?? "?"))",
                                        hint: "check that the folder exists and is writable")
            }
            return HDF5File(path: path, id: id)
        }
    }

    /// Creates a file in memory only (libhdf5's core driver, nothing on disk): `fileImage()` gives
    /// its bytes (`fileImage()`), e.g. for `model.weights.h5` inside a `.keras` zip. `path` names it in errors.
    package static func createInMemory(path: String) throws -> HDF5File {
        _ = silenced
        return try withHDF5(path) {
            let fapl = H5Pcreate(xfer_H5P_FILE_ACCESS())
            defer { H5Pclose(fapl) }
            _ = H5Pset_fapl_core(fapl, 1 << 20, false)
            let id = H5Fcreate(path, xfer_H5F_ACC_TRUNC(), xfer_H5P_DEFAULT(), fapl)
            if id < 0 {
                throw XferError.runtime(path, "cannot create an HDF5 file in memory (\(hdf5LastMessage() ?? "?"))")
            }
            return HDF5File(path: path, id: id)
        }
    }

    /// The bytes of the whole file as it stands (flushed first).
    package func fileImage() throws -> Data {
        try flush()
        return try withHDF5(path) {
            let size = H5Fget_file_image(id, nil, 0)
            guard size > 0 else { throw XferError.runtime(path, "cannot read back the HDF5 image (\(hdf5LastMessage() ?? "?"))") }
            var data = Data(count: size)
            let got = data.withUnsafeMutableBytes { H5Fget_file_image(id, $0.baseAddress, size) }
            guard got == size else { throw XferError.runtime(path, "cannot read back the HDF5 image (\(hdf5LastMessage() ?? "?"))") }
            return data
        }
    }

    /// Writes everything to disk; called before renaming a finished output into place.
    package func flush() throws {
        try withHDF5(path) {
            if H5Fflush(id, H5F_SCOPE_GLOBAL) < 0 {
                throw XferError.runtime(path, "cannot write (\(hdf5LastMessage() ?? "?"))", hint: "is the disk full?")
            }
        }
    }

    // MARK: Errors

    func fail(_ object: String, _ what: String) -> XferError {
        let why = hdf5LastMessage()
        let detail = why.map { "\(what) (\($0))" } ?? what
        return XferError.badInput(path, "\(object): \(detail)",
                                  hint: "the file is damaged or not a checkpoint xfer can read")
    }

    // MARK: Navigating

    /// True if every component of `objectPath` exists.
    package func exists(_ objectPath: String) -> Bool {
        withHDF5(path) {
            let parts = objectPath.split(separator: "/", omittingEmptySubsequences: true)
            var current = ""
            for part in parts {
                current += "/" + part
                if H5Lexists(id, current, xfer_H5P_DEFAULT()) <= 0 { _ = hdf5LastMessage(); return false }
            }
            return true
        }
    }

    package func kind(_ objectPath: String) -> HDF5ObjectKind? {
        guard exists(objectPath) else { return nil }
        return withHDF5(path) {
            let obj = H5Oopen(id, objectPath, xfer_H5P_DEFAULT())
            guard obj >= 0 else { _ = hdf5LastMessage(); return nil }
            defer { H5Oclose(obj) }
            switch H5Iget_type(obj) {
            case H5I_GROUP: return .group
            case H5I_DATASET: return .dataset
            default: return nil
            }
        }
    }

    /// Names of a group's members, in libhdf5's name order.
    package func children(_ groupPath: String) throws -> [String] {
        try withHDF5(path) {
            let g = H5Gopen2(id, groupPath, xfer_H5P_DEFAULT())
            guard g >= 0 else { throw fail(groupPath, "cannot open group") }
            defer { H5Gclose(g) }
            var info = H5G_info_t()
            guard H5Gget_info(g, &info) >= 0 else { throw fail(groupPath, "cannot list group") }
            var names: [String] = []
            for i in 0..<info.nlinks {
                let n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, xfer_H5P_DEFAULT())
                guard n >= 0 else { throw fail(groupPath, "cannot list group") }
                var buf = [CChar](repeating: 0, count: Int(n) + 1)
                _ = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, Int(n) + 1, xfer_H5P_DEFAULT())
                names.append(String(cString: buf))
            }
            return names
        }
    }

    // MARK: Attributes

    package func hasAttribute(_ objectPath: String, _ name: String) -> Bool {
        withHDF5(path) {
            let r = H5Aexists_by_name(id, objectPath, name, xfer_H5P_DEFAULT())
            if r < 0 { _ = hdf5LastMessage() }
            return r > 0
        }
    }

    /// A string-list attribute in any form Keras files hold: variable- or fixed-length, ASCII or
    /// UTF-8, scalar or array; an empty numeric array (Keras's `weight_names` of a weightless
    /// layer) reads as `[]`. A list chunked as `name0`, `name1`, ... (over 64 KB) is joined.
    package func strings(_ objectPath: String, _ name: String) throws -> [String]? {
        if hasAttribute(objectPath, name) { return try readStringAttribute(objectPath, name) }
        guard hasAttribute(objectPath, "\(name)0") else { return nil }
        var all: [String] = []
        var k = 0
        while hasAttribute(objectPath, "\(name)\(k)") {
            all += try readStringAttribute(objectPath, "\(name)\(k)")
            k += 1
        }
        return all
    }

    /// A single string attribute (scalar, or the first element of an array).
    package func string(_ objectPath: String, _ name: String) throws -> String? {
        guard hasAttribute(objectPath, name) else { return nil }
        return try readStringAttribute(objectPath, name).first
    }

    private func readStringAttribute(_ objectPath: String, _ name: String) throws -> [String] {
        try withHDF5(path) {
            let what = "\(objectPath) attribute '\(name)'"
            let attr = H5Aopen_by_name(id, objectPath, name, xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT())
            guard attr >= 0 else { throw fail(what, "cannot open") }
            defer { H5Aclose(attr) }
            let space = H5Aget_space(attr)
            guard space >= 0 else { throw fail(what, "cannot read its shape") }
            defer { H5Sclose(space) }
            let count = Int(H5Sget_simple_extent_npoints(space))
            let ftype = H5Aget_type(attr)
            guard ftype >= 0 else { throw fail(what, "cannot read its type") }
            defer { H5Tclose(ftype) }
            let tclass = H5Tget_class(ftype)
            if tclass != H5T_STRING {
                // Keras writes an empty list as a float64 array of shape (0,).
                if count == 0 { return [] }
                throw XferError.badInput(path, "\(what): expected text, found a \(tclass == H5T_FLOAT ? "float" : "non-text") attribute",
                                         hint: "the file is not a Keras checkpoint")
            }
            if count == 0 { return [] }
            let cset = H5Tget_cset(ftype)
            if H5Tis_variable_str(ftype) > 0 {
                let mtype = H5Tcopy(xfer_H5T_C_S1())
                defer { H5Tclose(mtype) }
                H5Tset_size(mtype, xfer_H5T_VARIABLE())
                H5Tset_cset(mtype, cset)
                var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
                guard H5Aread(attr, mtype, &ptrs) >= 0 else { throw fail(what, "cannot read") }
                defer { _ = H5Dvlen_reclaim(mtype, space, xfer_H5P_DEFAULT(), &ptrs) }
                return ptrs.map { $0.map { String(cString: $0) } ?? "" }
            } else {
                let size = H5Tget_size(ftype)
                guard size > 0 else { return Array(repeating: "", count: count) }
                var bytes = [UInt8](repeating: 0, count: size * count)
                guard H5Aread(attr, ftype, &bytes) >= 0 else { throw fail(what, "cannot read") }
                return (0..<count).map { i in
                    var piece = bytes[(i * size)..<((i + 1) * size)]
                    // NULLPAD / NULLTERM / SPACEPAD: cut at the first NUL, trim padding spaces.
                    if let nul = piece.firstIndex(of: 0) { piece = piece[piece.startIndex..<nul] }
                    let text = String(decoding: piece, as: UTF8.self)
                    return H5Tget_strpad(ftype) == H5T_STR_SPACEPAD
                        ? String(text.reversed().drop { $0 == " " }.reversed()) : text
                }
            }
        }
    }

    // MARK: Datasets

    package func shape(_ datasetPath: String) throws -> [Int] {
        try withHDF5(path) {
            let ds = H5Dopen2(id, datasetPath, xfer_H5P_DEFAULT())
            guard ds >= 0 else { throw fail(datasetPath, "cannot open dataset") }
            defer { H5Dclose(ds) }
            return try shape(of: ds, datasetPath)
        }
    }

    private func shape(of ds: hid_t, _ what: String) throws -> [Int] {
        let space = H5Dget_space(ds)
        guard space >= 0 else { throw fail(what, "cannot read its shape") }
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank >= 0 else { throw fail(what, "cannot read its shape") }
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        _ = H5Sget_simple_extent_dims(space, &dims, nil)
        // Every size read from a file is checked before Swift does arithmetic with it: no element
        // count above 2^48 (a petabyte of floats) is real, and checking it here keeps every
        // product of these dimensions from overflowing.
        var count: UInt64 = 1
        for d in dims.prefix(rank) {
            let (p, overflow) = count.multipliedReportingOverflow(by: UInt64(d))
            guard !overflow, p <= 1 << 48 else {
                throw XferError.badInput(path, "\(what): declares an impossible shape (\(dims.prefix(rank).map { String($0) }.joined(separator: " × ")) values)",
                                         hint: "the file is damaged; copy or save it again")
            }
            count = p
        }
        return dims.prefix(rank).map { Int($0) }
    }

    package func valueClass(_ datasetPath: String) throws -> HDF5ValueClass {
        try withHDF5(path) {
            let ds = H5Dopen2(id, datasetPath, xfer_H5P_DEFAULT())
            guard ds >= 0 else { throw fail(datasetPath, "cannot open dataset") }
            defer { H5Dclose(ds) }
            let t = H5Dget_type(ds)
            defer { H5Tclose(t) }
            switch H5Tget_class(t) {
            case H5T_INTEGER: return .integer
            case H5T_FLOAT: return .float
            case H5T_STRING: return .string
            default: return .other
            }
        }
    }

    /// Reads a numeric dataset of any integer or float type as float32 (libhdf5 converts).
    package func floats(_ datasetPath: String) throws -> (shape: [Int], values: [Float]) {
        try read(datasetPath, memType: xfer_H5T_NATIVE_FLOAT(), zero: Float(0))
    }

    package func doubles(_ datasetPath: String) throws -> (shape: [Int], values: [Double]) {
        try read(datasetPath, memType: xfer_H5T_NATIVE_DOUBLE(), zero: Double(0))
    }

    package func int64s(_ datasetPath: String) throws -> (shape: [Int], values: [Int64]) {
        try read(datasetPath, memType: xfer_H5T_NATIVE_INT64(), zero: Int64(0))
    }

    /// Reads `rows` rows starting at `first` of a dataset whose first axis is the sample axis,
    /// as float32; memory stays bounded by the slice.
    package func floats(_ datasetPath: String, rows first: Int, count rows: Int) throws -> [Float] {
        try withHDF5(path) {
            let ds = H5Dopen2(id, datasetPath, xfer_H5P_DEFAULT())
            guard ds >= 0 else { throw fail(datasetPath, "cannot open dataset") }
            defer { H5Dclose(ds) }
            let dims = try shape(of: ds, datasetPath)
            guard !dims.isEmpty, first >= 0, first + rows <= dims[0] else {
                throw XferError.badInput(path, "\(datasetPath): rows \(first)..<\(first + rows) out of range")
            }
            let fspace = H5Dget_space(ds)
            defer { H5Sclose(fspace) }
            var start = [hsize_t](repeating: 0, count: dims.count)
            var count = dims.map { hsize_t($0) }
            start[0] = hsize_t(first); count[0] = hsize_t(rows)
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nil, count, nil)
            let mspace = H5Screate_simple(Int32(dims.count), count, nil)
            defer { H5Sclose(mspace) }
            let n = count.reduce(1) { $0 * Int($1) }
            var out = [Float](repeating: 0, count: n)
            let st = out.withUnsafeMutableBytes { H5Dread(ds, xfer_H5T_NATIVE_FLOAT(), mspace, fspace, xfer_H5P_DEFAULT(), $0.baseAddress) }
            guard st >= 0 else { throw fail(datasetPath, "cannot read data") }
            return out
        }
    }

    /// Hands `body` the values of a dataset straight from the mapped file, without copying, when
    /// the dataset is stored as Keras stores weights: contiguous, unfiltered, little-endian float32.
    /// Returns nil (and calls nothing) for any other layout. Throws if the data lies outside the
    /// file (a truncated file).
    package func withContiguousFloats<R>(_ datasetPath: String, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R? {
        guard image == nil else { return nil }
        let extent: (offset: Int, count: Int)? = try withHDF5(path) {
            let ds = H5Dopen2(id, datasetPath, xfer_H5P_DEFAULT())
            guard ds >= 0 else { throw fail(datasetPath, "cannot open dataset") }
            defer { H5Dclose(ds) }
            let t = H5Dget_type(ds)
            defer { H5Tclose(t) }
            let dcpl = H5Dget_create_plist(ds)
            defer { H5Pclose(dcpl) }
            guard H5Tequal(t, H5T_IEEE_F32LE_g) > 0, H5Pget_layout(dcpl) == H5D_CONTIGUOUS, H5Pget_nfilters(dcpl) == 0 else {
                _ = hdf5LastMessage()
                return nil
            }
            let count = try shape(of: ds, datasetPath).reduce(1, *)
            if count == 0 { return (0, 0) }
            let offset = H5Dget_offset(ds)
            guard offset != haddr_t.max else { _ = hdf5LastMessage(); return nil }  // not allocated
            return (Int(offset), count)
        }
        guard let extent else { return nil }
        if extent.count == 0 { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        // Data that does not start on a float boundary (a packed file) is read through libhdf5.
        guard extent.offset % 4 == 0 else { return nil }
        let map = try mapped()
        guard extent.offset >= 0, extent.offset + extent.count * 4 <= map.count else {
            throw XferError.badInput(path, "\(datasetPath): its data lies beyond the end of the file",
                                     hint: "the file is truncated; copy or save it again")
        }
        let start = (map.baseAddress! + extent.offset).assumingMemoryBound(to: Float.self)
        return try body(UnsafeBufferPointer(start: start, count: extent.count))
    }

    private func mapped() throws -> UnsafeRawBufferPointer {
        if let m = mapping { return m }
        let fd = Foundation.open(path, O_RDONLY)
        guard fd >= 0 else { throw XferError.badInput(path, "cannot be opened (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw XferError.badInput(path, "cannot be read") }
        let size = Int(st.st_size)
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw XferError.badInput(path, "cannot be mapped into memory (\(String(cString: strerror(errno))))")
        }
        let m = UnsafeRawBufferPointer(start: p, count: size)
        mapping = m
        return m
    }

    /// Reads a numeric dataset as float32 through a bounded buffer (about `bufferBytes`), handing
    /// each piece to `body`; memory stays small whatever the dataset's size.
    package func scanFloats(_ datasetPath: String, bufferBytes: Int = 256 << 10,
                           _ body: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        try withHDF5(path) {
            let ds = H5Dopen2(id, datasetPath, xfer_H5P_DEFAULT())
            guard ds >= 0 else { throw fail(datasetPath, "cannot open dataset") }
            defer { H5Dclose(ds) }
            let dims = try shape(of: ds, datasetPath)
            let total = dims.reduce(1, *)
            guard total > 0 else { return }
            if dims.count == 0 {
                var v: Float = 0
                guard H5Dread(ds, xfer_H5T_NATIVE_FLOAT(), xfer_H5S_ALL(), xfer_H5S_ALL(), xfer_H5P_DEFAULT(), &v) >= 0 else {
                    throw fail(datasetPath, "cannot read data (the file may be truncated or damaged)")
                }
                try withUnsafePointer(to: &v) { try body(UnsafeBufferPointer(start: $0, count: 1)) }
                return
            }
            let rowSize = total / dims[0]
            let rowsPerPiece = max(1, bufferBytes / 4 / max(rowSize, 1))
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: rowsPerPiece * rowSize)
            defer { buffer.deallocate() }
            let fspace = H5Dget_space(ds)
            defer { H5Sclose(fspace) }
            var first = 0
            while first < dims[0] {
                let rows = min(rowsPerPiece, dims[0] - first)
                var start = [hsize_t](repeating: 0, count: dims.count)
                var count = dims.map { hsize_t($0) }
                start[0] = hsize_t(first); count[0] = hsize_t(rows)
                H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, nil, count, nil)
                let mspace = H5Screate_simple(Int32(dims.count), count, nil)
                let st = H5Dread(ds, xfer_H5T_NATIVE_FLOAT(), mspace, fspace, xfer_H5P_DEFAULT(), buffer.baseAddress)
                H5Sclose(mspace)
                guard st >= 0 else { throw fail(datasetPath, "cannot read data (the file may be truncated or damaged)") }
                try body(UnsafeBufferPointer(rebasing: buffer[0..<(rows * rowSize)]))
                first += rows
            }
        }
    }

    private func read<T>(_ datasetPath: String, memType: hid_t, zero: T) throws -> (shape: [Int], values: [T]) {
        try withHDF5(path) {
            let ds = H5Dopen2(id, datasetPath, xfer_H5P_DEFAULT())
            guard ds >= 0 else { throw fail(datasetPath, "cannot open dataset") }
            defer { H5Dclose(ds) }
            let t = H5Dget_type(ds)
            let tclass = H5Tget_class(t)
            H5Tclose(t)
            guard tclass == H5T_FLOAT || tclass == H5T_INTEGER else {
                throw XferError.badInput(path, "\(datasetPath): not a numeric dataset",
                                         hint: "the file is not a Keras checkpoint xfer can read")
            }
            let dims = try shape(of: ds, datasetPath)
            let n = dims.reduce(1, *)
            var status: herr_t = 0
            let values = [T](unsafeUninitializedCapacity: n) { buf, initialized in
                status = n == 0 ? 0 : H5Dread(ds, memType, xfer_H5S_ALL(), xfer_H5S_ALL(), xfer_H5P_DEFAULT(), buf.baseAddress)
                if status < 0 { for i in 0..<n { (buf.baseAddress! + i).initialize(to: zero) } }
                initialized = n
            }
            guard status >= 0 else { throw fail(datasetPath, "cannot read data (the file may be truncated or damaged)") }
            return (dims, values)
        }
    }

    // MARK: Writing (files xfer creates)

    /// Creates a group and any missing parents.
    package func createGroup(_ groupPath: String) throws {
        try withHDF5(path) {
            if H5Lexists(id, groupPath, xfer_H5P_DEFAULT()) > 0 { return }
            _ = hdf5LastMessage()
            let lcpl = H5Pcreate(xfer_H5P_LINK_CREATE())
            defer { H5Pclose(lcpl) }
            H5Pset_create_intermediate_group(lcpl, 1)
            // No modification times in object headers: the same model gives the same bytes.
            let gcpl = H5Pcreate(xfer_H5P_GROUP_CREATE())
            defer { H5Pclose(gcpl) }
            H5Pset_obj_track_times(gcpl, false)
            let g = H5Gcreate2(id, groupPath, lcpl, gcpl, xfer_H5P_DEFAULT())
            guard g >= 0 else { throw writeFail(groupPath) }
            H5Gclose(g)
        }
    }

    private func writeFail(_ object: String) -> XferError {
        XferError.runtime(path, "\(object): cannot write (\(hdf5LastMessage() ?? "libhdf5 failed"))", hint: "is the disk full?")
    }

    /// Writes a float32 dataset (contiguous, like h5py's `create_dataset`); parents are created.
    package func write(_ datasetPath: String, shape: [Int], floats values: [Float]) throws {
        precondition(shape.reduce(1, *) == values.count)
        try write(datasetPath, shape: shape, fileType: H5T_IEEE_F32LE_g, memType: xfer_H5T_NATIVE_FLOAT(), values)
    }

    package func write(_ datasetPath: String, shape: [Int], int64s values: [Int64]) throws {
        try write(datasetPath, shape: shape, fileType: H5T_STD_I64LE_g, memType: xfer_H5T_NATIVE_INT64(), values)
    }

    private func write<T>(_ datasetPath: String, shape: [Int], fileType: hid_t, memType: hid_t, _ values: [T]) throws {
        let parent = (datasetPath as NSString).deletingLastPathComponent
        if parent != "/" && !parent.isEmpty { try createGroup(parent) }
        try withHDF5(path) {
            let dims = shape.map { hsize_t($0) }
            let space = shape.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), dims, nil)
            defer { H5Sclose(space) }
            let dcpl = H5Pcreate(xfer_H5P_DATASET_CREATE())
            defer { H5Pclose(dcpl) }
            H5Pset_obj_track_times(dcpl, false)
            let ds = H5Dcreate2(id, datasetPath, fileType, space, xfer_H5P_DEFAULT(), dcpl, xfer_H5P_DEFAULT())
            guard ds >= 0 else { throw writeFail(datasetPath) }
            defer { H5Dclose(ds) }
            let st = values.withUnsafeBytes { H5Dwrite(ds, memType, xfer_H5S_ALL(), xfer_H5S_ALL(), xfer_H5P_DEFAULT(), $0.baseAddress) }
            guard st >= 0 else { throw writeFail(datasetPath) }
        }
    }

    /// A string-list attribute as h5py 3 writes Keras's lists of `bytes`: a 1-D array of
    /// variable-length ASCII strings. An empty list becomes a float64 array of shape (0,),
    /// as Keras writes it (`np.asarray([])`). Lists over 64 KB are chunked as Keras does.
    package func setStrings(_ objectPath: String, _ name: String, _ list: [String]) throws {
        if list.isEmpty {
            try withHDF5(path) {
                let dims: [hsize_t] = [0]
                let space = H5Screate_simple(1, dims, nil)
                defer { H5Sclose(space) }
                let a = H5Acreate_by_name(id, objectPath, name, H5T_IEEE_F64LE_g, space, xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT())
                guard a >= 0 else { throw writeFail("\(objectPath) attribute '\(name)'") }
                H5Aclose(a)
            }
            return
        }
        // HDF5_OBJECT_HEADER_LIMIT in Keras's save_attributes_to_hdf5_group.
        let limit = 64512
        let longest = list.map { $0.utf8.count }.max() ?? 0
        var chunks = 1
        func pieces(_ k: Int) -> [ArraySlice<String>] {
            // np.array_split: the first (n % k) pieces get one extra element.
            let base = list.count / k, extra = list.count % k
            var out: [ArraySlice<String>] = []
            var start = 0
            for i in 0..<k {
                let len = base + (i < extra ? 1 : 0)
                out.append(list[start..<(start + len)]); start += len
            }
            return out
        }
        while pieces(chunks).contains(where: { $0.count * longest > limit }) { chunks += 1 }
        if chunks == 1 {
            try writeStringAttribute(objectPath, name, list, variable: true, utf8: false, scalar: false)
        } else {
            for (i, piece) in pieces(chunks).enumerated() {
                try writeStringAttribute(objectPath, "\(name)\(i)", Array(piece), variable: false, utf8: false, scalar: false)
            }
        }
    }

    /// A scalar string attribute: variable-length, ASCII (Keras's `bytes`) or UTF-8 (`str`).
    package func setString(_ objectPath: String, _ name: String, _ value: String, utf8: Bool) throws {
        try writeStringAttribute(objectPath, name, [value], variable: true, utf8: utf8, scalar: true)
    }

    private func writeStringAttribute(_ objectPath: String, _ name: String, _ list: [String],
                                      variable: Bool, utf8: Bool, scalar: Bool) throws {
        try withHDF5(path) {
            let what = "\(objectPath) attribute '\(name)'"
            if H5Aexists_by_name(id, objectPath, name, xfer_H5P_DEFAULT()) > 0 {
                H5Adelete_by_name(id, objectPath, name, xfer_H5P_DEFAULT())
            }
            let t = H5Tcopy(xfer_H5T_C_S1())
            defer { H5Tclose(t) }
            H5Tset_cset(t, utf8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII)
            let space: hid_t
            if scalar {
                space = H5Screate(H5S_SCALAR)
            } else {
                let dims = [hsize_t(list.count)]
                space = H5Screate_simple(1, dims, nil)
            }
            defer { H5Sclose(space) }
            if variable {
                H5Tset_size(t, xfer_H5T_VARIABLE())
                H5Tset_strpad(t, H5T_STR_NULLTERM)
                let a = H5Acreate_by_name(id, objectPath, name, t, space, xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT())
                guard a >= 0 else { throw writeFail(what) }
                defer { H5Aclose(a) }
                let cstrings = list.map { strdup($0) }
                defer { cstrings.forEach { free($0) } }
                var ptrs: [UnsafePointer<CChar>?] = cstrings.map { UnsafePointer($0) }
                guard H5Awrite(a, t, &ptrs) >= 0 else { throw writeFail(what) }
            } else {
                let size = max(1, list.map { $0.utf8.count }.max() ?? 1)
                H5Tset_size(t, size)
                H5Tset_strpad(t, H5T_STR_NULLPAD)
                let a = H5Acreate_by_name(id, objectPath, name, t, space, xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT(), xfer_H5P_DEFAULT())
                guard a >= 0 else { throw writeFail(what) }
                defer { H5Aclose(a) }
                var bytes = [UInt8](repeating: 0, count: size * list.count)
                for (i, s) in list.enumerated() {
                    for (j, b) in s.utf8.enumerated() { bytes[i * size + j] = b }
                }
                guard H5Awrite(a, t, bytes) >= 0 else { throw writeFail(what) }
            }
        }
    }
}
