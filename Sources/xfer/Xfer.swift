import ArgumentParser
import XferKit

@main
struct Xfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xfer",
        abstract: "Transfer learning on Keras HDF5 checkpoints, on the CPU.",
        subcommands: []
    )
}
