// The layers of a new fine-tuning head (`xfer finetune --head`) and their parsing.

import Foundation

/// One layer of a new head (`--head`).
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
/// try model.replaceTop(with: [.globalAveragePooling, .dense(128, activation: .relu), .dropout(0.3)], classes: 5)
/// ```
public enum HeadLayer: Sendable, Equatable {
    /// Keras's `Flatten()`: the base's output as one vector per sample.
    case flatten
    /// Keras's `GlobalAveragePooling2D()`: the mean of each channel.
    case globalAveragePooling
    /// Keras's `GlobalMaxPooling2D()`: the largest value of each channel.
    case globalMaxPooling
    /// Keras's `Dense(units, activation)`; in code, ``dense(_:activation:)``.
    case dense(units: Int, activation: Activation)
    /// Keras's `Dropout(rate)`, active while training only; in code, ``dropout(_:)``.
    case dropout(rate: Float)
}

/// Parses `flatten,dense:256:relu,dropout:0.5` (also `gap`/`global_average_pooling`, `gmp`).
package func parseHead(_ text: String) throws -> [HeadLayer] {
    if text.trimmingCharacters(in: .whitespaces).isEmpty || text == "none" { return [] }
    return try text.split(separator: ",").map { item -> HeadLayer in
        let parts = item.split(separator: ":").map { String($0).trimmingCharacters(in: .whitespaces) }
        func bad(_ why: String) -> XferError {
            XferError.usage("--head", "'\(item)': \(why)",
                            hint: "e.g. --head flatten,dense:256:relu,dropout:0.5 (layers: flatten, gap, gmp, dense:UNITS[:ACTIVATION], dropout:RATE)")
        }
        switch parts[0].lowercased() {
        case "flatten":
            return .flatten
        case "gap", "global_average_pooling", "globalaveragepooling2d":
            return .globalAveragePooling
        case "gmp", "global_max_pooling", "globalmaxpooling2d":
            return .globalMaxPooling
        case "dense":
            guard parts.count >= 2, let units = Int(parts[1]), units > 0 else { throw bad("dense needs a positive number of units") }
            let act = parts.count > 2 ? Activation(kerasName: parts[2]) : .linear
            guard let act else { throw bad("unknown activation '\(parts[2])'") }
            return .dense(units: units, activation: act)
        case "dropout":
            guard parts.count == 2, let rate = Float(parts[1]), rate >= 0, rate < 1 else { throw bad("dropout needs a rate in [0, 1)") }
            return .dropout(rate: rate)
        default:
            throw bad("unknown head layer '\(parts[0])'")
        }
    }
}
