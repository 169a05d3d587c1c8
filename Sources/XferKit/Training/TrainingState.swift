// What `--resume` needs beyond the weights: the epochs done, the learning rate, and
// the optimizer's iteration count and slots. Stored in the output .h5 or .weights.h5 under
// `/xfer_training_state`, in a .keras inside its model.weights.h5 (Keras's loaders ignore
// groups they do not know).
//
// A resumed file is input like any other: every field is checked when it is read (type,
// range, finite values, slot datasets of one dimension that fit in the file), and the slots
// against the network they are to drive (`check(against:)`), so a damaged or edited state is
// one error naming the file and the field, never a crash or a run that trains on garbage.

import Foundation

package struct TrainingState: Sendable {
    package var epochsDone: Int
    package var optimizer: OptimizerConfig
    package var iterations: Int
    /// Per trainable parameter, its optimizer slots.
    package var slots: [[[Float]]]
    package var seed: UInt64
    /// The file the state was read from ("" for a state made in memory); errors name it.
    package var path = ""
    /// The options that shaped the run (`--augment`, `--head`, the loss, ...), by name, as the
    /// command line gave them: `--resume` restores them or refuses a conflicting one. Empty in
    /// files written before it was recorded.
    package var run: [String: String] = [:]

    package init(epochsDone: Int, optimizer: Optimizer, seed: UInt64) {
        self.epochsDone = epochsDone; self.optimizer = optimizer.config
        iterations = optimizer.iterations; slots = optimizer.slots; self.seed = seed
    }

    static let group = "/xfer_training_state"
    /// Larger counts are not from a real run (and would overflow the step arithmetic).
    static let maxCount = 1 << 52

    func write(to file: HDF5File) throws {
        try file.createGroup(Self.group)
        let config: [String: Any] = [
            "epochs_done": epochsDone, "iterations": iterations, "seed": String(seed),
            "optimizer": optimizer.kind.rawValue, "learning_rate": Double(optimizer.learningRate),
            "momentum": Double(optimizer.momentum), "nesterov": optimizer.nesterov,
            "slots": slots.map(\.count),
        ].merging(run.isEmpty ? [:] : ["run": run]) { a, _ in a }
        let json = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        try file.setString(Self.group, "config", String(decoding: json, as: UTF8.self), utf8: true)
        for (i, s) in slots.enumerated() {
            for (k, values) in s.enumerated() {
                try file.write("\(Self.group)/slot_\(i)_\(k)", shape: [values.count], floats: values)
            }
        }
    }

    /// The state in a file xfer wrote, or nil when it holds none.
    ///
    /// - Throws: ``XferError`` `.badInput` (subject = `path`) naming the field that is missing,
    ///   of the wrong type, out of range or not finite.
    package static func read(_ path: String) throws -> TrainingState? {
        // A .keras archive keeps the state in its model.weights.h5 (Keras3Writer).
        let file = try isZip(path) ? CheckpointReader(path: path, options: .init(values: .skip)).archiveWeights() : HDF5File.open(path)
        guard file.exists(group) else { return nil }
        func bad(_ field: String, _ what: String) -> XferError {
            XferError.badInput(path, "training state \(field) \(what)",
                               hint: "the file's \(group) is damaged; fine-tune it without --resume to start a new run")
        }
        guard file.kind(group) == .group else { throw bad(group, "is not a group") }
        guard file.hasAttribute(group, "config") else { throw bad("config", "is missing") }
        guard let text = try? file.string(group, "config") else { throw bad("config", "cannot be read as text") }
        guard case .object(let c)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw bad("config", "is not a JSON object")
        }
        func field(_ key: String) throws -> JSONValue {
            guard let v = c[key] else { throw bad(key, "is missing") }
            return v
        }
        func whole(_ key: String, _ raw: JSONValue) throws -> Int {
            guard case .number(let d) = raw, d == d.rounded() else { throw bad(key, "is \(raw), not a whole number") }
            guard d >= 0 else { throw bad(key, "is \(raw), a negative count") }
            guard d <= Double(maxCount) else { throw bad(key, "is \(raw), more than any run") }
            return Int(d)
        }
        func count(_ key: String) throws -> Int { try whole(key, field(key)) }
        func number(_ key: String) throws -> Float {
            let raw = try field(key)
            guard case .number(let d) = raw else { throw bad(key, "is \(raw), not a number") }
            let v = Float(d)
            guard v.isFinite else { throw bad(key, "is \(d), not a finite float32") }
            return v
        }

        guard case .string(let kindName) = try field("optimizer") else {
            throw bad("optimizer", "is \(try field("optimizer")), not a name")
        }
        guard let kind = OptimizerKind(rawValue: kindName) else {
            throw bad("optimizer", "is '\(kindName)', not one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let epochsDone = try count("epochs_done")
        let iterations = try count("iterations")
        let lr = try number("learning_rate")
        guard lr > 0 else { throw bad("learning_rate", "is \(lr), not positive") }
        let momentum = try number("momentum")
        guard momentum >= 0 && momentum < 1 else { throw bad("momentum", "is \(momentum), not in [0, 1)") }
        guard case .bool(let nesterov) = try field("nesterov") else {
            throw bad("nesterov", "is \(try field("nesterov")), not true or false")
        }
        if nesterov && kind != .sgd { throw bad("nesterov", "is true for \(kind.rawValue) (Nesterov momentum is SGD's)") }
        guard case .string(let seedText) = try field("seed"), let seed = UInt64(seedText) else {
            throw bad("seed", "is \(try field("seed")), not an unsigned 64-bit number")
        }
        let config = OptimizerConfig(kind: kind, learningRate: lr, momentum: momentum, nesterov: nesterov)
        let perParameter = Optimizer(config).slotCount
        guard case .array(let rawSlots) = try field("slots") else {
            throw bad("slots", "is \(try field("slots")), not a list of counts")
        }
        var counts: [Int] = []
        for (i, raw) in rawSlots.enumerated() {
            let v = try whole("slots[\(i)]", raw)
            guard v == 0 || v == perParameter else {
                throw bad("slots[\(i)]", "is \(v), but \(kind.rawValue)\(config.momentum > 0 ? " with momentum" : "") keeps "
                          + "\(perParameter) slot\(perParameter == 1 ? "" : "s") per parameter")
            }
            counts.append(v)
        }

        // The slot datasets: one dimension each, and all of them within the file (xfer writes
        // them uncompressed), so a damaged shape cannot ask for more memory than the file holds.
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
        var budget = fileBytes / 4
        var slots: [[[Float]]] = []
        for (i, n) in counts.enumerated() {
            var parameter: [[Float]] = []
            for k in 0..<n {
                let name = "\(group)/slot_\(i)_\(k)"
                let field = "slot_\(i)_\(k)"
                guard file.kind(name) == .dataset else { throw bad(field, "is missing") }
                let shape = try file.shape(name)
                guard shape.count == 1 else { throw bad(field, "has shape \(shapeText(shape)), expected one dimension") }
                guard shape[0] <= budget else { throw bad(field, "holds \(shape[0]) values, more than the file has room for") }
                budget -= shape[0]
                let values = try file.floats(name).values
                if let j = values.firstIndex(where: { !$0.isFinite }) {
                    throw bad(field, "holds \(values[j]) at index \(j): the optimizer state is not finite")
                }
                parameter.append(values)
            }
            slots.append(parameter)
        }
        var run: [String: String] = [:]
        if let raw = c["run"] {
            guard case .object(let entries) = raw else { throw bad("run", "is \(raw), not an object") }
            for (key, value) in entries {
                guard case .string(let text) = value else { throw bad("run.\(key)", "is \(value), not text") }
                run[key] = text
            }
        }
        var s = TrainingState(epochsDone: epochsDone, optimizer: Optimizer(config), seed: seed)
        s.run = run
        s.iterations = iterations
        s.slots = slots
        s.path = path
        return s
    }

    /// Checks that the slots fit `network`'s trainable parameters (their number and sizes) and
    /// the optimizer `config` that will use them.
    /// - Throws: ``XferError`` `.badInput` naming the file and the slot.
    package func check(against network: TrainingNetwork, config: OptimizerConfig) throws {
        func bad(_ field: String, _ what: String) -> XferError {
            XferError.badInput(path, "training state \(field) \(what)",
                               hint: "the training state is not this model's; fine-tune it without --resume to start a new run")
        }
        let parameters = network.parameterSizes
        guard slots.isEmpty || slots.count == parameters.count else {
            throw bad("slots", "lists \(slots.count) parameters but the model trains \(parameters.count)")
        }
        let perParameter = Optimizer(config).slotCount
        for (i, s) in slots.enumerated() {
            guard s.isEmpty || s.count == perParameter else {
                throw bad("slots[\(i)]", "holds \(s.count) slots but \(config.kind.rawValue) keeps \(perParameter) per parameter")
            }
            for (k, values) in s.enumerated() where values.count != parameters[i].count {
                throw bad("slot_\(i)_\(k)", "holds \(values.count) values but \(parameters[i].path) has \(parameters[i].count)")
            }
        }
    }
}

/// A JSON value as the config holds it (booleans kept apart from numbers).
private enum JSONValue: Decodable, CustomStringConvertible {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    /// For error messages: 1.5, 'abc', true, a list, an object.
    var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .string(let s): return "'\(s.prefix(40))'"
        case .array: return "a list"
        case .object: return "an object"
        }
    }
}
