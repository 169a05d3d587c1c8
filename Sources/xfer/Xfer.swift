// The `xfer` command. Errors follow docs/CONTRACT.md: one line
// `xfer: error: <subject>: <message>`, an optional `hint:` line, and exit code
// 1 (run time), 2 (command line) or 3 (input file).

import ArgumentParser
import Foundation
import XferKit

@main
struct Xfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xfer",
        abstract: "Transfer learning on Keras HDF5 checkpoints, on the CPU.",
        discussion: """
        Shell completion: xfer --generate-completion-script bash|zsh|fish. \
        The full contract (flags, outputs, exit codes): docs/CONTRACT.md; the man page: docs/xfer.1.
        """,
        version: xferVersion,
        subcommands: [ImportCommand.self, FinetuneCommand.self, PredictCommand.self, EvaluateCommand.self, ExportCommand.self]
    )

    static func main() {
        installInterruptHandler()
        installDamagedFileGuard()
        do {
            var command = try parseAsRoot()
            if let finetune = command as? FinetuneCommand {
                // --resume: the run's own options back (or a conflicting one refused).
                let restored = try finetune.restoringRun()
                if let line = restored.restoredLine(from: finetune) { say(line) }
                command = restored
            }
            try command.run()
            finish(0)
        } catch let error as XferError {
            fail(error)
        } catch let code as ExitCode {
            finish(code.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                finish(0)
            }
            // Argument errors: one line, exit 2 (ArgumentParser's own code would be 64).
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid command line"
            fail(XferError.usage("", message, hint: "see 'xfer\(subcommandName().map { " " + $0 } ?? "") --help'"))
        }
    }
}

/// The subcommand on the command line (the first argument naming one), for hints.
func subcommandName() -> String? {
    let names = Xfer.configuration.subcommands.map { $0._commandName }
    return CommandLine.arguments.dropFirst().first { names.contains($0) }
}

/// Prints the error as docs/CONTRACT.md says and exits with its code.
func fail(_ error: XferError) -> Never {
    var text = "xfer: error: \(error.description)\n"
    if let hint = error.hint { text += "hint: \(hint.terminalSafe)\n" }
    FileHandle.standardError.write(Data(text.utf8))
    finish(error.kind.rawValue)
}

/// Ends the process once its output is out. Every file xfer writes is complete and renamed
/// before this point, so the libraries' exit-time teardown (static destructors running while
/// worker threads still exist) is skipped rather than raced.
func finish(_ code: Int32) -> Never {
    fflush(stdout)
    fflush(stderr)
    _exit(code)
}

/// Prints `text` on stdout with every control character but its own line breaks and tabs
/// escaped: names and class labels come out of files and folders, and must not drive the terminal.
func say(_ text: String) {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
        line.split(separator: "\t", omittingEmptySubsequences: false).map { String($0).terminalSafe }.joined(separator: "\t")
    }
    print(lines.joined(separator: "\n"))
}

/// One warning line on stderr.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("xfer: warning: \(message.terminalSafe)\n".utf8))
}

/// Options of every command that reads a checkpoint.
struct CheckpointOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Input shape H,W,C for checkpoints without an architecture (default 224,224,3), or for a model whose input size is open (None).", valueName: "H,W,C"))
    var inputShape: String?

    @Option(name: .long, help: ArgumentHelp("Architecture for a weights-only checkpoint: a Keras model JSON (model.to_json()) or a checkpoint that carries one.", valueName: "FILE"),
            completion: .file())
    var config: String?

    func loadOptions(values: WeightValues = .load) throws -> CheckpointLoadOptions {
        var shape: [Int]?
        if let text = inputShape {
            let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 3, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
                throw XferError.usage("--input-shape", "'\(text)' is not H,W,C with three positive numbers", hint: "e.g. --input-shape 224,224,3")
            }
            shape = parts.map { $0! }
        }
        return CheckpointLoadOptions(inputShape: shape, configPath: config, values: values,
                                     notify: { FileHandle.standardError.write(Data("xfer: warning: \($0.terminalSafe)\n".utf8)) })
    }
}

extension PreprocessMode: ExpressibleByArgument {}
extension ConvolutionPath: ExpressibleByArgument {}
extension ColorMode: ExpressibleByArgument {}

/// How samples are read and run: preprocessing, color mode, batch size, convolution core.
struct ReadOptions: ParsableArguments {
    @Option(name: .long, help: "Keras preprocess_input mode for images: none, caffe, tf, torch (default: the mode recorded with the model; else none when the model's first layer rescales its inputs; else caffe; HDF5 arrays are used as they are).")
    var preprocess: PreprocessMode?

    @Option(name: .long, help: ArgumentHelp("Keras's color_mode: the channels images are decoded to, rgb (3), grayscale (1) or rgba (4) (default: the mode recorded with the model, else what its input takes).", valueName: "MODE"))
    var colorMode: ColorMode?

    @Option(name: .long, help: "Samples per batch.")
    var batchSize: Int = 32

    @Option(name: .long, help: ArgumentHelp("Convolution core for 3×3 stride-1 layers: auto (Winograd where it is faster), im2col (im2col + SGEMM everywhere, the exact reference), winograd (wherever it can run).", valueName: "PATH"))
    var conv: ConvolutionPath = .auto

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
    }

    /// The preprocessing and color mode for `checkpoint`'s images (InputSettings), after checking
    /// that a `--color-mode` gives the channels the model takes (exit 2 otherwise).
    func settings(for checkpoint: Checkpoint) throws -> InputSettings {
        let settings = InputSettings(for: checkpoint, preprocess: preprocess, colorMode: colorMode)
        let shape = checkpoint.model.inputShape
        if let colorMode, shape.count == 3, shape[2] != colorMode.channels {
            let c = colorMode.channels
            throw XferError.usage("--color-mode \(colorMode.rawValue)", "gives \(c) channel\(c == 1 ? "" : "s") per pixel but the model takes \(shape[2])",
                                  hint: ColorMode(channels: shape[2]).map { "give --color-mode \($0.rawValue), or leave it out to follow the model" }
                                    ?? "the model's input has \(shape[2]) channels; give an HDF5 DATA file")
        }
        return settings
    }

    /// Opens the DATA at `path` for `checkpoint`: an image folder with the settings chosen for the
    /// model, an HDF5 file with `--preprocess` only. Sets the engine's convolution core first:
    /// every command that runs the engine reads DATA.
    func open(_ path: String, for checkpoint: Checkpoint) throws -> DataSource {
        Convolution.path = conv
        guard isFolder(path) else { return try DataSource(path: path, preprocess: preprocess, colorMode: nil, warning: warn) }
        let s = try settings(for: checkpoint)
        return try DataSource(path: path, preprocess: s.preprocess, colorMode: s.colorMode, warning: warn)
    }

    /// The line saying how images are read for `checkpoint` and why (nil for HDF5 arrays, used
    /// as they are). Commands print it once the checks have passed, just before the work, so an
    /// error stays one line.
    func inputLine(for checkpoint: Checkpoint, data: DataSource) -> String? {
        guard data.kind == .images else { return nil }
        return (try? settings(for: checkpoint))?.line
    }
}

/// DATA options of the commands that read labelled samples.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("An image folder (one subfolder per class) or an HDF5 file with x (N,H,W,C) and y (x (N,F) or (N,T,F) for a model of vectors or sequences).", valueName: "DATA"),
            completion: .file())
    var data: String

    @OptionGroup var read: ReadOptions

    var preprocess: PreprocessMode? { read.preprocess }
    var colorMode: ColorMode? { read.colorMode }
    var batchSize: Int { read.batchSize }
    var conv: ConvolutionPath { read.conv }

    /// Opens DATA, and sets the engine's convolution core first: every command that runs the
    /// engine reads DATA, so the setting travels with these options.
    func open() throws -> DataSource {
        Convolution.path = conv
        return try DataSource(path: data, preprocess: preprocess, warning: warn)
    }

    /// Opens DATA as `ReadOptions.open(_:for:)` does.
    func open(for checkpoint: Checkpoint) throws -> DataSource {
        try read.open(data, for: checkpoint)
    }
}

/// True for a folder (following symlinks).
func isFolder(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}

/// One informational line on stderr (what was chosen and why), so stdout stays the command's result.
func note(_ message: String) {
    FileHandle.standardError.write(Data("\(message.terminalSafe)\n".utf8))
}

/// Runs `body`, an error about the model itself (ONNX export of a layer without a mapping,
/// subject `model '<name>'`) naming `checkpoint` first, as every error names its file.
func namingCheckpoint<T>(_ checkpoint: String, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as XferError where e.kind == .badInput && e.subject.hasPrefix("model '") {
        throw XferError(e.kind, checkpoint, "\(e.subject): \(e.message)", hint: e.hint)
    }
}
