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
//
// c is one number or one per channel (the last axis), as TensorFlow broadcasts it. Anything else
// (two tensors, other functions, other slices) is refused by name. Backward: dx = dy, dy·c,
// dy / c, or dy reversed.
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
    var outputShape: [Int] { inputShape }
    let op: TensorOpConfig

    init(name: String, op: TensorOpConfig, inputShape: [Int]) {
        self.name = name; self.op = op; self.inputShape = inputShape
    }

    func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        let c = op.constant, k = c.count
        y.values.withUnsafeMutableBufferPointer { p in
            switch op.function {
            case .add: for i in 0..<p.count { p[i] += c[i % k] }
            case .subtract: for i in 0..<p.count { p[i] -= c[i % k] }
            case .multiply: for i in 0..<p.count { p[i] *= c[i % k] }
            case .divide: for i in 0..<p.count { p[i] /= c[i % k] }
            case .reverseChannels: reverseLastAxis(p, channels: inputShape.last ?? 1)
            }
        }
        return y
    }

    func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradient: Bool) -> Tensor? {
        guard needInputGradient else { return nil }
        var dx = dy
        let c = op.constant, k = c.count
        dx.values.withUnsafeMutableBufferPointer { p in
            switch op.function {
            case .add, .subtract: break
            case .multiply: for i in 0..<p.count { p[i] *= c[i % k] }
            case .divide: for i in 0..<p.count { p[i] /= c[i % k] }
            case .reverseChannels: reverseLastAxis(p, channels: inputShape.last ?? 1)
            }
        }
        return dx
    }
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
    enum Function: String, Sendable { case add, subtract, multiply, divide, reverseChannels }
    var function: Function
    /// One value, or one per channel; empty for `reverseChannels`.
    var constant: [Float]

    static var kerasClassNames: [String] { ["TFOpLambda", "SlicingOpLambda"] }
    /// The Keras 3 operation classes read as tensor ops (module `keras.src.ops.numpy`).
    static let keras3Classes: [String: Function] = [
        "Add": .add, "Subtract": .subtract, "Multiply": .multiply, "Divide": .divide, "TrueDivide": .divide,
    ]
    /// The tf-keras functions read as tensor ops.
    static let tfFunctions: [String: Function] = [
        "__operators__.add": .add, "math.add": .add, "nn.bias_add": .add, "math.subtract": .subtract,
        "math.multiply": .multiply, "math.truediv": .divide, "math.divide": .divide,
        "__operators__.getitem": .reverseChannels,
    ]

    var kerasClassName: String { function == .reverseChannels ? "SlicingOpLambda" : "TFOpLambda" }

    init(function: Function, constant: [Float]) {
        self.function = function; self.constant = constant
    }

    /// tf-keras: `function` in the config, the constant in the call's kwargs (`y`, or `bias` for
    /// bias_add), the call being `[prev, 0, 0, {kwargs}]`.
    init(keras k: KerasLayerConfig) throws {
        let name = k["function"] as? String ?? "?"
        guard let f = Self.tfFunctions[name] else {
            throw k.unsupported("the TensorFlow function '\(name)'; xfer reads only \(Self.tfFunctions.keys.sorted().joined(separator: ", ")) with a constant")
        }
        guard let call = k.call as? [Any], call.count == 4, call[0] is String, let kwargs = call[3] as? [String: Any] else {
            throw k.unsupported("'\(name)' called in a way xfer does not read (one tensor and a constant)")
        }
        if f == .reverseChannels {
            // Exactly x[..., ::-1].
            guard let spec = kwargs["slice_spec"] as? [Any], spec.count == 2,
                  (spec[0] as? [String: Any])?["class_name"] as? String == "__ellipsis__",
                  let s = spec[1] as? [String: Any], s["start"] is NSNull, s["stop"] is NSNull, exactInt(s["step"]) == -1 else {
                throw k.unsupported("a slice other than x[..., ::-1]")
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
        if k.className == "GetItem" {
            // Exactly x[..., ::-1].
            guard let call = k.call as? [String: Any], let args = call["args"] as? [Any], args.count == 2,
                  let spec = args[1] as? [Any], spec.count == 2,
                  (spec[0] as? [String: Any])?["class_name"] as? String == "__ellipsis__",
                  let slice = spec[1] as? [String: Any], slice["class_name"] as? String == "__slice__",
                  let s = slice["config"] as? [String: Any], s["start"] is NSNull, s["stop"] is NSNull, exactInt(s["step"]) == -1 else {
                throw k.unsupported("a GetItem other than x[..., ::-1]")
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
        case .reverseChannels: return "__operators__.getitem"
        }
    }

    /// The Keras 3 operation class.
    var keras3ClassName: String {
        switch function {
        case .add: return "Add"
        case .subtract: return "Subtract"
        case .multiply: return "Multiply"
        case .divide: return "TrueDivide"
        case .reverseChannels: return "GetItem"
        }
    }

    /// tf-keras's call kwargs for this op (the constant as `y`, or the slice).
    var tfKwargs: [String: Any] {
        if function == .reverseChannels {
            return ["slice_spec": [["class_name": "__ellipsis__"], ["start": NSNull(), "stop": NSNull(), "step": -1]]]
        }
        return ["y": constantArgument(keras3: false, rank: 1), "name": NSNull()]
    }

    /// The constant as a call argument: a number, or a Keras 3 `__tensor__` of shape (1, …, 1, C)
    /// (tf-keras: a list); for the reversal, Keras 3's `[..., ::-1]`.
    func constantArgument(keras3: Bool, rank: Int) -> Any {
        if function == .reverseChannels {
            return [["class_name": "__ellipsis__", "config": [String: Any]()] as [String: Any],
                    ["class_name": "__slice__", "config": ["start": NSNull(), "stop": NSNull(), "step": -1] as [String: Any]] as [String: Any]]
        }
        if constant.count == 1 { return Double(constant[0]) }
        let values = constant.map(Double.init)
        guard keras3 else { return values }
        var nested: Any = values
        for _ in 0..<rank { nested = [nested] }
        return ["class_name": "__tensor__", "config": ["value": nested, "dtype": "float32"] as [String: Any]] as [String: Any]
    }

    func outputShape(input: [Int], layer: String) throws -> [Int] {
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
