// Progress on stderr, as Keras's `Progbar` (verbose=1) draws it, when stderr is a terminal:
//
//   epoch 3/10 13/32 ━━━━━━━━━━━━━━━━━━━━ 2s 64ms/step - loss: 0.9000 - accuracy: 0.5000
//
// the count of batches, a 20-cell bar, the ETA of the epoch, the time per step (from the
// second step on, as Keras, so the first step's warm-up does not count), the running
// metrics. At the epoch's end the bar is cleared and the command prints its one summary line
// on stdout, ending in the epoch's time and time per step (`EpochTimer.suffix`), as Keras's
// last bar update does. When stderr is not a terminal nothing is drawn (no carriage returns):
// logs and pipes get one plain line per epoch.

import Foundation
import XferKit

/// Keras's `Progbar._format_time`: ` 90ms/step`, ` 2s/step`, ` 850us/step`.
func formatStepTime(_ seconds: Double) -> String {
    if seconds >= 1 || seconds == 0 { return String(format: "%.0fs/step", seconds) }
    if seconds >= 1e-3 { return String(format: "%.0fms/step", seconds * 1e3) }
    return String(format: "%.0fus/step", seconds * 1e6)
}

/// Keras's ETA: `42s`, `3:07`, `1:02:03`.
func formatETA(_ seconds: Double) -> String {
    let s = Int(max(0, seconds))
    if seconds > 3600 { return String(format: "%d:%02d:%02d", s / 3600, (s % 3600) / 60, s % 60) }
    if seconds > 60 { return String(format: "%d:%02d", s / 60, s % 60) }
    return "\(s)s"
}

/// The clock of one epoch (or of one pass over batches): time per step as Keras estimates it.
struct EpochTimer {
    private(set) var start = Date()
    private var afterFirstStep: Date?

    mutating func begin() { start = Date(); afterFirstStep = nil }

    /// Seconds per step after `done` steps, at `now` (Keras's `_estimate_step_duration`).
    mutating func perStep(_ done: Int, now: Date = Date()) -> Double {
        guard done > 0 else { return 0 }
        if done == 1 && afterFirstStep == nil { afterFirstStep = now; return now.timeIntervalSince(start) }
        if let t = afterFirstStep, done > 1 { return now.timeIntervalSince(t) / Double(done - 1) }
        return now.timeIntervalSince(start) / Double(done)
    }

    /// ` - 3s 90ms/step`: what the epoch's summary line ends with (validation included, as in Keras).
    mutating func suffix(steps: Int) -> String {
        let now = Date()
        let step = perStep(steps, now: now)
        return String(format: " - %.0fs ", now.timeIntervalSince(start)) + formatStepTime(step)
    }
}

final class ProgressBar {
    private let label: String
    private var timer = EpochTimer()
    private let live = isatty(STDERR_FILENO) != 0
    private var lastDraw = Date.distantPast
    private var drawn = false

    /// What the bar starts with (`epoch 3/10`).
    private var current: String

    init(_ label: String) { self.label = label; current = label }

    /// A new pass (epoch) starts: the clock restarts.
    func begin(label: String? = nil) {
        timer.begin()
        lastDraw = .distantPast
        current = label ?? self.label
    }

    /// `done` of `total` steps are finished; `extra` is ` - loss: ... - accuracy: ...`-style text.
    func update(_ done: Int, _ total: Int, extra: String = "") {
        let now = Date()
        let step = timer.perStep(done, now: now)
        guard live, total > 0 else { return }
        // Keras redraws at most every 0.05 s, and always at the last step.
        if done < total && now.timeIntervalSince(lastDraw) < 0.05 { return }
        lastDraw = now
        let width = 20
        let filled = min(width, width * done / total)
        let digits = String(total).count
        let count = String(repeating: " ", count: max(0, digits - String(done).count)) + "\(done)/\(total)"
        // Keras colours the done part green and the rest grey; without colour the rest is a
        // thinner line so the bar still reads.
        let bar = String(repeating: "━", count: filled) + String(repeating: "─", count: width - filled)
        let time = done < total ? formatETA(step * Double(total - done)) : String(format: "%.0fs", now.timeIntervalSince(timer.start))
        let text = "\r\(current) \(count) \(bar) \(time) \(formatStepTime(step))\(extra.isEmpty ? "" : " - " + extra)\u{1B}[K"
        FileHandle.standardError.write(Data(text.utf8))
        drawn = true
    }

    /// Clears the bar (the summary line takes its place).
    func finish() {
        guard live, drawn else { return }
        drawn = false
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    /// ` - 3s 90ms/step` for a pass of `steps` steps, measured now.
    func suffix(steps: Int) -> String { timer.suffix(steps: steps) }
}

/// Ctrl-C during training: the first press asks the loop to stop after the current batch
/// (the weights are then saved); a second press exits at once. The handler is plain C and only
/// counts, on a thread of its own (see CXferGuard), so no other thread is ever interrupted.
final class InterruptFlag: @unchecked Sendable {
    init() { armInterrupt() }
    var isSet: Bool { interruptRequested() }
}
