// `xfer finetune CHECKPOINT --data DATA [options]`: plan the freeze, train what the
// plan leaves trainable, write a Keras 2 full-model .h5.

import ArgumentParser
import Foundation
import XferKit

extension OptimizerKind: ExpressibleByArgument {}

struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a Keras checkpoint on labelled DATA and write a Keras 2 .h5.",
        discussion: """
        By default the whole base (everything up to the last convolution/pooling block) is frozen \
        and the top is replaced by a new head trained from scratch. A frozen BatchNormalization \
        layer runs in inference mode and never updates its moving statistics, as in Keras.
        """)

    @Argument(help: "The checkpoint (.h5, .weights.h5 or .keras).")
    var checkpoint: String

    @OptionGroup var checkpointOptions: CheckpointOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(name: .long, help: ArgumentHelp("Freeze every layer before the first layer named NAME or starting with NAME_ (block5 → block5_conv1).", valueName: "NAME"))
    var freezeUntil: String?

    @Option(name: .long, help: ArgumentHelp("Freeze these layers (after --freeze-until).", valueName: "NAME,..."))
    var freeze: String?

    @Option(name: .long, help: ArgumentHelp("Make these layers trainable (after --freeze-until).", valueName: "NAME,..."))
    var trainable: String?

    @Flag(name: .long, help: "Keep the checkpoint's own top layers and train them; no new head.")
    var keepTop = false

    @Option(name: .long, help: "Size of the new softmax head (default: the number of classes in DATA).")
    var classes: Int?

    @Option(name: .long, help: ArgumentHelp("The new head, before its final softmax dense layer.", valueName: "SPEC"))
    var head: String = "flatten,dense:256:relu,dropout:0.5"

    @Option(name: .long, help: "Epochs.")
    var epochs: Int = 10

    @Option(name: .long, help: "sgd, adam or rmsprop (Keras's update rules and defaults).")
    var optimizer: OptimizerKind = .sgd

    @Option(name: .long, help: "Learning rate (default: Keras's, 0.01 for sgd, 0.001 for adam and rmsprop).")
    var lr: Float?

    @Option(name: .long, help: "Momentum (sgd, rmsprop).")
    var momentum: Float = 0

    @Flag(name: .long, help: "Nesterov momentum (sgd).")
    var nesterov = false

    @Option(name: .long, help: "Seed for the new head's initial weights, shuffling and dropout.")
    var seed: UInt64 = 0

    @Flag(inversion: .prefixedNo, help: "Shuffle the training samples every epoch.")
    var shuffle = true

    @Option(name: .long, help: ArgumentHelp("Where to write the fine-tuned model (default: <checkpoint name>-finetuned.h5).", valueName: "OUT.h5"))
    var output: String?

    @Flag(name: .long, help: "Print the freeze plan (the import table after freezing, with the new head) and stop.")
    var dryRun = false

    func validate() throws {
        guard epochs > 0 else { throw ValidationError("--epochs must be positive") }
        if let classes, classes < 1 { throw ValidationError("--classes must be positive") }
        if let lr, !(lr > 0) { throw ValidationError("--lr must be positive") }
        guard momentum >= 0 && momentum < 1 else { throw ValidationError("--momentum must be in [0, 1)") }
        if nesterov && optimizer != .sgd { throw ValidationError("--nesterov applies to --optimizer sgd") }
    }

    static func names(_ list: String?) -> [String] {
        (list ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() throws {
        let loaded = try Checkpoint.load(checkpoint, options: try checkpointOptions.loadOptions())
        let data = try dataOptions.open()
        guard let labels = data.labels else {
            throw XferError.badInput(dataOptions.data, "has no labels (dataset y)", hint: "fine-tuning needs labelled data")
        }
        _ = labels
        let classCount = classes ?? data.classCount
        let options = FreezeOptions(freezeUntil: freezeUntil, freeze: Self.names(freeze), trainable: Self.names(trainable),
                                    keepTop: keepTop, head: try parseHead(head), classes: classCount, seed: seed)
        let plan = try planFineTuning(loaded.model, options: options)
        printPlan(plan, data: data)
        if dryRun { return }
        throw XferError.runtime("finetune", "training is not available in this build", hint: "use --dry-run to see the plan")
    }

    func printPlan(_ plan: FreezePlan, data: DataSource) {
        if let names = data.classNames {
            print("Classes: " + names.enumerated().map { "\($0.offset)=\($0.element)" }.joined(separator: ", "))
        }
        var cells: [String: String] = [:]
        for w in plan.work { cells[w.name] = w.work.rawValue }
        if let summary = try? ModelSummary(plan.model) {
            print(summary.render(title: plan.model.name, extra: ("Runs", cells)))
        }
        if !plan.frozenBatchNorms.isEmpty {
            print("Frozen BatchNormalization layers run in inference mode (moving statistics fixed), as in Keras: "
                  + plan.frozenBatchNorms.joined(separator: ", "))
        }
        if plan.lowestTrainable == nil { print("Nothing is trainable.") }
    }
}
