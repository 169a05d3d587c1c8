// What a fine-tuning run minimises, and what its head is: the seam every loss plugs into.
//
// A loss is Keras's, by name (`--loss`, or the `training_config`/`compile_config` the
// checkpoint was compiled with) with its arguments (from_logits, label_smoothing, delta).
// The cross-entropies own the model's last activation when it is theirs (softmax, sigmoid):
// the trainer strips it from the graph and the loss works from the logits, as Keras's `fit`
// does (TensorFlow's `_get_logits` finds the logits under a Softmax/Sigmoid op and uses
// `softmax_cross_entropy_with_logits` / `sigmoid_cross_entropy_with_logits`, no clipping,
// docs/KERAS-FORMATS.md B.6). With `from_logits` the outputs are the logits already; otherwise
// the outputs are probabilities and Keras's clipped formulas apply.
//
// Every loss is a per-sample value (Keras: the mean over the last axis for the elementwise
// losses) reduced as Keras's default `sum_over_batch_size`: Σ wᵢ·lossᵢ / N, wᵢ the sample
// weights (`class_weight`), N the batch size — so the gradient of sample i is wᵢ·∂lossᵢ/N.

import Foundation

/// A Keras loss, by kind.
///
/// ```swift
/// let model = try KerasModel(contentsOf: "checkpoints/losses/mse.h5")
/// print(model.loss.kind)   // meanSquaredError, the loss the checkpoint was compiled with
/// ```
public enum LossKind: String, Sendable, CaseIterable {
    /// Keras's `categorical_crossentropy`: a softmax over class labels or one-hot rows.
    case categoricalCrossentropy = "categorical_crossentropy"
    /// Keras's `sparse_categorical_crossentropy`: a softmax over integer class labels.
    case sparseCategoricalCrossentropy = "sparse_categorical_crossentropy"
    /// Keras's `binary_crossentropy`: one sigmoid per 0/1 label.
    case binaryCrossentropy = "binary_crossentropy"
    /// Keras's `mse`: a regression.
    case meanSquaredError = "mean_squared_error"
    /// Keras's `mae`: a regression.
    case meanAbsoluteError = "mean_absolute_error"
    /// Keras's `Huber(delta)`: a regression.
    case huber = "huber"

    /// Keras's names and aliases (functions, classes, short names): `mse`, `MeanSquaredError`, `huber_loss`, ...
    package init?(kerasName: String) {
        let key = kerasName.lowercased().replacingOccurrences(of: "_", with: "")
        switch key {
        case "categoricalcrossentropy": self = .categoricalCrossentropy
        case "sparsecategoricalcrossentropy": self = .sparseCategoricalCrossentropy
        case "binarycrossentropy", "bce": self = .binaryCrossentropy
        case "meansquarederror", "mse": self = .meanSquaredError
        case "meanabsoluteerror", "mae": self = .meanAbsoluteError
        case "huber", "huberloss": self = .huber
        default: return nil
        }
    }

    /// The short name xfer prints (`mse`, `mae`; the others as Keras spells them).
    package var shortName: String {
        switch self {
        case .meanSquaredError: return "mse"
        case .meanAbsoluteError: return "mae"
        default: return rawValue
        }
    }

    /// Classifier losses (softmax or sigmoid heads) as opposed to regression.
    package var isRegression: Bool { [.meanSquaredError, .meanAbsoluteError, .huber].contains(self) }
    package var isCategorical: Bool { self == .categoricalCrossentropy || self == .sparseCategoricalCrossentropy }
}

/// A loss with its Keras arguments.
///
/// ```swift
/// var model = try KerasModel(contentsOf: "checkpoints/fashion/fashion_vgg.h5")
/// try model.replaceTop(with: [.flatten], classes: 5, loss: LossConfig(.categoricalCrossentropy, labelSmoothing: 0.1))
/// ```
public struct LossConfig: Sendable, Equatable, CustomStringConvertible {
    /// Which loss.
    public var kind: LossKind
    /// Keras `from_logits`: the model's outputs are logits (a linear head).
    public var fromLogits = false
    /// Keras `label_smoothing` (cross-entropies).
    public var labelSmoothing: Float = 0
    /// Keras `Huber(delta=...)`.
    public var delta: Float = 1

    /// A loss with Keras's arguments (`from_logits`, `label_smoothing`, Huber's `delta`).
    ///
    /// ```swift
    /// let loss = LossConfig(.categoricalCrossentropy, labelSmoothing: 0.1)
    /// ```
    public init(_ kind: LossKind, fromLogits: Bool = false, labelSmoothing: Float = 0, delta: Float = 1) {
        self.kind = kind; self.fromLogits = fromLogits; self.labelSmoothing = labelSmoothing; self.delta = delta
    }

    package static let categorical = LossConfig(.categoricalCrossentropy)

    /// The activation the loss goes with: the cross-entropies' softmax or sigmoid (applied from the
    /// logits), none for regression.
    package var activation: Activation {
        switch kind {
        case .categoricalCrossentropy, .sparseCategoricalCrossentropy: return .softmax
        case .binaryCrossentropy: return .sigmoid
        default: return .linear
        }
    }

    /// `binary_crossentropy`, `huber(delta=0.5)`, `categorical_crossentropy(label_smoothing=0.1, from_logits)`.
    public var description: String {
        var args: [String] = []
        if fromLogits { args.append("from_logits") }
        if labelSmoothing != 0 { args.append("label_smoothing=\(labelSmoothing)") }
        if kind == .huber && delta != 1 { args.append("delta=\(delta)") }
        return kind.shortName + (args.isEmpty ? "" : "(\(args.joined(separator: ", ")))")
    }

    /// Parses `--loss`: a Keras name, optionally `huber:DELTA`.
    package static func parse(_ text: String) throws -> LossConfig {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let names = "categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy, mse, mae, huber[:DELTA]"
        guard let kind = LossKind(kerasName: parts[0]) else {
            throw XferError.usage("--loss", "unknown loss '\(text)'", hint: "losses: \(names)")
        }
        var config = LossConfig(kind)
        if parts.count == 2, kind == .huber {
            guard let d = Float(parts[1]), d > 0, d.isFinite else {
                throw XferError.usage("--loss", "'\(text)': huber takes a positive delta (huber:0.5)")
            }
            config.delta = d
        } else if parts.count > 1 {
            throw XferError.usage("--loss", "'\(text)' is not a loss name", hint: "losses: \(names)")
        }
        return config
    }

    /// The loss a checkpoint was compiled with: `training_config` (tf-keras .h5) or
    /// `compile_config` (Keras 3 .keras) `loss` — a name, or `{"class_name", "config"}` with
    /// `from_logits`, `label_smoothing`, `delta`. Nil for a loss xfer does not train with
    /// (or several outputs' losses).
    package static func fromKeras(_ loss: Any?) -> LossConfig? {
        if let name = loss as? String { return LossKind(kerasName: name).map { LossConfig($0) } }
        guard let object = loss as? [String: Any] else { return nil }
        // Keras 3 serialises a loss function as {"class_name": "function", "config": "<its name>"}.
        if let fn = object["config"] as? String { return LossKind(kerasName: fn).map { LossConfig($0) } }
        let config = object["config"] as? [String: Any] ?? [:]
        var name = object["class_name"] as? String ?? ""
        // A wrapped function (`LossFunctionWrapper`) names it in its config.
        if LossKind(kerasName: name) == nil, let fn = config["fn"] as? String { name = fn }
        guard let kind = LossKind(kerasName: name) else { return nil }
        var c = LossConfig(kind)
        c.fromLogits = config["from_logits"] as? Bool ?? false
        func number(_ v: Any?) -> Double? { (v as? Double) ?? (v as? Int).map(Double.init) ?? (v as? NSNumber)?.doubleValue }
        if let ls = number(config["label_smoothing"]) { c.labelSmoothing = Float(ls) }
        if let d = number(config["delta"]) { c.delta = Float(d) }
        // A file's values, checked as --label-smoothing and --loss huber:DELTA are: a damaged or
        // crafted config loses the default loss rather than training with a NaN.
        guard c.labelSmoothing >= 0 && c.labelSmoothing <= 1, c.delta > 0 && c.delta.isFinite else { return nil }
        return c
    }

    /// The Keras 2 `training_config` `loss` entry for this loss (written with a model xfer trained).
    package var kerasConfig: [String: Any] {
        let className: String
        var config: [String: Any] = ["reduction": "sum_over_batch_size", "name": kind.rawValue]
        switch kind {
        case .categoricalCrossentropy: className = "CategoricalCrossentropy"
        case .sparseCategoricalCrossentropy: className = "SparseCategoricalCrossentropy"
        case .binaryCrossentropy: className = "BinaryCrossentropy"
        case .meanSquaredError: className = "MeanSquaredError"
        case .meanAbsoluteError: className = "MeanAbsoluteError"
        case .huber: className = "Huber"; config["delta"] = shortest(delta); config["name"] = "huber_loss"
        }
        if !kind.isRegression {
            config["from_logits"] = fromLogits
            if kind != .sparseCategoricalCrossentropy { config["label_smoothing"] = shortest(labelSmoothing) }
        }
        return ["class_name": className, "config": config]
    }

    /// The loss function, for inputs that are the logits (`logits` true: the head's softmax or
    /// sigmoid stripped, or `from_logits`) or the model's outputs as they are.
    package func make(logits: Bool) -> Loss {
        switch kind {
        case .categoricalCrossentropy, .sparseCategoricalCrossentropy:
            return CategoricalCrossEntropy(fromLogits: logits, labelSmoothing: labelSmoothing)
        case .binaryCrossentropy:
            return BinaryCrossEntropy(fromLogits: logits, labelSmoothing: labelSmoothing)
        case .meanSquaredError: return MeanSquaredError()
        case .meanAbsoluteError: return MeanAbsoluteError()
        case .huber: return HuberLoss(delta: delta)
        }
    }
}

/// A loss function: per sample, from one row of inputs (logits or outputs) and its target row.
package protocol Loss: Sendable {
    /// What maps the inputs to the model's outputs (probabilities): softmax/sigmoid for a
    /// cross-entropy from the logits, else nothing (`.linear`).
    var outputActivation: Activation { get }
    /// The loss of one sample, `x` its `units` inputs, `target` its target row of `targetWidth`
    /// values (a class id when 1 and `units` > 1 for the categorical losses); when `gradient`
    /// is given, ∂loss/∂x goes there.
    func sampleLoss(_ x: UnsafePointer<Float>, units: Int, target: UnsafePointer<Float>, targetWidth: Int,
                    gradient: UnsafeMutablePointer<Float>?) -> Float
}

/// The regression losses' shared form: the mean over the units of f(eⱼ), eⱼ = ŷⱼ − yⱼ, and
/// into `gradient` f′(eⱼ)/units; `f` gives (f(e), f′(e)).
func meanOverUnits(_ x: UnsafePointer<Float>, units c: Int, target: UnsafePointer<Float>, targetWidth: Int,
                   gradient g: UnsafeMutablePointer<Float>?, _ f: (Float) -> (value: Float, slope: Float)) -> Float {
    precondition(targetWidth == c, "one target per output")
    var sum: Float = 0
    for j in 0..<c {
        let (value, slope) = f(x[j] - target[j])
        sum += value
        g?[j] = slope / Float(c)
    }
    return sum / Float(c)
}

extension Loss {
    /// The batch's loss (Keras's `sum_over_batch_size`: Σ wᵢ·lossᵢ / N) and, with `gradient`,
    /// its gradient with respect to the inputs. `targets` is (N, width); `weights` per sample or nil.
    package func batchLoss(_ x: Tensor, targets: Tensor, weights: [Float]? = nil, gradient wanted: Bool)
        -> (loss: Double, gradient: Tensor?) {
        let n = x.shape[0], c = x.count / max(n, 1)
        let tw = targets.count / max(n, 1)
        precondition(targets.shape[0] == n && (weights?.count ?? n) == n)
        var g = wanted ? [Float](repeating: 0, count: x.count) : []
        var total = 0.0
        x.values.withUnsafeBufferPointer { xp in
            targets.values.withUnsafeBufferPointer { tp in
                g.withUnsafeMutableBufferPointer { gp in
                    for i in 0..<n {
                        let row = wanted ? gp.baseAddress! + i * c : nil
                        let l = sampleLoss(xp.baseAddress! + i * c, units: c, target: tp.baseAddress! + i * tw, targetWidth: tw, gradient: row)
                        let w = weights?[i] ?? 1
                        total += Double(l) * Double(w)
                        if let row {
                            // Unweighted, a division by N as TensorFlow's gradient of the mean (the
                            // Fashion job's numbers depend on it); weighted, by wᵢ/N.
                            if weights == nil {
                                for j in 0..<c { row[j] = row[j] / Float(n) }
                            } else {
                                let s = w / Float(n)
                                for j in 0..<c { row[j] *= s }
                            }
                        }
                    }
                }
            }
        }
        return (total / Double(max(n, 1)), wanted ? Tensor(shape: x.shape, values: g) : nil)
    }

    /// The model's outputs (probabilities for a classifier) from the inputs.
    package func outputs(_ x: Tensor) -> Tensor {
        var out = x
        let c = x.shape.count > 1 ? x.count / max(x.shape[0], 1) : max(x.count, 1)
        switch outputActivation {
        case .softmax:
            out.values.withUnsafeMutableBufferPointer { p in
                for i in 0..<(x.count / max(c, 1)) { softmaxRow(p.baseAddress! + i * c, c) }
            }
        case .sigmoid:
            for k in out.values.indices { out.values[k] = activationScalar(.sigmoid, out.values[k]) }
        default:
            break
        }
        return out
    }
}

/// A float32 as the shortest double that reads back as it (0.1, not 0.10000000149011612), for JSON.
func shortest(_ v: Float) -> Double { Double(String(describing: v)) ?? Double(v) }

/// Keras's `epsilon()`: the clipping bound of probabilities.
let kerasEpsilon: Float = 1e-7
