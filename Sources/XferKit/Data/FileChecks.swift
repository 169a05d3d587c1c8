// Files that DATA points at are checked before they are opened: a FIFO, socket or device
// (or a symlink to one, such as `x.png -> /dev/zero`) lying where a file is expected would
// block the read or never end, so only regular files are read, and an image is read up to a
// bound (`maxImageFileBytes`), never unboundedly.

import Foundation

/// The largest image file xfer reads (256 MiB); larger files are refused.
package let maxImageFileBytes = 256 << 20

/// What a path is, from stat(2) (following symlinks) or lstat(2).
enum PathKind: Equatable {
    case regular, directory, fifo, socket, characterDevice, blockDevice, symlink, other
    case missing
    /// stat failed for another reason (errno text).
    case unreadable(String)

    init(_ path: String, followSymlinks: Bool = true) {
        var st = stat()
        let r = followSymlinks ? stat(path, &st) : lstat(path, &st)
        guard r == 0 else {
            self = errno == ENOENT || errno == ENOTDIR ? .missing : .unreadable(String(cString: strerror(errno)))
            return
        }
        self.init(mode: st.st_mode)
    }

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFIFO: self = .fifo
        case S_IFSOCK: self = .socket
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFLNK: self = .symlink
        default: self = .other
        }
    }

    /// "a FIFO (named pipe)", "a socket", ... for "is <this>, not a regular file".
    var article: String {
        switch self {
        case .regular: return "a regular file"
        case .directory: return "a folder"
        case .fifo: return "a FIFO (named pipe)"
        case .socket: return "a socket"
        case .characterDevice: return "a character device"
        case .blockDevice: return "a block device"
        case .symlink: return "a symbolic link"
        case .other: return "not a regular file"
        case .missing: return "missing"
        case .unreadable(let why): return "unreadable (\(why))"
        }
    }
}

/// Reads a regular file for the image decoders: `prefix` bytes (or the whole file when nil),
/// at most `limit` bytes in all. Refuses anything that is not a regular file before opening it
/// (and checks again on the open descriptor, which is opened non-blocking), and refuses files
/// larger than `limit`. Throws ImageDecodeError with a message for a warning.
func readRegularFile(_ path: String, prefix: Int? = nil, limit: Int = maxImageFileBytes) throws -> Data {
    switch PathKind(path) {
    case .regular: break
    case .missing: throw ImageDecodeError("no such file (a broken link?)")
    case .unreadable(let why): throw ImageDecodeError("cannot be read (\(why))")
    case let kind: throw ImageDecodeError("is \(kind.article), not a regular file")
    }
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { throw ImageDecodeError("cannot be read (\(String(cString: strerror(errno))))") }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw ImageDecodeError("cannot be read (\(String(cString: strerror(errno))))") }
    let kind = PathKind(mode: st.st_mode)
    guard kind == .regular else { throw ImageDecodeError("is \(kind.article), not a regular file") }
    func tooLarge() -> ImageDecodeError {
        ImageDecodeError("is larger than \(limit >> 20) MiB, more than an image xfer reads")
    }
    if prefix == nil && Int(st.st_size) > limit { throw tooLarge() }
    // Read until end of file, `prefix` bytes, or one byte past the limit (a file that grows, or
    // one whose size stat does not tell, such as those in /proc).
    let wanted = min(prefix ?? Int.max, limit + 1)
    var data = Data(count: min(wanted, max(Int(st.st_size), 0) + 1, 1 << 20))
    var filled = 0
    while filled < wanted {
        if filled == data.count { data.count = min(wanted, data.count * 2) }
        let room = data.count - filled
        let n = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, room) }
        if n < 0 {
            if errno == EINTR { continue }
            throw ImageDecodeError("cannot be read (\(String(cString: strerror(errno))))")
        }
        if n == 0 { break }
        filled += n
    }
    data.count = filled
    if filled > limit { throw tooLarge() }
    return data
}

/// Why a folder cannot be listed (errno text), or nil when it can.
func folderListingProblem(_ path: String) -> String? {
    guard let dir = opendir(path) else { return String(cString: strerror(errno)) }
    closedir(dir)
    return nil
}
