// Rescaling: y = x · scale + offset, element-wise, in float32 as Keras computes it
// (`inputs * scale + offset`), e.g. `Rescaling(1/255)` or `Rescaling(1/127.5, offset=-1)`
// in front of a base. Runs in place. Backward: dx = dy · scale.
//
// The Keras kind, `RescalingConfig` (end of file): its config as Keras reads and writes it, its
// output shape and weights, and the engine layer it builds (Ops/LayerOp.swift).

/// A Keras `Rescaling` layer (one scale and one offset for every value).
package final class RescalingLayer: TrainableLayer {
    package var training = false
    package var trainable = false
    package let name: String
    package let inputShape: [Int]
    package var outputShape: [Int] { inputShape }
    let scale: Float
    let offset: Float

    init(name: String, scale: Float, offset: Float, inputShape: [Int]) {
        self.name = name; self.scale = scale; self.offset = offset; self.inputShape = inputShape
    }

    package func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        let s = scale, o = offset
        y.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = p[i] * s + o }
        }
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        var dx = dy
        let s = scale
        dx.values.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] *= s }
        }
        return dx
    }
}

// MARK: The Keras kind

/// Keras `Rescaling`: x · scale + offset, one number each.
package struct RescalingConfig: SingleInputOp, Equatable {
    package var scale: Float
    package var offset: Float
    package init(scale: Float, offset: Float = 0) { self.scale = scale; self.offset = offset }

    package static var kerasClassNames: [String] { ["Rescaling"] }

    package init(keras k: KerasLayerConfig) throws {
        guard let scale = k["scale"] as? Double, scale.isFinite else {
            throw k.unsupported("a per-channel scale (\(k["scale"] ?? "none")) is not supported (one number only)")
        }
        guard let offset = k["offset"] == nil ? 0 : k["offset"] as? Double, offset.isFinite else {
            throw k.unsupported("a per-channel offset (\(k["offset"]!)) is not supported (one number only)")
        }
        self.init(scale: Float(scale), offset: Float(offset))
    }

    package func writeKeras(_ c: inout [String: Any], className: String) {
        c["scale"] = Double(scale)
        c["offset"] = Double(offset)
    }

    package func outputShape(input: [Int], layer: String) throws -> [Int] { input }

    package func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        RescalingLayer(name: spec.name, scale: scale, offset: offset, inputShape: inputShape)
    }
}
