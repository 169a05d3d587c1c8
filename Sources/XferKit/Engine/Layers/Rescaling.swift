// Rescaling: y = x · scale + offset, element-wise, in float32 as Keras computes it
// (`inputs * scale + offset`), e.g. `Rescaling(1/255)` or `Rescaling(1/127.5, offset=-1)`
// in front of a base, or with one scale and offset per channel (arrays on the last axis, as
// Keras broadcasts `Rescaling(scale=[...], offset=[...])`: ImageNet's 1/std and −mean/std).
// Runs in place. Backward: dx = dy · scale (of the value's channel).
//
// The Keras kind, `RescalingConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Rescaling` layer (one scale and one offset for every value, or per channel).
package final class RescalingLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }
    /// One value, or one per channel (the last axis), each.
    let scale: [Float]
    let offset: [Float]

    init(name: String, scale: Float, offset: Float, inputShape: [Int]) {
        self.name = name; self.scale = [scale]; self.offset = [offset]; self.inputShape = inputShape
    }

    /// Per-channel (or one-value) arrays; each has 1 or C (the last axis) values.
    init(name: String, scales: [Float], offsets: [Float], inputShape: [Int]) {
        self.name = name; self.scale = scales; self.offset = offsets; self.inputShape = inputShape
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        let c = inputShape.last ?? 1
        let s = scale.count == 1 ? [Float](repeating: scale[0], count: c) : scale
        let o = offset.count == 1 ? [Float](repeating: offset[0], count: c) : offset
        y.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = p[i] * s[i % c] + o[i % c] }
        }
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        var dx = dy
        let c = inputShape.last ?? 1
        let s = scale.count == 1 ? [Float](repeating: scale[0], count: c) : scale
        dx.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] *= s[i % c] }
        }
        return dx
    }
}

// MARK: The Keras kind

/// Keras `Rescaling`: x · scale + offset, one number each, or (`channelScale`/`channelOffset`)
/// one per channel of the last axis.
package struct RescalingConfig: SingleInputOp, Equatable {
    package var scale: Float
    package var offset: Float
    /// Per-channel values when the config gives a list (nil: `scale`/`offset` for every value).
    package var channelScale: [Float]?
    package var channelOffset: [Float]?
    package init(scale: Float, offset: Float = 0) { self.scale = scale; self.offset = offset }

    package static var kerasClassNames: [String] { ["Rescaling"] }

    package init(keras k: KerasLayerConfig) throws {
        /// A number, or a list of finite numbers (Keras broadcasts it on the last axis).
        func values(_ key: String, default fallback: Double) throws -> [Float] {
            switch k[key] {
            case nil: return [Float(fallback)]
            case let v as Double where v.isFinite: return [Float(v)]
            case let l as [Any]:
                let numbers = l.compactMap { ($0 as? Double).flatMap { $0.isFinite ? Float($0) : nil } }
                guard !l.isEmpty, numbers.count == l.count, l.count <= KerasLayerConfig.maximumSize else {
                    throw k.unsupported("'\(key)' must be a finite number or a list of them, not \(describe(l))")
                }
                return numbers
            case let v?: throw k.unsupported("'\(key)' must be a finite number or a list of them, not \(describe(v))")
            }
        }
        let scales = try values("scale", default: 1), offsets = try values("offset", default: 0)
        self.init(scale: scales.count == 1 ? scales[0] : 1, offset: offsets.count == 1 ? offsets[0] : 0)
        if scales.count > 1 { channelScale = scales }
        if offsets.count > 1 { channelOffset = offsets }
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["scale"] = channelScale.map { $0.map(Double.init) as Any } ?? Double(scale)
        c["offset"] = channelOffset.map { $0.map(Double.init) as Any } ?? Double(offset)
    }

    /// Whether one value scales and shifts every value (no per-channel arrays).
    package var isUniform: Bool { channelScale == nil && channelOffset == nil }

    package func outputShape(input: [Int], layer: String) throws -> [Int] {
        for (what, list) in [("scale", channelScale), ("offset", channelOffset)] {
            if let list, list.count != input.last {
                throw XferError.badInput(layer, "Rescaling with \(list.count) \(what) values on an input \(shapeText(input)) (one per channel of the last axis)")
            }
        }
        return input
    }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        _ = try outputShape(input: inputShape, layer: spec.name)
        return RescalingLayer(name: spec.name, scales: channelScale ?? [scale], offsets: channelOffset ?? [offset], inputShape: inputShape)
    }
}
