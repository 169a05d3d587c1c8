// Every failure xfer reports: what it concerns (a file, a flag, a layer), what
// is wrong, and optionally what to do. The CLI prints
//   xfer: error: <subject>: <message>
//   hint: <hint>
// and exits with the code of `kind` (docs/CONTRACT.md, "Exit codes and errors").

public struct XferError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Int32, Sendable {
        /// The work failed at run time (NaN loss, disk full, ...). Exit 1.
        case runtime = 1
        /// Bad command line: unknown flag value, unknown layer name. Exit 2.
        case usage = 2
        /// Bad input file: not HDF5, damaged, not a Keras checkpoint, shapes that do not match,
        /// unsupported layer. Exit 3.
        case badInput = 3
    }

    public var kind: Kind
    /// The file, flag or layer the error is about.
    public var subject: String
    public var message: String
    public var hint: String?

    public init(_ kind: Kind, _ subject: String, _ message: String, hint: String? = nil) {
        self.kind = kind; self.subject = subject; self.message = message; self.hint = hint
    }

    public static func badInput(_ subject: String, _ message: String, hint: String? = nil) -> XferError {
        XferError(.badInput, subject, message, hint: hint)
    }
    public static func usage(_ subject: String, _ message: String, hint: String? = nil) -> XferError {
        XferError(.usage, subject, message, hint: hint)
    }
    public static func runtime(_ subject: String, _ message: String, hint: String? = nil) -> XferError {
        XferError(.runtime, subject, message, hint: hint)
    }

    public var description: String { subject.isEmpty ? message : "\(subject): \(message)" }
}
