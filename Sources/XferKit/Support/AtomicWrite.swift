// Output files (docs/CONTRACT.md, "Outputs"): every file a command will write is checked
// before any work (`checkOutputs`), then written into a temporary file beside its target and
// renamed into place only when complete (`writeAtomically`), so that
// - a command never writes over its inputs, nor two of its outputs over each other;
// - only regular files are replaced: a device (/dev/null), FIFO, socket or folder is refused;
// - an existing symlink is written through: the file it points at is replaced, the link stays;
// - a failure, Ctrl-C, SIGTERM or SIGHUP leaves either the old file or the complete new one,
//   never a partial file or a temporary one (the CLI's signal thread removes the temporary
//   files registered here before it exits, see CXferGuard);
// - a temporary file left by a killed run (`.<name>.<pid>.tmp`, its pid no longer running) is
//   removed by the next run that writes there.

import CXferGuard
import Foundation

/// A file a command reads or writes, with the flag (or argument name) that gave it, for errors.
package struct CommandFile: Sendable, Equatable {
    /// `--output`, `--data`, ..., or `CHECKPOINT` for the positional argument.
    package var flag: String
    package var path: String

    package init(_ flag: String, _ path: String) {
        self.flag = flag; self.path = path
    }

    /// "the checkpoint", "the --data input"
    var inputName: String { flag == "CHECKPOINT" ? "the checkpoint" : "the \(flag) input" }
}

/// Checks, before any work, the files a command will write: each must be a file name in an
/// existing, writable folder, must not be a device, FIFO, socket or folder, and must differ
/// from every input and every other output (compared by resolved real path, and by device and
/// inode, so symlinks and hard links count). Throws a usage error (exit 2) naming the flag and
/// the path. `inputs` that do not exist are compared by path only (their own error comes later).
package func checkOutputs(_ outputs: [CommandFile], inputs: [CommandFile]) throws {
    let inputIDs = inputs.map { ($0, FileIdentity($0.path)) }
    var seen: [(CommandFile, FileIdentity)] = []
    for output in outputs {
        let target = try OutputTarget(output.path, subject: "\(output.flag) \(output.path)")
        let id = FileIdentity(target.path)
        if let (input, _) = inputIDs.first(where: { $0.1.same(as: id) }) {
            throw XferError.usage("\(output.flag) \(output.path)", "is \(input.inputName) this command reads; xfer never overwrites its inputs",
                                  hint: "choose another file name for \(output.flag)")
        }
        if let (other, _) = seen.first(where: { $0.1.same(as: id) }) {
            throw XferError.usage("\(output.flag) \(output.path)", "is also the \(other.flag) file; every output needs a file of its own",
                                  hint: "give \(output.flag) and \(other.flag) different file names")
        }
        try target.checkWritable()
        seen.append((output, id))
    }
}

/// Writes `path` the safe way: `create` makes the file at a temporary path beside the target
/// (e.g. `HDF5File.create`), `body` fills it, then it is synced to disk and renamed over the
/// target, and the folder is synced. A failure removes the temporary file and leaves the target
/// as it was; the error names `path` and fits on one line. Refuses (usage error) to write over
/// any of `inputs`, or to a target that is not a regular file. An existing symlink is written
/// through. The file is closed when `body` returns and the last reference to it goes.
package func writeAtomically<File>(_ path: String, protecting inputs: [String] = [],
                                  create: (String) throws -> File, _ body: (File) throws -> Void) throws {
    let target = try OutputTarget(path, subject: path)
    let id = FileIdentity(target.path)
    for input in inputs where FileIdentity(input).same(as: id) {
        throw XferError.usage(path, "is an input of this command; xfer never overwrites its inputs",
                              hint: "choose another output file name")
    }
    try target.checkFolder()
    target.removeStaleTemporaries()
    let temp = target.temporaryPath
    let slot = xfer_interrupt_track_temp(temp)
    defer { xfer_interrupt_untrack_temp(slot) }
    var created = false
    do {
        var file: File?
        do {
            defer { xfer_interrupt_temp_created() }
            // Ours alone: a stale file or planted link of that name is gone (removed above), so
            // O_EXCL fails only if something raced us; `create` then reopens and truncates it.
            let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
            if fd < 0 { throw target.failure("cannot create a file in \(target.folder)", errno) }
            close(fd)
            created = true
            file = try create(temp)
        }
        try body(file!)
        file = nil
        try target.finish(temp)
    } catch {
        if created { unlink(temp) }
        throw target.oneLine(error, temp: temp)
    }
}

/// The earlier form: `body` gets the temporary path, already created empty, and opens it itself
/// (truncating, never creating it anew). Prefer `create:`, which also covers the opening call
/// against a second Ctrl-C arriving in between.
package func writeAtomically(_ path: String, protecting inputs: [String] = [], _ body: (String) throws -> Void) throws {
    try writeAtomically(path, protecting: inputs, create: { $0 }, body)
}

/// `writeAtomically` for bytes already in memory (CSV, SVG, ...).
package func writeAtomically(_ path: String, protecting inputs: [String] = [], contents: Data) throws {
    try writeAtomically(path, protecting: inputs, create: { temp -> Int32 in
        let fd = open(temp, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw XferError.runtime(path, "cannot write (\(String(cString: strerror(errno))))") }
        return fd
    }) { fd in
        defer { close(fd) }
        try contents.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { throw XferError.runtime(path, "cannot write (\(String(cString: strerror(n < 0 ? errno : EIO))))") }
                offset += n
            }
        }
    }
}

// MARK: - Implementation

/// Where an output really goes: symlinks followed to the file they name (which may not exist
/// yet), in a folder given by its real path.
struct OutputTarget {
    /// What errors name (the flag and path, or just the path).
    let subject: String
    /// The user's path, for messages about it.
    let given: String
    /// The file to replace: symlinks resolved, in a real folder path.
    let path: String
    let folder: String
    let name: String

    init(_ given: String, subject: String) throws {
        self.subject = subject
        self.given = given
        if given.isEmpty { throw XferError.usage(subject, "is empty; give a file name") }
        if given.hasSuffix("/") {
            throw XferError.usage(subject, "names a folder; give a file name", hint: "e.g. \(given)model.h5")
        }
        var current = Self.absolute(given)
        var hops = 0
        while true {
            var st = stat()
            guard lstat(current, &st) == 0, (st.st_mode & S_IFMT) == S_IFLNK else { break }
            hops += 1
            guard hops <= 40, let link = Self.readLink(current) else {
                throw XferError.usage(subject, "is a symlink that cannot be followed (a loop or too many links)")
            }
            current = link.hasPrefix("/") ? link : (current as NSString).deletingLastPathComponent + "/" + link
        }
        let dir = (current as NSString).deletingLastPathComponent
        name = (current as NSString).lastPathComponent
        if name == "." || name == ".." || name.isEmpty {
            throw XferError.usage(subject, "names a folder; give a file name")
        }
        if let real = realpath(dir, nil) {
            folder = String(cString: real)
            free(real)
        } else {
            folder = (dir as NSString).standardizingPath
        }
        path = (folder == "/" ? "" : folder) + "/" + name
    }

    static func absolute(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        return FileManager.default.currentDirectoryPath + "/" + p
    }

    static func readLink(_ p: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(p, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        buffer[n] = 0
        return String(cString: buffer)
    }

    var temporaryPath: String { "\(folder)/.\(name).\(getpid()).tmp" }

    /// The folder exists and the target, if it exists, is a regular file.
    func checkFolder() throws {
        var st = stat()
        if stat(folder, &st) != 0 || (st.st_mode & S_IFMT) != S_IFDIR {
            let shown = (given as NSString).deletingLastPathComponent
            throw XferError.usage(subject, "the folder \(shown.isEmpty ? folder : shown) does not exist",
                                  hint: "create it first (mkdir -p \(shown.isEmpty ? folder : shown))")
        }
        if lstat(path, &st) == 0 {
            let kind: String?
            switch st.st_mode & S_IFMT {
            case S_IFREG: kind = nil
            case S_IFDIR: kind = "a folder"
            case S_IFCHR: kind = "a character device"
            case S_IFBLK: kind = "a block device"
            case S_IFIFO: kind = "a FIFO (named pipe)"
            case S_IFSOCK: kind = "a socket"
            default: kind = "not a regular file"
            }
            if let kind {
                throw XferError.usage(subject, "is \(kind), not a regular file; xfer writes its outputs as whole files and replaces only regular files",
                                      hint: st.st_mode & S_IFMT == S_IFDIR ? "give the name of a file inside that folder" : "give the name of a file to create or replace")
            }
        }
    }

    /// `checkFolder`, then creates and removes the temporary file once, so an unwritable folder
    /// (permissions, a read-only disk) is reported now rather than after the work.
    func checkWritable() throws {
        try checkFolder()
        removeStaleTemporaries()
        let temp = temporaryPath
        let slot = xfer_interrupt_track_temp(temp)
        defer { xfer_interrupt_untrack_temp(slot) }
        let fd: Int32
        let err: Int32
        do {
            defer { xfer_interrupt_temp_created() }
            fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
            err = errno
            if fd >= 0 { close(fd); unlink(temp) }
        }
        if fd < 0 {
            let shown = (given as NSString).deletingLastPathComponent
            let where_ = shown.isEmpty ? "the current folder (\(folder))" : "the folder \(shown)"
            if err == EACCES || err == EPERM || err == EROFS {
                throw XferError.usage(subject, "\(where_) is not writable (\(String(cString: strerror(err))))",
                                      hint: "choose a folder you can write to")
            }
            throw XferError.runtime(subject, "cannot create a file in \(where_) (\(String(cString: strerror(err))))")
        }
    }

    /// Removes `.<name>.<pid>.tmp` files beside the target whose pid is no longer running (or is
    /// this process's own: it has no write of this file in flight here). Nothing else is touched.
    func removeStaleTemporaries() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        let prefix = ".\(name).", suffix = ".tmp"
        for entry in entries where entry.hasPrefix(prefix) && entry.hasSuffix(suffix) && entry.count > prefix.count + suffix.count {
            let digits = entry.dropFirst(prefix.count).dropLast(suffix.count)
            guard digits.count <= 10, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let pid = Int32(digits), pid > 0 else { continue }
            if pid != getpid() && (kill(pid, 0) == 0 || errno == EPERM) { continue }
            let stale = "\(folder)/\(entry)"
            var st = stat()
            guard lstat(stale, &st) == 0, [S_IFREG, S_IFLNK].contains(st.st_mode & S_IFMT) else { continue }
            unlink(stale)
        }
    }

    /// Syncs the finished temporary file, gives it the replaced file's permissions, renames it
    /// over the target and syncs the folder.
    func finish(_ temp: String) throws {
        let fd = open(temp, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 { throw failure("cannot write", errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw failure("cannot write", errno) }
        var old = stat()
        if stat(path, &old) == 0 { _ = fchmod(fd, old.st_mode & 0o7777) }
        pauseBeforeRenameForTests(temp)
        if rename(temp, path) != 0 { throw failure("cannot move the finished file into place", errno) }
        let dir = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)   // some file systems refuse to sync a folder; the rename is done either way
            close(dir)
        }
    }

    func failure(_ what: String, _ code: Int32) -> XferError {
        XferError.runtime(given, "\(what) (\(String(cString: strerror(code))))", hint: Self.hint(code))
    }

    static func hint(_ code: Int32) -> String? {
        switch code {
        case ENOSPC, EDQUOT: return "the disk is full: free some space or write elsewhere; nothing was written"
        case EFBIG: return "the file is larger than this process may write (ulimit -f) or the file system allows"
        case EACCES, EPERM, EROFS: return "choose a folder you can write to"
        default: return nil
        }
    }

    /// The error of a failed write as one line about `given`: the temporary path is replaced by
    /// the user's, and libhdf5's multi-line "file write failed: ... errno = 28, error message =
    /// '...'" becomes its error message.
    func oneLine(_ error: Error, temp: String) -> Error {
        guard var e = error as? XferError else {
            return XferError.runtime(given, "cannot write (\(String(describing: error).split(separator: "\n").first ?? ""))")
        }
        let fix = { (s: String) in s.replacingOccurrences(of: temp, with: given) }
        e.subject = fix(e.subject)
        var message = fix(e.message)
        if e.kind == .runtime, let code = Self.errnoValue(in: message) {
            message = "cannot write (\(String(cString: strerror(code))))"
            e.hint = Self.hint(code) ?? e.hint
            if e.subject != given { e.subject = given }
        }
        e.message = message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        if let hint = e.hint { e.hint = fix(hint).split(whereSeparator: \.isNewline).joined(separator: " ") }
        return e
    }

    /// `errno = 28` in a libhdf5 message.
    static func errnoValue(in message: String) -> Int32? {
        guard let r = message.range(of: "errno = ") else { return nil }
        let digits = message[r.upperBound...].prefix { $0.isASCII && $0.isNumber }
        return Int32(digits)
    }
}

/// Test only: with XFER_TEST_PAUSE_BEFORE_RENAME=SECONDS in the environment, a write stops for
/// that long between syncing its temporary file and renaming it into place, after printing
/// `xfer: test: paused before rename <temporary path>` on stderr, so that tests can send
/// signals while a write is in flight. Not for use outside the test suite.
private func pauseBeforeRenameForTests(_ temp: String) {
    guard let text = ProcessInfo.processInfo.environment["XFER_TEST_PAUSE_BEFORE_RENAME"],
          let seconds = Double(text), seconds > 0 else { return }
    FileHandle.standardError.write(Data("xfer: test: paused before rename \(temp)\n".utf8))
    Thread.sleep(forTimeInterval: seconds)
}

/// A file's identity for "is this the same file": its resolved real path and, when it exists,
/// its device and inode (hard links, bind mounts).
struct FileIdentity {
    let path: String
    let device: UInt64?
    let inode: UInt64?

    init(_ given: String) {
        let absolute = OutputTarget.absolute(given)
        if let real = realpath(absolute, nil) {
            path = String(cString: real)
            free(real)
        } else if let target = try? OutputTarget(given, subject: given) {
            path = target.path
        } else {
            path = (absolute as NSString).standardizingPath
        }
        var st = stat()
        if stat(path, &st) == 0 {
            device = UInt64(st.st_dev); inode = UInt64(st.st_ino)
        } else {
            device = nil; inode = nil
        }
    }

    func same(as other: FileIdentity) -> Bool {
        if path == other.path { return true }
        if let d = device, let i = inode, d == other.device, i == other.inode { return true }
        return false
    }
}
