// Normalization (Keras's preprocessing layer): per-channel standardisation, in float32 as
// Keras computes it (`layers/preprocessing/normalization.py`, the same in tf_keras):
//
//   y = (x − mean) / max(√variance, 1e−7)          invert: y = mean + x · max(√variance, 1e−7)
//
// over the last axis (the axis the families and the tutorial use; other axes are refused by
// name). mean and variance come from the config when the model was built with them
// (`Normalization(mean=..., variance=...)`, as ConvNeXt and the tutorial do; a scalar or one
// value per channel) — then the layer holds no weights — or else from its three non-trainable
// weights `mean` (C), `variance` (C) and `count` () that `adapt()` fills (EfficientNet).
// They never train. Backward: dx = dy / max(√variance, 1e−7) (dy · that for invert).
//
// The Keras kind, `NormalizationConfig` (end of file).

import Foundation

/// A Keras `Normalization` layer.
final class NormalizationLayer: TrainableLayer {
    var training = false
    var trainable = false
    let name: String
    let inputShape: [Int]
    var outputShape: [Int] { inputShape }
    let invert: Bool
    /// Per channel (C): the mean and max(√variance, ε).
    let mean: [Float]
    let scale: [Float]
    /// The stored state, written back unchanged (count included).
    let stored: [WeightRole: [Float]]

    init(name: String, inputShape: [Int], mean: [Float], variance: [Float], invert: Bool, stored: [WeightRole: [Float]]) {
        self.name = name; self.inputShape = inputShape; self.invert = invert; self.stored = stored
        self.mean = mean
        // Keras: backend.epsilon() is 1e-7; the square root is float32's.
        scale = variance.map { max(sqrtf($0), 1e-7) }
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        let c = mean.count
        y.values.withUnsafeMutableBufferPointer { p in
            let rows = p.count / c
            for r in 0..<rows {
                let row = p.baseAddress! + r * c
                if invert {
                    for k in 0..<c { row[k] = mean[k] + row[k] * scale[k] }
                } else {
                    for k in 0..<c { row[k] = (row[k] - mean[k]) / scale[k] }
                }
            }
        }
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        var dx = dy
        let c = scale.count
        dx.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = invert ? p[i] * scale[i % c] : p[i] / scale[i % c] }
        }
        return dx
    }

    func currentWeights() -> [WeightRole: [Float]] { stored }
}

// MARK: The Keras kind

/// Keras `Normalization` over the last axis, with its statistics in the config or in weights.
struct NormalizationConfig: SingleInputOp, Equatable {
    /// From the config (one value or one per channel); nil: the layer's weights hold them.
    var mean: [Float]?
    var variance: [Float]?
    var invert = false
    /// Keras's `axis` as written (counting the batch axis), for writing back.
    var axis: Int = -1

    static var kerasClassNames: [String] { ["Normalization"] }

    init(mean: [Float]? = nil, variance: [Float]? = nil, invert: Bool = false, axis: Int = -1) {
        self.mean = mean; self.variance = variance; self.invert = invert; self.axis = axis
    }

    init(keras k: KerasLayerConfig) throws {
        // axis: -1, [-1], or the last axis by number (checked against the input in outputShape).
        var axis = -1
        switch k["axis"] {
        case nil, is NSNull: throw k.unsupported("axis=None (one mean for every value); xfer normalises per channel")
        case let v? where exactInt(v) != nil: axis = exactInt(v)!
        case let l as [Any] where l.count == 1 && exactInt(l[0]) != nil: axis = exactInt(l[0])!
        case let v?: throw k.unsupported("axis \(describe(v)); xfer normalises over the last axis only")
        }
        func values(_ key: String) throws -> [Float]? {
            guard let v = k[key], !(v is NSNull) else { return nil }
            let flat = flatten(v)
            guard let flat, !flat.isEmpty, flat.allSatisfy({ $0.isFinite }) else {
                throw k.fail("layer '\(k.name)': '\(key)' is not a number or a list of numbers (\(describe(v)))",
                             hint: "the model configuration is damaged; save the model again with Keras")
            }
            return flat.map { Float($0) }
        }
        let mean = try values("mean"), variance = try values("variance")
        guard (mean == nil) == (variance == nil), mean?.count == variance?.count else {
            throw k.fail("layer '\(k.name)': 'mean' and 'variance' must both be given, of one shape (Keras refuses it too)")
        }
        if let variance, variance.contains(where: { $0 < 0 }) {
            throw k.fail("layer '\(k.name)': a negative 'variance'", hint: "the model configuration is damaged; save the model again with Keras")
        }
        self.init(mean: mean, variance: variance, invert: k.bool("invert", default: false), axis: axis)
    }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["axis"] = [axis]
        c["invert"] = invert
        c["mean"] = mean.map { $0.map(Double.init) } ?? NSNull()
        c["variance"] = variance.map { $0.map(Double.init) } ?? NSNull()
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        // Keras's axis counts the batch axis.
        guard axis == -1 || axis == input.count else {
            throw XferError.badInput(layer, "Normalization over axis \(axis) of an input \(shapeText(input)); xfer normalises over the last axis only")
        }
        if let mean, mean.count != 1 && mean.count != (input.last ?? 0) {
            throw XferError.badInput(layer, "Normalization has \(mean.count) means for \(input.last ?? 0) channels")
        }
        return input
    }

    func expectedWeights(input: [Int]) -> [ExpectedWeight] {
        guard mean == nil else { return [] }
        let c = input.last ?? 0
        return [(.mean, [c], false), (.variance, [c], false), (.count, [], false)]
    }

    var hasWeights: Bool { mean == nil }
    var finishesBlock: Bool { true }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        let c = inputShape.last ?? 0
        if let mean, let variance {
            try spec.onlyWeights([])
            let m = mean.count == 1 ? [Float](repeating: mean[0], count: c) : mean
            let v = variance.count == 1 ? [Float](repeating: variance[0], count: c) : variance
            return NormalizationLayer(name: spec.name, inputShape: inputShape, mean: m, variance: v, invert: invert, stored: [:])
        }
        let m = try spec.values(.mean, shape: [c]), v = try spec.values(.variance, shape: [c])
        let count = try spec.values(.count, shape: [])
        try spec.onlyWeights([.mean, .variance, .count])
        guard v.allSatisfy({ $0 >= 0 }) else {
            throw XferError.badInput("layer '\(spec.name)'", "Normalization holds a negative variance", hint: "the checkpoint is damaged")
        }
        return NormalizationLayer(name: spec.name, inputShape: inputShape, mean: m, variance: v, invert: invert,
                                  stored: [.mean: m, .variance: v, .count: count])
    }
}

/// The numbers of a JSON number or (nested) list of numbers, in row-major order; nil for anything else.
private func flatten(_ value: Any) -> [Double]? {
    if let n = value as? NSNumber, !isBoolean(n) { return [n.doubleValue] }
    guard let list = value as? [Any] else { return nil }
    var out: [Double] = []
    for item in list {
        guard let f = flatten(item) else { return nil }
        out += f
    }
    return out
}
