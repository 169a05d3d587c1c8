// Every failure xfer reports: what it concerns (a file, a flag, a layer), what
// is wrong, and optionally what to do. The CLI prints
//   xfer: error: <subject>: <message>
//   hint: <hint>
// and exits with the code of `kind` (docs/CONTRACT.md, "Exit codes and errors").

/// An error of xfer: what it concerns (a file, a layer, an argument), what is wrong, and what to do.
///
/// Its `localizedDescription` is the line the `xfer` command prints after `xfer: error: `, and its
/// `recoverySuggestion` the `hint:` line.
///
/// ```swift
/// do {
///     _ = try KerasModel(contentsOf: "checkpoints/fixtures/not_keras.h5")
/// } catch let error as XferError {
///     print(error.kind, error.localizedDescription, error.recoverySuggestion ?? "")
/// }
/// ```
public struct XferError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure it is; its raw value is the exit code the `xfer` command gives.
    ///
    /// ```swift
    /// do { _ = try KerasModel(contentsOf: "checkpoints/fixtures/unsupported_layer.h5") } catch let e as XferError {
    ///     print(e.kind, e.kind.rawValue)   // badInput 3
    /// }
    /// ```
    public enum Kind: Int32, Sendable {
        /// The work failed at run time (NaN loss, disk full, ...). Exit 1.
        case runtime = 1
        /// Bad command line: unknown flag value, unknown layer name. Exit 2.
        case usage = 2
        /// Bad input file: not HDF5, damaged, not a Keras checkpoint, shapes that do not match,
        /// unsupported layer. Exit 3.
        case badInput = 3
    }

    /// What kind of failure it is.
    public var kind: Kind
    /// The file, flag or layer the error is about.
    public var subject: String
    /// What is wrong.
    public var message: String
    /// What to do about it, when there is something to say.
    public var hint: String?

    package init(_ kind: Kind, _ subject: String, _ message: String, hint: String? = nil) {
        self.kind = kind; self.subject = subject; self.message = message; self.hint = hint
    }

    package static func badInput(_ subject: String, _ message: String, hint: String? = nil) -> XferError {
        XferError(.badInput, subject, message, hint: hint)
    }
    package static func usage(_ subject: String, _ message: String, hint: String? = nil) -> XferError {
        XferError(.usage, subject, message, hint: hint)
    }
    package static func runtime(_ subject: String, _ message: String, hint: String? = nil) -> XferError {
        XferError(.runtime, subject, message, hint: hint)
    }

    /// `subject: message`, with control characters escaped (names come out of files).
    public var description: String { (subject.isEmpty ? message : "\(subject): \(message)").terminalSafe }
}

extension String {
    /// The text with every control character (C0, DEL, C1: newlines, escape sequences, carriage
    /// returns) written as a Swift-style escape, so text taken out of a file can neither add a
    /// line to xfer's output (a forged `hint:`) nor drive the terminal.
    package var terminalSafe: String {
        guard unicodeScalars.contains(where: Self.isControl) else { return self }
        var out = ""
        for u in unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where Self.isControl(u): out += "\\u{\(String(u.value, radix: 16))}"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    private static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7f...0x9f).contains(u.value) || u.value == 0x2028 || u.value == 0x2029
    }
}
