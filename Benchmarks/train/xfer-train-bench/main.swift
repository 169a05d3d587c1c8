// xfer-train-bench: per-step timing of xfer's training step (BENCHMARKS.md, "Training").
//
// The same set-up as `xfer finetune CHECKPOINT --data DATA --no-cache [--freeze-until NAME]`:
// the checkpoint's base, xfer's default new head (flatten, dense:256:relu, dropout:0.5,
// softmax over the classes of DATA), the freeze plan, SGD with Keras's defaults. Then
// `warmup + steps` training steps on consecutive batches of DATA, each timed from reading
// the batch to the end of the optimizer update, with no feature cache (every step runs the
// whole network forward).
//
//   xfer-train-bench CHECKPOINT DATA [--freeze-until NAME] [--batch 16] [--steps 6] [--warmup 2]
//
// Prints one line of key=value figures: the median step over the timed steps, images/s,
// every timed step, and the process's peak RSS.

import Foundation
import XferKit
#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("xfer-train-bench: \(message)\n".data(using: .utf8)!)
    exit(2)
}

var positional: [String] = []
var freezeUntil: String?
var batch = 16, steps = 6, warmup = 2
let args = Array(CommandLine.arguments.dropFirst())
var i = 0
func value() -> String {
    i += 1
    guard i < args.count else { fail("\(args[i - 1]) needs a value") }
    return args[i]
}
func number() -> Int {
    guard let v = Int(value()), v >= 0 else { fail("\(args[i - 1]) needs a number") }
    return v
}
while i < args.count {
    switch args[i] {
    case "--freeze-until": freezeUntil = value()
    case "--batch": batch = number()
    case "--steps": steps = number()
    case "--warmup": warmup = number()
    case "--conv":
        guard let path = ConvolutionPath(rawValue: value()) else { fail("--conv takes auto, im2col or winograd") }
        Convolution.path = path
    default: positional.append(args[i])
    }
    i += 1
}
guard positional.count == 2, batch > 0, steps > 0 else {
    fail("usage: xfer-train-bench CHECKPOINT DATA [--freeze-until NAME] [--batch 16] [--steps 6] [--warmup 2] [--conv auto|im2col|winograd]")
}

do {
    let loaded = try Checkpoint.load(positional[0])
    let data = try DataSource(path: positional[1])
    let options = FreezeOptions(freezeUntil: freezeUntil, classes: data.classCount, seed: 0)
    let plan = try planFineTuning(loaded.model, options: options, cacheAllowed: false)
    let network = try TrainingNetwork(model: plan.model, kerasVersion: loaded.kerasVersion, seed: 0)
    let optimizer = Optimizer(OptimizerConfig(kind: .sgd))
    let h = network.inputShape[0], w = network.inputShape[1]
    let total = warmup + steps
    guard total * batch <= data.count else { fail("DATA holds \(data.count) samples; \(total) steps of \(batch) need more") }
    var seconds: [Double] = []
    var loss = 0.0
    for s in 0..<total {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let b = try data.batch(Array((s * batch)..<((s + 1) * batch)), height: h, width: w)
        loss = network.trainStep(b.x, labels: b.labels, optimizer: optimizer).loss
        let t = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        if s >= warmup { seconds.append(t) }
    }
    let sorted = seconds.sorted()
    let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let trainable = network.parameterPaths.count
    print("side=xfer mode=steps freeze_until=\(freezeUntil ?? "base") batch=\(batch) trainable_tensors=\(trainable)"
          + " steps=\(seconds.count) step_s=\(String(format: "%.4f", median))"
          + " images_per_s=\(String(format: "%.3f", Double(batch) / median))"
          + " all_steps=\(seconds.map { String(format: "%.3f", $0) }.joined(separator: ","))"
          + " loss=\(String(format: "%.4f", loss)) peak_rss_mib=\(usage.ru_maxrss / 1024)")
} catch {
    fail("\(error)")
}
