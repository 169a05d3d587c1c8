// Tensor ops written as layers: what `x + 3.0`, `x / 127.5 - 1` or `preprocess_input(x)` on a
// symbolic tensor leave in a model's config — tf-keras's `TFOpLambda` / `SlicingOpLambda`
// (`"function": "math.truediv"`, the constant in the call's kwargs) and Keras 3's operation
// layers (`"module": "keras.src.ops.numpy"`, `"class_name": "TrueDivide"`, the constant in the
// call's args). MobileNetV3 (tf-keras) builds hard_sigmoid from them; the tutorial model
// carries its `preprocess_input` in them.
//
// They are read as a fixed allow-list of pure element-wise ops with a constant — never as code:
//
//   add        y = x + c       (also tf.nn.bias_add, and c + x)
//   subtract   y = x − c       (c − x is refused)
//   multiply   y = x · c       (also c · x)
//   divide     y = x / c       (truediv; c / x is refused)
//   reverse    y = x[..., ::-1]  (tf-keras caffe preprocessing: RGB → BGR)
//   channel    y = x[..., k]     (one channel, the last axis dropped; k may count from the end)
//   stack      y = stack([x₀, …], axis=-1)  (tensors of one shape on a new last axis)
//   gelu       y = gelu(x), exact x/2·(1 + erf(x/√2)) or, with `approximate`, TensorFlow's
//              x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (Keras 3 `ops.gelu`, tf-keras `tf.nn.gelu`)
//
// Keras 3's caffe `preprocess_input` on a symbolic tensor writes RGB → BGR as three channel
// GetItems and a Stack, then an Add of the per-channel means.
//
// c is one number or one per channel (the last axis), as TensorFlow broadcasts it. Anything else
// (two tensors, other functions, other slices) is refused by name. Backward: dx = dy, dy·c,
// dy / c, dy reversed, dy put back in channel k (zeros elsewhere), each dxᵢ = dy[..., i], or
// dy·gelu′(x) (the input kept for it).
//
// The Keras kind, `TensorOpConfig` (end of file): it writes itself back as the writer's Keras
// spells it (TFOpLambda for tf-keras, the ops class for Keras 3).

import Foundation

/// One tensor op layer.
final class TensorOpLayer: TrainableLayer {
    var training = false
    var trainable = false
    let name: String
    let inputShape: [Int]
    var outputShape: [Int] { op.function == .channel ? Array(inputShape.dropLast()) : inputShape }
    let op: TensorOpConfig
    /// gelu: the last input, kept only for backward.
    var savedInput: Tensor?

    init(name: String, op: TensorOpConfig, inputShape: [Int]) {
        self.name = name; self.op = op; self.inputShape = inputShape
    }

    /// The channel `.channel` selects, counted from 0.
    var channel: Int { let c = inputShape.last ?? 1; return (op.index % c + c) % c }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        if op.function == .channel {
            let c = inputShape.last ?? 1, k = channel
            var y = context.output([x.shape[0]] + outputShape)
            x.values.withUnsafeBufferPointer { px in
                y.values.withUnsafeMutableBufferPointer { py in
                    for i in 0..<py.count { py[i] = px[i * c + k] }
                }
            }
            _ = context.release(x)
            return y
        }
        if op.function == .gelu {
            if context.keepForBackward { savedInput = Tensor(shape: x.shape, values: Array(x.values)) }
            var y = x
            let approximate = op.index != 0
            y.values.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] = gelu(p[i], approximate: approximate) }
            }
            return y
        }
        var y = x
        let c = op.constant, k = c.count
        y.values.withUnsafeMutableBufferPointer { p in
            switch op.function {
            case .add: for i in 0..<p.count { p[i] += c[i % k] }
            case .subtract: for i in 0..<p.count { p[i] -= c[i % k] }
            case .multiply: for i in 0..<p.count { p[i] *= c[i % k] }
            case .divide: for i in 0..<p.count { p[i] /= c[i % k] }
            case .reverseChannels: reverseLastAxis(p, channels: inputShape.last ?? 1)
            case .channel, .stack, .gelu: preconditionFailure("not an in-place op")
            }
        }
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        if op.function == .channel {
            let c = inputShape.last ?? 1, k = channel
            var dx = Tensor(shape: [dy.shape[0]] + inputShape, repeating: 0)
            dy.values.withUnsafeBufferPointer { pd in
                dx.values.withUnsafeMutableBufferPointer { px in
                    for i in 0..<pd.count { px[i * c + k] = pd[i] }
                }
            }
            return dx
        }
        if op.function == .gelu {
            guard let x = savedInput else { preconditionFailure("layer '\(name)': gelu backward without its input") }
            var dx = dy
            let approximate = op.index != 0
            dx.values.withUnsafeMutableBufferPointer { p in
                x.values.withUnsafeBufferPointer { px in
                    for i in 0..<p.count { p[i] *= geluDerivative(px[i], approximate: approximate) }
                }
            }
            savedInput = nil
            return dx
        }
        var dx = dy
        let c = op.constant, k = c.count
        dx.values.withUnsafeMutableBufferPointer { p in
            switch op.function {
            case .add, .subtract: break
            case .multiply: for i in 0..<p.count { p[i] *= c[i % k] }
            case .divide: for i in 0..<p.count { p[i] /= c[i % k] }
            case .reverseChannels: reverseLastAxis(p, channels: inputShape.last ?? 1)
            case .channel, .stack, .gelu: break
            }
        }
        return dx
    }
}

/// `stack([x₀, …, xₙ₋₁], axis=-1)`: y[..., i] = xᵢ for inputs of one shape.
final class StackMerge: MergeLayer {
    let name: String
    let inputShapes: [[Int]]
    let outputShape: [Int]

    init(name: String, inputShapes: [[Int]]) {
        self.name = name; self.inputShapes = inputShapes; outputShape = inputShapes[0] + [inputShapes.count]
    }

    func forward(_ inputs: [Tensor], _ context: ForwardContext) -> Tensor {
        let n = inputs.count
        var y = context.output([inputs[0].shape[0]] + outputShape)
        y.values.withUnsafeMutableBufferPointer { py in
            for (i, x) in inputs.enumerated() {
                x.values.withUnsafeBufferPointer { px in
                    for j in 0..<px.count { py[j * n + i] = px[j] }
                }
            }
        }
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradients: [Bool]) -> [Tensor?] {
        let n = inputShapes.count
        return needInputGradients.enumerated().map { i, need in
            guard need else { return nil }
            var dx = Tensor(shape: [dy.shape[0]] + inputShapes[i], repeating: 0)
            dy.values.withUnsafeBufferPointer { pd in
                dx.values.withUnsafeMutableBufferPointer { px in
                    for j in 0..<px.count { px[j] = pd[j * n + i] }
                }
            }
            return dx
        }
    }
}

/// TensorFlow's gelu: exact (erf) or its tanh approximation.
@inline(__always)
private func gelu(_ x: Float, approximate: Bool) -> Float {
    guard approximate else { return 0.5 * x * (1 + erff(x * 0.70710678118654752440)) }
    return 0.5 * x * (1 + tanhf(0.7978845608028654 * (x + 0.044715 * x * x * x)))
}

/// d gelu / dx.
@inline(__always)
private func geluDerivative(_ x: Float, approximate: Bool) -> Float {
    guard approximate else {
        return 0.5 * (1 + erff(x * 0.70710678118654752440)) + x * 0.3989422804014327 * expf(-0.5 * x * x)
    }
    let c: Float = 0.7978845608028654
    let t = tanhf(c * (x + 0.044715 * x * x * x))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
}

private func reverseLastAxis(_ p: UnsafeMutableBufferPointer<Float>, channels c: Int) {
    guard c > 1 else { return }
    for start in stride(from: 0, to: p.count, by: c) {
        var a = start, b = start + c - 1
        while a < b { p.swapAt(a, b); a += 1; b -= 1 }
    }
}

// MARK: The Keras kind

/// A tensor op layer of the allow-list above.
struct TensorOpConfig: SingleInputOp, Equatable {
    enum Function: String, Sendable { case add, subtract, multiply, divide, reverseChannels, channel, stack, gelu }
    var function: Function
    /// One value, or one per channel; empty for `reverseChannels`, `channel` and `stack`.
    var constant: [Float]
    /// The channel of `channel` (negative: from the end, as Python indexes); for `gelu`, 1 when
    /// approximate.
    var index = 0

    static var kerasClassNames: [String] { ["TFOpLambda", "SlicingOpLambda"] }
    /// The Keras 3 operation classes read as tensor ops (module `keras.src.ops.numpy`).
    static let keras3Classes: [String: Function] = [
        "Add": .add, "Subtract": .subtract, "Multiply": .multiply, "Divide": .divide, "TrueDivide": .divide,
        "Stack": .stack, "Gelu": .gelu,
    ]
    /// The tf-keras functions read as tensor ops.
    static let tfFunctions: [String: Function] = [
        "__operators__.add": .add, "math.add": .add, "nn.bias_add": .add, "math.subtract": .subtract,
        "math.multiply": .multiply, "math.truediv": .divide, "math.divide": .divide,
        "__operators__.getitem": .reverseChannels, "stack": .stack, "nn.gelu": .gelu,
    ]

    var kerasClassName: String { function == .reverseChannels || function == .channel ? "SlicingOpLambda" : "TFOpLambda" }

    init(function: Function, constant: [Float], index: Int = 0) {
        self.function = function; self.constant = constant; self.index = index
    }

    /// The channel of a slice `[..., k]` (an ellipsis, then a whole number), nil for another slice.
    private static func channelIndex(_ spec: Any?) -> Int? {
        guard let spec = spec as? [Any], spec.count == 2,
              (spec[0] as? [String: Any])?["class_name"] as? String == "__ellipsis__",
              let n = spec[1] as? NSNumber, !isBoolean(n), let k = exactInt(n), abs(k) <= KerasLayerConfig.maximumSize else { return nil }
        return k
    }

    /// tf-keras: `function` in the config, the constant in the call's kwargs (`y`, or `bias` for
    /// bias_add), the call being `[prev, 0, 0, {kwargs}]`.
    init(keras k: KerasLayerConfig) throws {
        let name = k["function"] as? String ?? "?"
        guard let f = Self.tfFunctions[name] else {
            throw k.unsupported("the TensorFlow function '\(name)'; xfer reads only \(Self.tfFunctions.keys.sorted().joined(separator: ", ")) with a constant")
        }
        if f == .stack {
            // tf.stack([x₀, …], axis=-1): each tensor of the call carries the kwargs.
            guard var call = k.call as? [Any], call.count >= 1 else {
                throw k.unsupported("a tf.stack other than of tensors on a new last axis (axis=-1)")
            }
            if call.first is String { call = [call] }  // one tensor, written as the tensor itself
            guard call.allSatisfy({ t in ((t as? [Any])?.last as? [String: Any]).map { exactInt($0["axis"]) == -1 } ?? false }) else {
                throw k.unsupported("a tf.stack other than of tensors on a new last axis (axis=-1)")
            }
            self.init(function: .stack, constant: [])
            return
        }
        guard let call = k.call as? [Any], call.count == 4, call[0] is String, let kwargs = call[3] as? [String: Any] else {
            throw k.unsupported("'\(name)' called in a way xfer does not read (one tensor and a constant)")
        }
        if f == .gelu {
            self.init(function: .gelu, constant: [], index: kwargs["approximate"] as? Bool == true ? 1 : 0)
            return
        }
        if f == .reverseChannels, let c = Self.channelIndex(kwargs["slice_spec"]) {
            self.init(function: .channel, constant: [], index: c)
            return
        }
        if f == .reverseChannels {
            // Exactly x[..., ::-1].
            guard let spec = kwargs["slice_spec"] as? [Any], spec.count == 2,
                  (spec[0] as? [String: Any])?["class_name"] as? String == "__ellipsis__",
                  let s = spec[1] as? [String: Any], s["start"] is NSNull, s["stop"] is NSNull, exactInt(s["step"]) == -1 else {
                throw k.unsupported("a slice other than x[..., ::-1] or x[..., k]")
            }
            self.init(function: .reverseChannels, constant: [])
            return
        }
        let value = kwargs[name == "nn.bias_add" ? "bias" : "y"]
        if let df = kwargs["data_format"] as? String, df != "NHWC" { throw k.unsupported("bias_add with data_format \(df)") }
        guard let value, let c = constantValues(value) else {
            throw k.unsupported("'\(name)' of two tensors or of a constant xfer does not read (\(value.map(describe) ?? "none"))")
        }
        self.init(function: f, constant: c)
    }

    /// Keras 3: the class names the function, the call's args hold the tensor and the constant.
    init(keras3 k: KerasLayerConfig) throws {
        if k.className == "Stack" {
            guard exactInt(k["axis"]) == -1 else { throw k.unsupported("a Stack on axis \(k["axis"].map(describe) ?? "0") (the new last axis only, axis=-1)") }
            self.init(function: .stack, constant: [])
            return
        }
        if k.className == "Gelu" {
            self.init(function: .gelu, constant: [], index: k.bool("approximate", default: true) ? 1 : 0)
            return
        }
        if k.className == "GetItem", let call = k.call as? [String: Any], let args = call["args"] as? [Any], args.count == 2,
           let c = Self.channelIndex(args[1]) {
            self.init(function: .channel, constant: [], index: c)
            return
        }
        if k.className == "GetItem" {
            // Exactly x[..., ::-1].
            guard let call = k.call as? [String: Any], let args = call["args"] as? [Any], args.count == 2,
                  let spec = args[1] as? [Any], spec.count == 2,
                  (spec[0] as? [String: Any])?["class_name"] as? String == "__ellipsis__",
                  let slice = spec[1] as? [String: Any], slice["class_name"] as? String == "__slice__",
                  let s = slice["config"] as? [String: Any], s["start"] is NSNull, s["stop"] is NSNull, exactInt(s["step"]) == -1 else {
                throw k.unsupported("a GetItem other than x[..., ::-1] or x[..., k]")
            }
            self.init(function: .reverseChannels, constant: [])
            return
        }
        guard let f = Self.keras3Classes[k.className] else {
            throw k.unsupported("the operation \(k.className); xfer reads only \(Self.keras3Classes.keys.sorted().joined(separator: ", ")) with a constant")
        }
        guard let call = k.call as? [String: Any], let args = call["args"] as? [Any], args.count == 2 else {
            throw k.unsupported("\(k.className) called in a way xfer does not read (one tensor and a constant)")
        }
        func isTensor(_ v: Any) -> Bool { (v as? [String: Any])?["class_name"] as? String == "__keras_tensor__" }
        guard isTensor(args[0]) != isTensor(args[1]) else {
            throw k.unsupported("\(k.className) of two tensors (use the \(k.className) layer) or of two constants")
        }
        let first = isTensor(args[1])
        guard let c = constantValues(first ? args[0] : args[1]) else {
            throw k.unsupported("\(k.className) with a constant xfer does not read")
        }
        // c + x and c · x are x + c and x · c; c − x and c / x are not on the list.
        if first && (f == .divide || f == .subtract) { throw k.unsupported("a constant minus or divided by a tensor") }
        self.init(function: f, constant: c)
    }

    /// The merge layer of a tensor op whose two arguments are tensors (`x + y`, `x * y`, `x − y`),
    /// tf-keras's (`y` a tensor in the call's kwargs) or Keras 3's (two tensors in its args);
    /// nil for anything else.
    static func mergeOfTwoTensors(_ k: KerasLayerConfig, module: String?) -> MergeOp? {
        let byName: [String: MergeOp] = ["add": .add, "subtract": .subtract, "multiply": .multiply]
        if k.className == "TFOpLambda", let f = k["function"] as? String {
            guard let call = k.call as? [Any], call.count == 4, let kw = call[3] as? [String: Any],
                  let y = kw["y"] as? [Any], y.count >= 3, y[0] is String else { return nil }
            switch f {
            case "__operators__.add", "math.add": return .add
            case "math.subtract": return .subtract
            case "math.multiply": return .multiply
            default: return nil
            }
        }
        guard module?.hasPrefix("keras.src.ops") == true, let call = k.call as? [String: Any],
              let args = call["args"] as? [Any], args.count == 2,
              args.allSatisfy({ ($0 as? [String: Any])?["class_name"] as? String == "__keras_tensor__" }) else { return nil }
        return byName[k.className.lowercased()]
    }

    func writeKeras(_ c: inout [String: Any], className: String) {
        c["function"] = tfFunctionName
    }

    /// The tf-keras function this op is written as.
    var tfFunctionName: String {
        switch function {
        case .add: return "__operators__.add"
        case .subtract: return "math.subtract"
        case .multiply: return "math.multiply"
        case .divide: return "math.truediv"
        case .reverseChannels, .channel: return "__operators__.getitem"
        case .stack: return "stack"
        case .gelu: return "nn.gelu"
        }
    }

    /// The Keras 3 operation class.
    var keras3ClassName: String {
        switch function {
        case .add: return "Add"
        case .subtract: return "Subtract"
        case .multiply: return "Multiply"
        case .divide: return "TrueDivide"
        case .reverseChannels, .channel: return "GetItem"
        case .stack: return "Stack"
        case .gelu: return "Gelu"
        }
    }

    /// The Keras 3 operation's config beyond its name.
    var keras3Config: [String: Any] {
        switch function {
        case .stack: return ["axis": -1]
        case .gelu: return ["approximate": index != 0]
        default: return [:]
        }
    }

    /// The Keras 3 module of the operation.
    var keras3Module: String { function == .gelu ? "keras.src.ops.nn" : "keras.src.ops.numpy" }

    /// tf-keras's call kwargs for this op (the constant as `y`, or the slice).
    var tfKwargs: [String: Any] {
        if function == .reverseChannels {
            return ["slice_spec": [["class_name": "__ellipsis__"], ["start": NSNull(), "stop": NSNull(), "step": -1]]]
        }
        if function == .channel { return ["slice_spec": [["class_name": "__ellipsis__"], index] as [Any]] }
        if function == .stack { return ["axis": -1] }
        if function == .gelu { return ["approximate": index != 0, "name": NSNull()] }
        return ["y": constantArgument(keras3: false, rank: 1) ?? NSNull(), "name": NSNull()]
    }

    /// The constant as a call argument: a number, or a Keras 3 `__tensor__` of shape (1, …, 1, C)
    /// (tf-keras: a list); for the reversal, Keras 3's `[..., ::-1]`; for a channel `[..., k]`;
    /// nil for a stack (its call has the tensors only).
    func constantArgument(keras3: Bool, rank: Int) -> Any? {
        if function == .stack || function == .gelu { return nil }
        if function == .channel { return [["class_name": "__ellipsis__", "config": [String: Any]()] as [String: Any], index] as [Any] }
        if function == .reverseChannels {
            return [["class_name": "__ellipsis__", "config": [String: Any]()] as [String: Any],
                    ["class_name": "__slice__", "config": ["start": NSNull(), "stop": NSNull(), "step": -1] as [String: Any]] as [String: Any]]
        }
        if constant.count == 1 { return Double(constant[0]) }
        let values = constant.map(Double.init)
        guard keras3 else { return values }
        var nested: Any = values
        // (1, …, 1, C): `rank` axes in all, the values being the last.
        for _ in 0..<max(rank - 1, 0) { nested = [nested] }
        return ["class_name": "__tensor__", "config": ["value": nested, "dtype": "float32"] as [String: Any]] as [String: Any]
    }

    var takesSeveralInputs: Bool { function == .stack }

    func outputShape(inputs: [[Int]], layer: String) throws -> [Int] {
        guard function == .stack else { return try outputShape(input: inputs[0], layer: layer) }
        guard !inputs.isEmpty, inputs.allSatisfy({ $0 == inputs[0] }) else {
            throw XferError.badInput(layer, "stacks tensors of different shapes (\(inputs.map { shapeText($0) }.joined(separator: ", ")))")
        }
        return inputs[0] + [inputs.count]
    }

    func makeKernel(_ spec: LayerSpec, inputShapes: [[Int]]) throws -> NodeKernel {
        try spec.onlyWeights([])
        _ = try outputShape(inputs: inputShapes, layer: spec.name)
        if function == .stack { return .merge(StackMerge(name: spec.name, inputShapes: inputShapes)) }
        return .layer(try makeLayer(spec, inputShape: inputShapes[0]))
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
        if function == .channel {
            guard let c = input.last, index < c && index >= -c else {
                throw XferError.badInput(layer, "takes channel \(index) of an input \(shapeText(input))")
            }
            return Array(input.dropLast())
        }
        if constant.count > 1 && constant.count != (input.last ?? 0) {
            throw XferError.badInput(layer, "a constant of \(constant.count) values for an input \(shapeText(input)) (one or one per channel)")
        }
        return input
    }

    var finishesBlock: Bool { true }

    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer {
        TensorOpLayer(name: spec.name, op: self, inputShape: inputShape)
    }
}

/// A constant argument: a number, a (nested) list of numbers, or Keras 3's `__tensor__`; its
/// values in row-major order, nil for anything else (a tensor, a string).
private func constantValues(_ value: Any) -> [Float]? {
    if let d = value as? [String: Any] {
        guard d["class_name"] as? String == "__tensor__", let cfg = d["config"] as? [String: Any], let v = cfg["value"] else { return nil }
        return constantValues(v)
    }
    if let n = value as? NSNumber, !isBoolean(n), n.doubleValue.isFinite { return [Float(n.doubleValue)] }
    guard let list = value as? [Any], !list.isEmpty else { return nil }
    var out: [Float] = []
    for item in list {
        guard let v = constantValues(item) else { return nil }
        out += v
    }
    return out
}
