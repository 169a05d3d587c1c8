// Progress on stderr: a live bar with ETA when stderr is a terminal, nothing
// otherwise (logs and pipes get the plain summary lines the commands print).

import Foundation
import XferKit

final class ProgressBar {
    private let label: String
    private let start = Date()
    private let live = isatty(STDERR_FILENO) != 0
    private var lastDraw = Date.distantPast

    init(_ label: String) { self.label = label }

    func update(_ done: Int, _ total: Int, extra: String = "") {
        guard live, total > 0 else { return }
        let now = Date()
        if done < total && now.timeIntervalSince(lastDraw) < 0.1 { return }
        lastDraw = now
        let width = 30
        let filled = width * done / total
        let elapsed = now.timeIntervalSince(start)
        let eta = done > 0 ? elapsed * Double(total - done) / Double(done) : 0
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "") + String(repeating: " ", count: max(0, width - filled - 1))
        let text = "\r\(label) \(done)/\(total) [\(bar)] ETA \(Int(eta.rounded()))s\(extra.isEmpty ? "" : " - " + extra)\u{1B}[K"
        FileHandle.standardError.write(Data(text.utf8))
    }

    func finish() {
        guard live else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// Ctrl-C during training: the first press asks the loop to stop after the current batch
/// (the weights are then saved); a second press exits at once. The handler is plain C and only
/// counts, on a thread of its own (see CXferGuard), so no other thread is ever interrupted.
final class InterruptFlag: @unchecked Sendable {
    init() { armInterrupt() }
    var isSet: Bool { interruptRequested() }
}
