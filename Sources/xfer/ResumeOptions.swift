// `finetune --resume`: the options that shaped a run travel in its training state
// (TrainingState.run), and the resumed run gets them back (docs/CONTRACT.md, `--resume`):
//
//   restored when not given     --augment, --class-weight, --preprocess, --color-mode, --no-shuffle
//   kept by the model itself    --head, --freeze-until, --freeze, --trainable, --keep-top, --classes,
//                               the loss (--loss, --label-smoothing, --from-logits), the optimizer
//                               (--optimizer, --momentum, --nesterov)
//   from this command line      DATA, --epochs (the total), --batch-size, validation, callbacks,
//                               --lr and --seed (which override the run's)
//
// An option of the first two groups given with a value other than the run's is refused (exit 2,
// one line naming both values); the same value is accepted and changes nothing.

import ArgumentParser
import Foundation
import XferKit

/// The run the command continues, as its training state records it (empty when not resuming, or
/// for a file written before runs were recorded): the record written at the end carries it on.
nonisolated(unsafe) private var resumedRun: [String: String] = [:]

extension FinetuneCommand {
    /// The record of this run's shaping options, written into the training state of its outputs.
    func runRecord(loss: LossConfig, data: DataSource) -> [String: String] {
        var r: [String: String] = [
            "head": head, "keep_top": String(keepTop), "loss": loss.description,
            "shuffle": String(shuffle),
        ]
        r["augment"] = augment.map(Self.normalizedList) ?? ""
        r["class_weight"] = classWeight ?? ""
        if let freezeUntil { r["freeze_until"] = freezeUntil }
        r["freeze"] = Self.names(freeze).joined(separator: ",")
        r["trainable"] = Self.names(trainable).joined(separator: ",")
        if let classes { r["classes"] = String(classes) }
        if data.kind == .images {
            r["preprocess"] = data.preprocessing.rawValue
            r["color_mode"] = data.colorMode.rawValue
        }
        // What the model itself keeps (head, freeze, loss) comes from the run this one continues.
        for key in ["head", "keep_top", "freeze_until", "freeze", "trainable", "classes", "loss"] where resumedRun[key] != nil {
            r[key] = resumedRun[key]
        }
        return r
    }

    static func normalizedList(_ text: String) -> String {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }.joined(separator: ",")
    }

    /// This command with the options of the run it resumes filled in, after refusing any that
    /// conflicts with the run (exit 2 naming both values). Not resuming: itself.
    func restoringRun() throws -> FinetuneCommand {
        guard resume else { return self }
        // Output mistakes are exit 2 before any file is read.
        try checkOutputs(outputFiles, inputs: inputFiles)
        guard let state = try TrainingState.read(checkpoint) else { return self }
        let run = state.run
        resumedRun = run
        var c = self
        func conflict(_ flag: String, _ given: String, _ recorded: String) -> XferError {
            XferError.usage("\(flag) \(given)", "conflicts with the run --resume continues, which used \(recorded.isEmpty ? "none" : recorded)",
                            hint: "drop \(flag) to continue with the run's, or start a new run without --resume")
        }
        // Options the model itself keeps: the same value or none.
        let structural: [(flag: String, key: String, given: String?, fallback: String)] = [
            ("--head", "head", head == Self.defaultHead ? nil : head, Self.defaultHead),
            ("--freeze-until", "freeze_until", freezeUntil, ""),
            ("--freeze", "freeze", freeze.map { Self.names($0).joined(separator: ",") }, ""),
            ("--trainable", "trainable", trainable.map { Self.names($0).joined(separator: ",") }, ""),
            ("--keep-top", "keep_top", keepTop ? "true" : nil, "false"),
            ("--classes", "classes", classes.map(String.init), ""),
        ]
        for s in structural {
            guard let given = s.given else { continue }
            // A file that records the run lists every option it was given; one it lacks was not given.
            guard let recorded = run.isEmpty ? nil : run[s.key] ?? "" else {
                throw XferError.usage(s.flag, "--resume keeps the freeze and head of the run it continues, and \(checkpoint) does not record them",
                                      hint: "drop \(s.flag)")
            }
            if given != recorded && !(recorded.isEmpty && given == s.fallback) {
                let used = s.flag == "--keep-top" && recorded == "false" ? "a new head"
                    : s.flag == "--classes" && recorded.isEmpty ? "a head sized by its data's classes" : recorded
                throw conflict(s.flag, given, used)
            }
        }
        c.head = Self.defaultHead; c.freezeUntil = nil; c.freeze = nil; c.trainable = nil; c.keepTop = false; c.classes = nil
        // The loss: the model records it; the same one may be named.
        if loss != nil || fromLogits || labelSmoothing != nil {
            var given = try loss.map(LossConfig.parse) ?? LossConfig.parse(run["loss"].map { String($0.prefix { $0 != "(" }) } ?? "categorical_crossentropy")
            if fromLogits { given.fromLogits = true }
            if let labelSmoothing { given.labelSmoothing = labelSmoothing }
            guard let recorded = run["loss"] else {
                throw XferError.usage("--loss", "--resume keeps the loss of the run it continues, and \(checkpoint) does not record it", hint: "drop --loss")
            }
            if given.description != recorded { throw conflict(loss != nil ? "--loss" : fromLogits ? "--from-logits" : "--label-smoothing", given.description, recorded) }
            c.loss = nil; c.fromLogits = false; c.labelSmoothing = nil
        }
        // The optimizer: its state is the run's.
        let o = state.optimizer
        if let optimizer, optimizer != o.kind { throw conflict("--optimizer", optimizer.rawValue, o.kind.rawValue) }
        if let momentum, momentum != o.momentum { throw conflict("--momentum", String(momentum), String(o.momentum)) }
        if nesterov != o.nesterov && nesterov { throw conflict("--nesterov", "on", "no Nesterov momentum") }
        c.optimizer = nil; c.momentum = nil; c.nesterov = false
        // Restored when not given.
        if let recorded = run["augment"] {
            if let given = augment.map(Self.normalizedList) {
                if given != recorded { throw conflict("--augment", given, recorded) }
            } else if !recorded.isEmpty {
                c.augment = recorded
            }
        }
        if let recorded = run["class_weight"] {
            if let given = classWeight {
                if given != recorded { throw conflict("--class-weight", given, recorded) }
            } else if !recorded.isEmpty {
                c.classWeight = recorded
            }
        }
        if let recorded = run["preprocess"], let given = dataOptions.preprocess, given.rawValue != recorded {
            throw conflict("--preprocess", given.rawValue, recorded)
        }
        if let recorded = run["color_mode"], let given = dataOptions.colorMode, given.rawValue != recorded {
            throw conflict("--color-mode", given.rawValue, recorded)
        }
        if run["preprocess"].flatMap(PreprocessMode.init(rawValue:)) != nil, dataOptions.preprocess == nil {
            c.dataOptions.read.preprocess = PreprocessMode(rawValue: run["preprocess"]!)
        }
        if let recorded = run["color_mode"].flatMap(ColorMode.init(rawValue:)), dataOptions.colorMode == nil {
            c.dataOptions.read.colorMode = recorded
        }
        // --shuffle is the default and cannot be told apart from it: a run without shuffling stays so.
        if run["shuffle"] == "false" { c.shuffle = false }
        return c
    }

    /// The line saying what `--resume` restored, when it restored anything the user did not give.
    func restoredLine(from original: FinetuneCommand) -> String? {
        var parts: [String] = []
        if augment != original.augment, let a = augment { parts.append("--augment \(a)") }
        if classWeight != original.classWeight, let w = classWeight { parts.append("--class-weight \(w)") }
        if dataOptions.preprocess != original.dataOptions.preprocess, let p = dataOptions.preprocess { parts.append("--preprocess \(p.rawValue)") }
        if dataOptions.colorMode != original.dataOptions.colorMode, let m = dataOptions.colorMode { parts.append("--color-mode \(m.rawValue)") }
        if shuffle != original.shuffle { parts.append("--no-shuffle") }
        return parts.isEmpty ? nil : "Resumed with the run's " + parts.joined(separator: ", ")
    }
}
