// What `--resume` needs beyond the weights: the epochs done, the learning rate, and
// the optimizer's iteration count and slots. Stored in the output .h5 under
// `/xfer_training_state` (Keras's loader ignores groups it does not know).

import Foundation

public struct TrainingState: Sendable {
    public var epochsDone: Int
    public var optimizer: OptimizerConfig
    public var iterations: Int
    /// Per trainable parameter, its optimizer slots.
    public var slots: [[[Float]]]
    public var seed: UInt64

    public init(epochsDone: Int, optimizer: Optimizer, seed: UInt64) {
        self.epochsDone = epochsDone; self.optimizer = optimizer.config
        iterations = optimizer.iterations; slots = optimizer.slots; self.seed = seed
    }

    static let group = "/xfer_training_state"

    func write(to file: HDF5File) throws {
        try file.createGroup(Self.group)
        let config: [String: Any] = [
            "epochs_done": epochsDone, "iterations": iterations, "seed": String(seed),
            "optimizer": optimizer.kind.rawValue, "learning_rate": Double(optimizer.learningRate),
            "momentum": Double(optimizer.momentum), "nesterov": optimizer.nesterov,
            "slots": slots.map(\.count),
        ]
        let json = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        try file.setString(Self.group, "config", String(decoding: json, as: UTF8.self), utf8: true)
        for (i, s) in slots.enumerated() {
            for (k, values) in s.enumerated() {
                try file.write("\(Self.group)/slot_\(i)_\(k)", shape: [values.count], floats: values)
            }
        }
    }

    /// The state in a file xfer wrote, or nil when it holds none.
    public static func read(_ path: String) throws -> TrainingState? {
        let file = try HDF5File.open(path)
        guard file.kind(group) == .group, let text = try file.string(group, "config"),
              let c = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let kindName = c["optimizer"] as? String, let kind = OptimizerKind(rawValue: kindName) else { return nil }
        var config = OptimizerConfig(kind: kind, learningRate: Float(c["learning_rate"] as? Double ?? 0),
                                     momentum: Float(c["momentum"] as? Double ?? 0), nesterov: c["nesterov"] as? Bool ?? false)
        config.learningRate = Float(c["learning_rate"] as? Double ?? Double(kind.defaultLearningRate))
        let counts = c["slots"] as? [Int] ?? []
        var slots: [[[Float]]] = []
        for (i, n) in counts.enumerated() {
            slots.append(try (0..<n).map { try file.floats("\(group)/slot_\(i)_\($0)").values })
        }
        var s = TrainingState(epochsDone: c["epochs_done"] as? Int ?? 0, optimizer: Optimizer(config), seed: UInt64(c["seed"] as? String ?? "0") ?? 0)
        s.iterations = c["iterations"] as? Int ?? 0
        s.slots = slots
        return s
    }
}
