// CustomScaleLayer: InceptionResNetV2's scaled residual, `inputs[0] + inputs[1] · scale`, as
// keras.applications registers it (Keras 3 `CustomScaleLayer`, tf-keras `Custom>CustomScaleLayer`),
// in float32. The two inputs have one shape. Backward: d0 = dy, d1 = dy · scale.
//
// The Keras kind, `CustomScaleConfig` (end of file).

/// A `CustomScaleLayer`: the shortcut plus the scaled branch.
final class CustomScaleMerge: MergeLayer {
    let name: String
    let inputShapes: [[Int]]
    let outputShape: [Int]
    let scale: Float

    init(name: String, scale: Float, inputShapes: [[Int]]) throws {
        guard inputShapes.count == 2, inputShapes[0] == inputShapes[1] else {
            throw XferError.badInput("layer '\(name)'", "CustomScaleLayer takes two inputs of one shape, got \(inputShapes.map { shapeText($0) }.joined(separator: ", "))")
        }
        self.name = name; self.scale = scale; self.inputShapes = inputShapes; outputShape = inputShapes[0]
    }

    func forward(_ inputs: [Tensor], _ context: ForwardContext) -> Tensor {
        var y = context.output(inputs[0].shape)
        let s = scale
        inputs[0].values.withUnsafeBufferPointer { a in
            inputs[1].values.withUnsafeBufferPointer { b in
                y.values.withUnsafeMutableBufferPointer { p in
                    for i in 0..<p.count { p[i] = a[i] + b[i] * s }
                }
            }
        }
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradients: [Bool]) -> [Tensor?] {
        var scaled: Tensor?
        if needInputGradients[1] {
            var d = dy
            let s = scale
            d.values.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] *= s } }
            scaled = d
        }
        return [needInputGradients[0] ? dy : nil, scaled]
    }
}

// MARK: The Keras kind

/// keras.applications' `CustomScaleLayer(scale)`.
struct CustomScaleConfig: LayerOp, Equatable {
    var scale: Float

    static var kerasClassNames: [String] { ["CustomScaleLayer"] }
    static var kerasAliases: [String] { ["Custom>CustomScaleLayer"] }

    init(scale: Float) { self.scale = scale }
    init(keras k: KerasLayerConfig) throws { scale = Float(try k.double("scale")) }

    func writeKeras(_ c: inout [String: Any], className: String) { c["scale"] = Double(scale) }

    var takesSeveralInputs: Bool { true }
    var keras3Registration: (module: String, name: String)? { ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer") }
    var finishesBlock: Bool { true }

    func outputShape(inputs: [[Int]], layer: String) throws -> [Int] {
        guard inputs.count == 2, inputs[0] == inputs[1] else {
            throw XferError.badInput(layer, "CustomScaleLayer takes two inputs of one shape, got \(inputs.map { shapeText($0) }.joined(separator: ", "))")
        }
        return inputs[0]
    }

    func makeKernel(_ spec: LayerSpec, inputShapes: [[Int]]) throws -> NodeKernel {
        try spec.onlyWeights([])
        return .merge(try CustomScaleMerge(name: spec.name, scale: scale, inputShapes: inputShapes))
    }
}
