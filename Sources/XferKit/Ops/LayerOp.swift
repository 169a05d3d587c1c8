// What xfer knows about one Keras layer kind, in one place: the class names it reads, how its
// Keras config is parsed (with the range checks every op shares, `KerasLayerConfig`) and
// written back, its output shape, the weights it holds, its forward FLOPs, how the planner
// treats it, and the engine kernel that runs it.
//
// Each kind's op lives in its engine layer's file (Engine/Layers/, the merge kinds in
// Engine/MergeLayer.swift), beside the forward and backward passes it builds; the list of
// kinds is Ops/Registry.swift. The op value is the layer's config (`Conv2DConfig`, ...), held
// by `LayerKind.op`.

import Foundation

/// One weight a layer expects: its role, its shape, whether it is of a trainable kind.
package typealias ExpectedWeight = (role: WeightRole, shape: [Int], trainableKind: Bool)

/// A Keras layer kind with one or more inputs, other than `InputLayer` and nested models.
package protocol LayerOp: Sendable {
    /// The Keras class names shown as supported (`xfer import --help`, the error hint).
    static var kerasClassNames: [String] { get }
    /// Other spellings Keras also reads as this kind (`Convolution2D`, `MaxPool2D`, ...).
    static var kerasAliases: [String] { get }
    /// The class name of this op's value when it has no other (a spec built in code): the
    /// first of `kerasClassNames`, or for a merge its own.
    var kerasClassName: String { get }

    /// Parses a layer config of one of this kind's class names (`keras.className`).
    init(keras: KerasLayerConfig) throws
    /// Adds this kind's keys to `config` (which holds name, trainable, dtype), as the Keras 2
    /// constructor of `className` takes them.
    func writeKeras(_ config: inout [String: Any], className: String)

    /// A kind registered by keras.applications rather than in `keras.layers`: the module and
    /// registered name a Keras 3 config gives it (nil: `keras.layers`).
    var keras3Registration: (module: String, name: String)? { get }

    /// Whether the layer takes a list of inputs (a merge); the others take one.
    var takesSeveralInputs: Bool { get }
    /// The output shape (no batch axis) for the inputs of one call; errors name `layer`.
    func outputShape(inputs: [[Int]], layer: String) throws -> [Int]
    /// The weights the layer must have for an input of `input`, in Keras's legacy order.
    func expectedWeights(input: [Int]) -> [ExpectedWeight]
    /// Whether the layer holds weights at all.
    var hasWeights: Bool { get }
    /// Floating-point operations of the forward pass on one sample (a multiply-add counts 2);
    /// 0 for the kinds whose cost is noise beside convolutions and dense products.
    func forwardFLOPs(input: [Int]) -> Double

    /// A layer of a convolutional base (convolution, pooling): the base ends after the last one.
    var isFeature: Bool { get }
    /// A layer that finishes the block before it (normalisation, activation, padding, merge),
    /// so it belongs to the base when it follows the last feature layer.
    var finishesBlock: Bool { get }
    /// Whether training-mode forward passes draw random numbers (Dropout with a rate).
    var isRandomInTraining: Bool { get }

    /// The engine kernel of one call of `spec` on inputs of `inputShapes`, checking the weights.
    func makeKernel(_ spec: LayerSpec, inputShapes: [[Int]]) throws -> NodeKernel
}

extension LayerOp {
    package static var kerasAliases: [String] { [] }
    package var kerasClassName: String { Self.kerasClassNames[0] }
    package var takesSeveralInputs: Bool { false }
    package var keras3Registration: (module: String, name: String)? { nil }
    package func expectedWeights(input: [Int]) -> [ExpectedWeight] { [] }
    package var hasWeights: Bool { false }
    package func forwardFLOPs(input: [Int]) -> Double { 0 }
    package var isFeature: Bool { false }
    package var finishesBlock: Bool { false }
    package var isRandomInTraining: Bool { false }
}

/// A kind with one input: its shape rule and its engine layer.
package protocol SingleInputOp: LayerOp {
    func outputShape(input: [Int], layer: String) throws -> [Int]
    /// The engine layer for an input of `inputShape`; the weights of `spec` are checked
    /// (weightless kinds: by `makeKernel`, which refuses any).
    func makeLayer(_ spec: LayerSpec, inputShape: [Int]) throws -> Layer
}

extension SingleInputOp {
    package func outputShape(inputs: [[Int]], layer: String) throws -> [Int] {
        try outputShape(input: inputs[0], layer: layer)
    }

    package func makeKernel(_ spec: LayerSpec, inputShapes: [[Int]]) throws -> NodeKernel {
        if !hasWeights { try spec.onlyWeights([]) }
        return .layer(try makeLayer(spec, inputShape: inputShapes[0]))
    }
}

/// The (H, W, C) of an image-shaped input, or an error naming `layer`.
func spatialInput(_ input: [Int], layer: String) throws -> (h: Int, w: Int, c: Int) {
    guard input.count == 3 else {
        throw XferError.badInput(layer, "expects an image-shaped input (H, W, C), got \(shapeText(input))")
    }
    return (input[0], input[1], input[2])
}

// MARK: Reading a layer config

/// One layer's Keras config as an op reads it: the raw values, and accessors that check them
/// (sizes bounded by `maximumSize`, finite numbers in range, whole numbers written without a
/// fraction), each error naming the file and the layer.
package struct KerasLayerConfig {
    /// The file, for errors.
    let source: String
    /// The class name as the file spells it.
    package let className: String
    /// The layer's name.
    package let name: String
    /// The `config` object.
    let values: [String: Any]
    /// Written by Keras 3 (false: tf-keras), where a name means different math in the two.
    let keras3: Bool
    /// The layer's first call as the file writes it (its inbound node): tensor ops
    /// (TensorOp.swift) take their constant from it.
    let call: Any?

    init(source: String, className: String, name: String, values: [String: Any], keras3: Bool = true, call: Any? = nil) {
        self.source = source; self.className = className; self.name = name; self.values = values
        self.keras3 = keras3; self.call = call
    }

    /// The raw value of `key`.
    subscript(_ key: String) -> Any? { values[key] }

    /// The largest size (filters, units, kernel, stride, padding, input side) xfer accepts from a
    /// configuration. Real models stay far below; the bound keeps every shape computation and
    /// every product of sizes inside Int64, so nothing read from a file can trap.
    static let maximumSize = 1 << 24

    func fail(_ what: String, hint: String? = nil) -> XferError {
        XferError.badInput(source, what, hint: hint)
    }

    /// This layer is of a kind xfer reads but with a setting it does not run.
    func unsupported(_ why: String) -> XferError {
        fail("layer '\(name)' (\(className)): \(why)", hint: "xfer does not run this layer; see `xfer import --help` for the supported kinds")
    }

    /// A boolean flag, `fallback` when absent or not a boolean.
    func bool(_ key: String, default fallback: Bool) -> Bool { values[key] as? Bool ?? fallback }

    /// A whole number in `minimum...maximumSize`; fractions, strings, huge and negative values are refused.
    func size(_ value: Any?, _ key: String, minimum: Int = 1) throws -> Int {
        guard let v = exactInt(value) else {
            throw fail("layer '\(name)': \(value == nil ? "missing" : "invalid") '\(key)'\(value.map { " (\(describe($0)))" } ?? "")",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        guard v >= minimum, v <= Self.maximumSize else {
            throw fail("layer '\(name)': '\(key)' is \(v); it must be between \(minimum) and \(Self.maximumSize)",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        return v
    }

    /// `size` of the value of `key`.
    func int(_ key: String) throws -> Int { try size(values[key], key) }

    /// A finite number in `range` (a rate, a momentum, an epsilon).
    func double(_ key: String, in range: ClosedRange<Double> = -1e30...1e30, default fallback: Double? = nil) throws -> Double {
        guard let raw = values[key] ?? fallback, !(raw is NSNull) || fallback != nil else {
            throw fail("layer '\(name)': missing '\(key)'", hint: "the model configuration is damaged; save the model again with Keras")
        }
        let value = raw is NSNull ? fallback : (raw as? NSNumber).flatMap { isBoolean($0) ? nil : $0.doubleValue }
        guard let v = value, v.isFinite, range.contains(v) else {
            throw fail("layer '\(name)': '\(key)' is \(describe(raw)); it must be a number in \(range.lowerBound)...\(range.upperBound)",
                       hint: "the model configuration is damaged; save the model again with Keras")
        }
        return v
    }

    /// One size or two (height, width).
    func pair(_ value: Any?, _ key: String, minimum: Int = 1) throws -> (h: Int, w: Int) {
        if let l = value as? [Any] {
            guard l.count == 2 else { throw fail("layer '\(name)': '\(key)' must be one number or two, not \(l.count)") }
            return (try size(l[0], key, minimum: minimum), try size(l[1], key, minimum: minimum))
        }
        let v = try size(value, key, minimum: minimum)
        return (v, v)
    }

    /// `pair` of the value of `key`, `fallback` when absent.
    func pair(_ key: String, default fallback: Any? = nil) throws -> (h: Int, w: Int) {
        try pair(values[key] ?? fallback, key)
    }

    /// Refuses `data_format: channels_first`: xfer's tensors are NHWC, as Keras's default. (The
    /// model reader refuses it for every layer; the image layers say so again where they read.)
    func requireChannelsLast() throws {
        if let f = self["data_format"] as? String, f != "channels_last" {
            throw unsupported("data_format '\(f)' (xfer runs channels_last models)")
        }
    }

    /// A border as Keras's ZeroPadding2D and Cropping2D take it from `key`: one size, (rows,
    /// columns) or ((top, bottom), (left, right)).
    func border(_ key: String, default fallback: Any) throws -> (top: Int, bottom: Int, left: Int, right: Int) {
        let value = values[key] ?? fallback
        if let l = value as? [Any], l.count == 2 {
            if l[0] is [Any] || l[1] is [Any] {
                let (t, b) = try pair(l[0], key, minimum: 0)
                let (le, r) = try pair(l[1], key, minimum: 0)
                return (t, b, le, r)
            }
            let (a, b) = try pair(l, key, minimum: 0)
            return (a, a, b, b)
        }
        let v = try size(value, key, minimum: 0)
        return (v, v, v, v)
    }

    /// Keras `padding`: `valid` (the default) or `same`.
    func padding() throws -> Padding {
        let p = (values["padding"] as? String ?? "valid").lowercased()
        guard let v = Padding(rawValue: p) else { throw fail("layer '\(name)': padding '\(p)' is not supported (valid or same)") }
        return v
    }

    /// Keras `activation` (a name, or Keras 3's serialised function); `linear` when absent.
    func activation(_ key: String = "activation") throws -> Activation {
        let value = values[key]
        var name: String?
        if value == nil || value is NSNull { name = "linear" }
        else if let s = value as? String { name = s }
        else if let d = value as? JSONObject {
            // Keras 3 may serialise a built-in activation as {"class_name": "function", "config": "relu", ...}.
            name = d["config"] as? String ?? (d["config"] as? JSONObject)?["name"] as? String ?? d["class_name"] as? String
        }
        guard let n = name, let a = Activation(kerasName: n) else {
            throw fail("layer '\(self.name)' (\(className)): activation '\(name ?? "?")' is not supported",
                       hint: "supported: " + Activation.allCases.map(\.rawValue).joined(separator: ", "))
        }
        // tf-keras's hard_sigmoid is 0.2·x + 0.5 clipped, not Keras 3's relu6(x + 3)/6.
        if a == .hardSigmoid && !keras3 {
            throw unsupported("tf-keras's hard_sigmoid (0.2·x + 0.5, clipped) differs from Keras 3's, which xfer runs")
        }
        return a
    }
}

/// An integer written as a JSON number without a fraction (JSONSerialization gives NSNumber).
func exactInt(_ value: Any?) -> Int? {
    guard let n = value as? NSNumber, !isBoolean(n) else { return nil }
    let d = n.doubleValue
    guard d.isFinite, d == d.rounded(), abs(d) < 9e15 else { return nil }
    return Int(d)
}

/// JSON `true`/`false` also come as NSNumber; their type code is "c".
func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

/// A short, printable rendering of a configuration value for an error message.
func describe(_ value: Any) -> String {
    let text = value is NSNull ? "null" : "\(value)"
    return text.count > 40 ? String(text.prefix(40)) + "…" : text
}
