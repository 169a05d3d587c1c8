// Exporting a model as ONNX (`xfer export MODEL --to OUT.onnx`): the whole graph in inference
// mode, opset 17, for onnxruntime and every other ONNX runtime.
//
// - Input `input`: float32 (batch, H, W, C), NHWC as the Keras model takes it; output `output`:
//   what Keras's predict returns (the softmax/sigmoid head included, NHWC for an image output).
// - Inside, images run NCHW, ONNX's layout: a Transpose after the input, and one back wherever a
//   layer needs the channels last again (Flatten, which Keras flattens in (h, w, c) order; Dense
//   on an image; the output). Each value's layout is tracked, so no Transpose is repeated.
// - Kernels are rewritten once at export: Conv (KH, KW, C, O) → (O, C, KH, KW); Dense stays
//   (in, units) for Gemm/MatMul. BatchNormalization is ONNX's own op with the moving statistics
//   (inference). `same` padding becomes explicit pads with Keras's extra pixel at the bottom/right.
//   Dropout and the random augmentation layers (RandomFlip, RandomRotation, ...) are the identity;
//   RandomCrop is the identity or (tf-keras, input ≠ crop) smart_resize: a Slice and a Resize.
// - The metadata (`metadata_props`): `class_names` (a JSON array), `preprocess` (the
//   `--preprocess` mode the inputs need), `color_mode` (how images were decoded, when known),
//   `input_layout` = NHWC, `keras_model`.
// - A layer or setting without an ONNX mapping is an error naming every such layer (exit 3).
//
// The protobuf is swift-protobuf's, from the generated onnx.pb.swift beside this file.

import Foundation
import SwiftProtobuf

package enum ONNXWriter {
    /// The operator set the graph uses: every op here is in it, and runtimes have long supported it.
    package static let opset: Int64 = 17
    /// The IR version that goes with opset 17.
    static let irVersion: Int64 = 8

    /// Writes `model` as ONNX at `path`, atomically; `protecting` lists inputs never to overwrite.
    ///
    /// - Throws: ``XferError`` `.badInput` naming the layers ONNX export does not map.
    package static func write(_ model: ModelSpec, to path: String, protecting inputs: [String] = [],
                             metadata: ModelMetadata = .init()) throws {
        let bytes = try serialize(model, metadata: metadata)
        try writeAtomically(path, protecting: inputs, contents: bytes)
    }

    /// Checks that every layer of `model` has an ONNX mapping, without writing anything (`finetune`
    /// asks before training, so an `.onnx` output never fails after the work).
    ///
    /// - Throws: ``XferError`` `.badInput` naming the layers ONNX export does not map.
    package static func checkExportable(_ model: ModelSpec) throws {
        var builder = try GraphBuilder(model)
        _ = try builder.build()
    }

    /// The ONNX model as bytes.
    package static func serialize(_ model: ModelSpec, metadata: ModelMetadata = .init()) throws -> Data {
        var builder = try GraphBuilder(model)
        let graph = try builder.build()
        var m = Onnx_ModelProto()
        m.irVersion = irVersion
        m.producerName = "xfer"
        m.producerVersion = "1"
        m.domain = "xfer"
        m.modelVersion = 1
        m.docString = "Keras model '\(model.name)' exported by xfer; input NHWC float32"
        var operatorSet = Onnx_OperatorSetIdProto()
        operatorSet.domain = ""
        operatorSet.version = opset
        m.opsetImport = [operatorSet]
        m.graph = graph
        var props: [(String, String)] = [("input_layout", "NHWC"), ("keras_model", model.name)]
        if let names = metadata.classNames, !names.isEmpty,
           let json = try? JSONSerialization.data(withJSONObject: names) {
            props.append(("class_names", String(decoding: json, as: UTF8.self)))
        }
        if let p = metadata.preprocess { props.append(("preprocess", p.rawValue)) }
        if let c = metadata.colorMode { props.append(("color_mode", c.rawValue)) }
        m.metadataProps = props.map { k, v in
            var e = Onnx_StringStringEntryProto()
            e.key = k; e.value = v
            return e
        }
        do { return try m.serializedData() } catch {
            throw XferError.runtime("ONNX", "cannot serialise the model (\(error))")
        }
    }
}

/// How a value is laid out in the ONNX graph.
private enum Layout { case nchw, plain }

/// Builds the ONNX graph of one model, node by node of its `ModelGraph`.
private struct GraphBuilder {
    let model: ModelSpec
    let graph: ModelGraph
    var nodes: [Onnx_NodeProto] = []
    var initializers: [Onnx_TensorProto] = []
    /// Per value of `graph`: its ONNX name and layout; per (value, layout) a converted copy.
    var names: [Int: (name: String, layout: Layout)] = [:]
    var converted: [String: String] = [:]
    var used = Set<String>()
    /// The layers without an ONNX mapping, all named in one error at the end. A box, so the
    /// closure that records one does not hold the builder itself.
    final class Unsupported { var list: [String] = [] }
    let unsupported = Unsupported()

    init(_ model: ModelSpec) throws {
        self.model = model
        graph = try ModelGraph(model)
    }

    /// The sample shape (no batch axis) of value `v`.
    func shape(_ v: Int) -> [Int] { graph.valueShapes[v] }

    mutating func unique(_ base: String) -> String {
        var name = base, k = 1
        while used.contains(name) { name = "\(base)_\(k)"; k += 1 }
        used.insert(name)
        return name
    }

    // MARK: Emitting

    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], name: String, attributes: [Onnx_AttributeProto] = []) -> String {
        let out = unique(name)
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = out
        n.input = inputs
        n.output = [out]
        n.attribute = attributes
        nodes.append(n)
        return out
    }

    mutating func floats(_ name: String, _ values: [Float], dims: [Int]) -> String {
        var t = Onnx_TensorProto()
        t.name = unique(name)
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        t.dims = dims.map(Int64.init)
        // Little-endian float32, as ONNX's raw_data is.
        t.rawData = values.withUnsafeBufferPointer { Data(buffer: $0) }
        initializers.append(t)
        return t.name
    }

    mutating func int64s(_ name: String, _ values: [Int64]) -> String {
        var t = Onnx_TensorProto()
        t.name = unique(name)
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.dims = [Int64(values.count)]
        t.rawData = values.withUnsafeBufferPointer { Data(buffer: $0) }
        initializers.append(t)
        return t.name
    }

    mutating func scalar(_ name: String, _ value: Float) -> String { floats(name, [value], dims: []) }

    static func ints(_ name: String, _ v: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name; a.type = .ints; a.ints = v.map(Int64.init)
        return a
    }

    static func int(_ name: String, _ v: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name; a.type = .int; a.i = Int64(v)
        return a
    }

    static func string(_ name: String, _ v: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name; a.type = .string; a.s = Data(v.utf8)
        return a
    }

    static func float(_ name: String, _ v: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name; a.type = .float; a.f = v
        return a
    }

    // MARK: Layouts

    /// Value `v` in `layout` (a Transpose, made once per value).
    mutating func value(_ v: Int, _ layout: Layout) -> String {
        let (name, have) = names[v]!
        if have == layout || shape(v).count != 3 { return name }
        let key = "\(name)|\(layout)"
        if let c = converted[key] { return c }
        let perm = layout == .nchw ? [0, 3, 1, 2] : [0, 2, 3, 1]
        let out = node("Transpose", [name], name: name + (layout == .nchw ? "_nchw" : "_nhwc"), attributes: [Self.ints("perm", perm)])
        converted[key] = out
        return out
    }

    /// The layout an image value runs in here.
    func natural(_ v: Int) -> Layout { shape(v).count == 3 ? .nchw : .plain }

    // MARK: The graph

    mutating func build() throws -> Onnx_GraphProto {
        let input = unique("input")
        names[0] = (input, .plain)
        // A node whose input could not be mapped is skipped: the first failure is the error.
        for n in graph.nodes where n.inputs.allSatisfy({ names[$0] != nil }) { try emit(n) }
        if !unsupported.list.isEmpty {
            throw XferError.badInput("model '\(model.name)'",
                                     "ONNX export does not support " + unsupported.list.joined(separator: "; "),
                                     hint: "the other formats (.keras, .h5) keep every layer xfer runs")
        }
        let last = value(graph.output, .plain)
        // The output carries a fixed name: an Identity when the last node's own name differs.
        let output = node("Identity", [last], name: "output")

        var g = Onnx_GraphProto()
        g.name = model.name
        g.node = nodes
        g.initializer = initializers
        g.input = [Self.valueInfo(input, sample: graph.inputShape)]
        g.output = [Self.valueInfo(output, sample: graph.outputShape)]
        return g
    }

    static func valueInfo(_ name: String, sample: [Int]) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        var batch = Onnx_TensorShapeProto.Dimension()
        batch.dimParam = "batch"
        shape.dim = [batch] + sample.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if d < 0 { dim.dimParam = "?" } else { dim.dimValue = Int64(d) }
            return dim
        }
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        return info
    }

    /// `same` padding of one axis as Keras pads it: the extra pixel goes after (bottom/right).
    static func samePads(input: Int, kernel: Int, stride: Int, dilation: Int = 1) -> (Int, Int) {
        let out = (input + stride - 1) / stride
        let total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - input, 0)
        return (total / 2, total - total / 2)
    }

    mutating func emit(_ n: GraphNode) throws {
        let layer = n.layer
        let name = n.path
        let x = n.inputs.first ?? 0
        let failures = unsupported
        let fail: (String) -> Void = { why in failures.list.append("layer '\(n.path)' (\(layer.className)): \(why)") }
        func set(_ out: String, _ layout: Layout) { names[n.output] = (out, layout) }
        func weight(_ role: WeightRole) -> WeightSpec? { layer.weight(role) }
        guard let op = layer.op else { fail("not a layer op"); return }

        switch op {
        case let c as Conv2DConfig:
            guard let kernel = weight(.kernel), kernel.shape.count == 4 else { fail("no kernel"); return }
            // A grouped kernel is (KH, KW, C/groups, O): ONNX's grouped Conv takes the same groups.
            let conv = self.conv(name, value(x, .nchw), kernel: kernel.values, kernelShape: kernel.shape, group: c.groups,
                                 bias: c.useBias ? weight(.bias)?.values : nil, input: n.inputShapes[0],
                                 strides: c.strides, dilation: c.dilation, padding: c.padding)
            guard let out = activation(c.activation, conv, layout: .nchw, rank: 3, name: name, fail: fail) else { return }
            set(out, .nchw)

        case let d as DepthwiseConv2DConfig:
            guard let kernel = weight(.depthwiseKernel), kernel.shape.count == 4 else { fail("no depthwise kernel"); return }
            let conv = depthwise(name, value(x, .nchw), kernel: kernel, bias: d.useBias ? weight(.bias)?.values : nil,
                                 input: n.inputShapes[0], strides: d.strides, dilation: d.dilation, padding: d.padding)
            guard let out = activation(d.activation, conv, layout: .nchw, rank: 3, name: name, fail: fail) else { return }
            set(out, .nchw)

        case let s as SeparableConv2DConfig:
            guard let dk = weight(.depthwiseKernel), dk.shape.count == 4, let pk = weight(.pointwiseKernel), pk.shape.count == 4 else {
                fail("no depthwise and pointwise kernels"); return
            }
            // Keras: the depthwise convolution (no bias), then the 1×1 pointwise one with the bias.
            let dw = depthwise(name + "/depthwise", value(x, .nchw), kernel: dk, bias: nil, input: n.inputShapes[0],
                               strides: s.strides, dilation: s.dilation, padding: s.padding)
            let mid = [0, 0, pk.shape[2]]
            let pw = conv(name, dw, kernel: pk.values, kernelShape: pk.shape, group: 1, bias: s.useBias ? weight(.bias)?.values : nil,
                          input: mid, strides: (1, 1), dilation: (1, 1), padding: .valid)
            guard let out = activation(s.activation, pw, layout: .nchw, rank: 3, name: name, fail: fail) else { return }
            set(out, .nchw)

        case let d as DenseConfig:
            guard let kernel = weight(.kernel) else { fail("no kernel"); return }
            let inputs = kernel.shape[0]
            let xin = value(x, .plain)
            let w = floats(name + "/kernel", kernel.values, dims: [inputs, d.units])
            var y: String
            if n.inputShapes[0].count == 1 {
                var args = [xin, w]
                if d.useBias, let b = weight(.bias) { args.append(floats(name + "/bias", b.values, dims: [d.units])) }
                y = node("Gemm", args, name: name)
            } else {
                // Dense on the last axis of a higher-rank input: MatMul broadcasts over the rest.
                y = node("MatMul", [xin, w], name: name)
                if d.useBias, let b = weight(.bias) { y = node("Add", [y, floats(name + "/bias", b.values, dims: [d.units])], name: name + "/bias_add") }
            }
            guard let out = activation(d.activation, y, layout: .plain, rank: n.outputShape.count, name: name, fail: fail) else { return }
            set(out, .plain)

        case let b as BatchNormConfig:
            let rank = n.inputShapes[0].count
            guard rank == 1 || rank == 2 || rank == 3 else { fail("normalising an input of rank \(rank) (ONNX normalises axis 1)"); return }
            guard let mean = weight(.movingMean), let variance = weight(.movingVariance) else { fail("no moving statistics"); return }
            let c = mean.values.count
            let gamma = b.scale ? weight(.gamma)?.values ?? [] : [Float](repeating: 1, count: c)
            let beta = b.center ? weight(.beta)?.values ?? [] : [Float](repeating: 0, count: c)
            guard gamma.count == c, beta.count == c else { fail("weights of the wrong size"); return }
            // A sequence (N, T, F) is normalised over F: ONNX's axis 1 after a transpose, and back.
            let xin = rank == 2 ? sequenceTranspose(value(x, .plain), name: name + "/nct") : value(x, natural(x))
            let out = node("BatchNormalization", [
                xin, floats(name + "/gamma", gamma, dims: [c]), floats(name + "/beta", beta, dims: [c]),
                floats(name + "/moving_mean", mean.values, dims: [c]), floats(name + "/moving_variance", variance.values, dims: [c]),
            ], name: name, attributes: [Self.float("epsilon", b.epsilon)])
            set(rank == 2 ? sequenceTranspose(out, name: name + "/ntc") : out, natural(x))

        case let c as Conv1DConfig:
            guard let kernel = weight(.kernel), kernel.shape.count == 3 else { fail("no kernel"); return }
            // (N, T, F) → (N, F, T) for ONNX's channels-first Conv, and back; Keras's (K, F, O)
            // kernel becomes ONNX's (O, F, K).
            let (k, cin, o) = (kernel.shape[0], kernel.shape[1], kernel.shape[2])
            var w = [Float](repeating: 0, count: kernel.values.count)
            for u in 0..<k { for ci in 0..<cin { for oi in 0..<o { w[(oi * cin + ci) * k + u] = kernel.values[(u * cin + ci) * o + oi] } } }
            var inputs = [sequenceTranspose(value(x, .plain), name: name + "/nct"), floats(name + "/kernel", w, dims: [o, cin, k])]
            if c.useBias, let b = weight(.bias) { inputs.append(floats(name + "/bias", b.values, dims: [o])) }
            var pads = [0, 0]
            if c.padding == .same {
                let p = Self.samePads(input: n.inputShapes[0][0], kernel: k, stride: c.stride, dilation: c.dilation)
                pads = [p.0, p.1]
            }
            let conv = node("Conv", inputs, name: name, attributes: [
                Self.ints("kernel_shape", [k]), Self.ints("strides", [c.stride]), Self.ints("dilations", [c.dilation]),
                Self.ints("pads", pads)])
            guard let out = activation(c.activation, sequenceTranspose(conv, name: name + "/ntc"), layout: .plain, rank: 2,
                                       name: name, fail: fail) else { return }
            set(out, .plain)

        case let g as GlobalAveragePooling1DConfig:
            set(node("ReduceMean", [value(x, .plain)], name: name,
                     attributes: [Self.ints("axes", [1]), Self.int("keepdims", g.keepdims ? 1 : 0)]), .plain)

        case let g as GlobalMaxPooling1DConfig:
            set(node("ReduceMax", [value(x, .plain)], name: name,
                     attributes: [Self.ints("axes", [1]), Self.int("keepdims", g.keepdims ? 1 : 0)]), .plain)

        case let p as MaxPooling2DConfig:
            set(pool("MaxPool", p.pool, n), .nchw)

        case let p as AveragePooling2DConfig:
            set(pool("AveragePool", p.pool, n), .nchw)

        case let g as GlobalAveragePooling2DConfig:
            set(globalPool("GlobalAveragePool", keepdims: g.keepdims, n), g.keepdims ? .nchw : .plain)

        case let g as GlobalMaxPooling2DConfig:
            set(globalPool("GlobalMaxPool", keepdims: g.keepdims, n), g.keepdims ? .nchw : .plain)

        case is FlattenConfig:
            // Keras flattens channels last: (h, w, c) order.
            set(node("Flatten", [value(x, .plain)], name: name, attributes: [Self.int("axis", 1)]), .plain)

        case is DropoutConfig, is SpatialDropout2DConfig, is StochasticDepthConfig, is IdentityConfig, is any ImageAugmentation:
            // The identity in inference (Dropout and its kinds, Identity, the random augmentation layers).
            names[n.output] = names[x]

        case let a as ActivationConfig:
            let layout = names[x]!.layout
            guard let out = activation(a.activation, names[x]!.name, layout: layout, rank: n.inputShapes[0].count,
                                       name: name, fail: fail, always: true) else { return }
            set(out, layout)

        case let r as ReLUConfig:
            let layout = names[x]!.layout
            set(relu(r, names[x]!.name, name: name), layout)

        case let r as RescalingConfig:
            let layout = names[x]!.layout
            let rank = n.inputShapes[0].count
            let scale = channelConstant(name + "/scale", r.channelScale ?? [r.scale], layout: layout, rank: rank)
            var y = node("Mul", [names[x]!.name, scale], name: name)
            if r.channelOffset != nil || r.offset != 0 {
                y = node("Add", [y, channelConstant(name + "/offset", r.channelOffset ?? [r.offset], layout: layout, rank: rank)], name: name + "/offset_add")
            }
            set(y, layout)

        case let z as ZeroPadding2DConfig:
            let pads = int64s(name + "/pads", [0, 0, z.top, z.left, 0, 0, z.bottom, z.right].map(Int64.init))
            set(node("Pad", [value(x, .nchw), pads], name: name, attributes: []), .nchw)

        case let m as MergeOp:
            merge(m, n, fail: fail)

        case let c as CustomScaleConfig:
            // inputs[0] + inputs[1] · scale (InceptionResNetV2's residual), in one layout.
            let layout = natural(n.inputs[0])
            let scaled = node("Mul", [value(n.inputs[1], layout), scalar(name + "/scale", c.scale)], name: name + "/scaled")
            set(node("Add", [value(n.inputs[0], layout), scaled], name: name), layout)

        case is ReshapeConfig:
            // Keras reshapes the (h, w, c)-ordered values; 0 keeps the batch axis.
            let target = int64s(name + "/shape", ([0] + n.outputShape).map(Int64.init))
            set(node("Reshape", [value(x, .plain), target], name: name), .plain)

        case let p as PermuteConfig:
            // Keras's dims count the sample's axes from 1, in channels-last order.
            set(node("Transpose", [value(x, .plain)], name: name, attributes: [Self.ints("perm", [0] + p.dims)]), .plain)

        case let c as Cropping2DConfig:
            let (h, w) = (n.inputShapes[0][0], n.inputShapes[0][1])
            let args = [value(x, .nchw), int64s(name + "/starts", [Int64(c.top), Int64(c.left)]),
                        int64s(name + "/ends", [Int64(h - c.bottom), Int64(w - c.right)]), int64s(name + "/axes", [2, 3])]
            set(node("Slice", args, name: name), .nchw)

        case let c as RandomCropConfig:
            // Inference: Keras 3 passes the images uncropped, as does tf-keras when the input is the
            // crop's size; otherwise tf-keras's smart_resize — the centred box of the crop's aspect
            // ratio (Slice), resized bilinearly with half-pixel centres as tf.image.resize (Resize
            // to the sizes N, C of the input and the crop's H, W).
            let (h, w) = (n.inputShapes[0][0], n.inputShapes[0][1])
            guard !c.keras3, h != c.height || w != c.width else { names[n.output] = names[x]; return }
            let box = aspectBox(inH: h, inW: w, height: c.height, width: c.width)
            var y = value(x, .nchw)
            if box.height != h || box.width != w {
                y = node("Slice", [y, int64s(name + "/starts", [Int64(box.top), Int64(box.left)]),
                                   int64s(name + "/ends", [Int64(box.top + box.height), Int64(box.left + box.width)]),
                                   int64s(name + "/axes", [2, 3])], name: name + "/box")
            }
            let batchAndChannels = node("Shape", [y], name: name + "/shape", attributes: [Self.int("start", 0), Self.int("end", 2)])
            let sizes = node("Concat", [batchAndChannels, int64s(name + "/size", [Int64(c.height), Int64(c.width)])],
                             name: name + "/sizes", attributes: [Self.int("axis", 0)])
            set(node("Resize", [y, "", "", sizes], name: name, attributes: [
                Self.string("mode", "linear"), Self.string("coordinate_transformation_mode", "half_pixel")]), .nchw)

        case let c as NormalizationConfig:
            let channels = n.inputShapes[0].last ?? 1
            guard let mean = c.mean ?? weight(.mean)?.values, let variance = c.variance ?? weight(.variance)?.values,
                  mean.count == variance.count, mean.count == 1 || mean.count == channels else { fail("no mean and variance"); return }
            // Normalization.swift: (x − mean) / max(√variance, 1e−7), or its inverse.
            let scale = variance.map { max(sqrtf($0), 1e-7) }
            let layout = names[x]!.layout
            let m = channelConstant(name + "/mean", mean, layout: layout, rank: n.inputShapes[0].count)
            let d = channelConstant(name + "/scale", scale, layout: layout, rank: n.inputShapes[0].count)
            let xin = names[x]!.name
            let y = c.invert ? node("Add", [node("Mul", [xin, d], name: name + "/scaled"), m], name: name)
                : node("Div", [node("Sub", [xin, m], name: name + "/centred"), d], name: name)
            set(y, layout)

        case let c as LayerNormalizationConfig:
            // ONNX's LayerNormalization (opset 17) over the last axis, as Keras normalises.
            let channels = n.inputShapes[0].last ?? 1
            let gamma = c.scale ? weight(.gamma)?.values ?? [] : [Float](repeating: 1, count: channels)
            let beta = c.center ? weight(.beta)?.values ?? [] : [Float](repeating: 0, count: channels)
            guard gamma.count == channels, beta.count == channels else { fail("weights of the wrong size"); return }
            set(node("LayerNormalization", [value(x, .plain), floats(name + "/gamma", gamma, dims: [channels]),
                                            floats(name + "/beta", beta, dims: [channels])],
                     name: name, attributes: [Self.int("axis", -1), Self.float("epsilon", c.epsilon)]), .plain)

        case is LayerScaleConfig:
            guard let gamma = weight(.gamma) else { fail("no gamma"); return }
            let layout = names[x]!.layout
            let g = channelConstant(name + "/gamma", gamma.values, layout: layout, rank: n.inputShapes[0].count)
            set(node("Mul", [names[x]!.name, g], name: name), layout)

        case let t as TensorOpConfig:
            let layout = names[x]!.layout
            let rank = n.inputShapes[0].count
            let xin = names[x]!.name
            switch t.function {
            case .reverseChannels:
                // x[..., ::-1]: the channel axis read backwards.
                let axis: Int64 = layout == .nchw && rank == 3 ? 1 : -1
                set(node("Slice", [xin, int64s(name + "/starts", [-1]), int64s(name + "/ends", [Int64.min]),
                                   int64s(name + "/axes", [axis]), int64s(name + "/steps", [-1])], name: name), layout)
            case .add, .subtract, .multiply, .divide:
                let op = ["add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div"][t.function.rawValue]!
                set(node(op, [xin, channelConstant(name + "/constant", t.constant, layout: layout, rank: rank)], name: name), layout)
            case .channel:
                // x[..., k]: one channel, the last axis dropped (Gather with a scalar index).
                let c = n.inputShapes[0].last ?? 1
                let k = t.index < 0 ? t.index + c : t.index
                var index = Onnx_TensorProto()
                index.name = unique(name + "/index")
                index.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
                index.rawData = [Int64(k)].withUnsafeBufferPointer { Data(buffer: $0) }
                initializers.append(index)
                set(node("Gather", [value(x, .plain), index.name], name: name, attributes: [Self.int("axis", -1)]), .plain)
            case .stack:
                // stack([x₀, …], axis=-1): each input on a new last axis, then concatenated there.
                let axes = int64s(name + "/axes", [-1])
                let parts = n.inputs.enumerated().map { i, v in
                    node("Unsqueeze", [value(v, .plain), axes], name: "\(name)/expand_\(i)")
                }
                set(node("Concat", parts, name: name, attributes: [Self.int("axis", -1)]), .plain)
            case .gelu:
                if t.index == 0 {
                    guard let out = activation(.gelu, xin, layout: layout, rank: rank, name: name, fail: fail, always: true) else { return }
                    set(out, layout)
                } else {
                    // TensorFlow's approximation: x/2·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
                    let cube = node("Mul", [node("Mul", [xin, xin], name: name + "/square"), xin], name: name + "/cube")
                    let inner = node("Add", [xin, node("Mul", [cube, scalar(name + "/c", 0.044715)], name: name + "/cubic")], name: name + "/inner")
                    let t = node("Tanh", [node("Mul", [inner, scalar(name + "/k", 0.7978845608028654)], name: name + "/scaled")], name: name + "/tanh")
                    let one = node("Add", [t, scalar(name + "/one", 1)], name: name + "/one_plus")
                    set(node("Mul", [node("Mul", [xin, scalar(name + "/half", 0.5)], name: name + "/half_x"), one], name: name), layout)
                }
            }

        default:
            fail("no ONNX mapping")
        }
    }

    /// A sequence's two sample axes swapped: (N, T, F) ↔ (N, F, T).
    mutating func sequenceTranspose(_ x: String, name: String) -> String {
        node("Transpose", [x], name: name, attributes: [Self.ints("perm", [0, 2, 1])])
    }

    /// A Conv node on `x` (NCHW) with a Keras kernel (KH, KW, C/group, O), rewritten to ONNX's
    /// (O, C/group, KH, KW); Keras's `same` padding made explicit. `input` is (H, W, C).
    mutating func conv(_ name: String, _ x: String, kernel values: [Float], kernelShape: [Int], group: Int, bias: [Float]?,
                       input: [Int], strides: (h: Int, w: Int), dilation: (h: Int, w: Int), padding: Padding) -> String {
        let (kh, kw, cin, o) = (kernelShape[0], kernelShape[1], kernelShape[2], kernelShape[3])
        var k = [Float](repeating: 0, count: values.count)
        for u in 0..<kh { for v in 0..<kw { for ci in 0..<cin { for oi in 0..<o {
            k[((oi * cin + ci) * kh + u) * kw + v] = values[((u * kw + v) * cin + ci) * o + oi]
        } } } }
        var inputs = [x, floats(name + "/kernel", k, dims: [o, cin, kh, kw])]
        if let bias { inputs.append(floats(name + "/bias", bias, dims: [o])) }
        var pads = [0, 0, 0, 0]
        if padding == .same {
            let ph = Self.samePads(input: input[0], kernel: kh, stride: strides.h, dilation: dilation.h)
            let pw = Self.samePads(input: input[1], kernel: kw, stride: strides.w, dilation: dilation.w)
            pads = [ph.0, pw.0, ph.1, pw.1]
        }
        return node("Conv", inputs, name: name, attributes: [
            Self.ints("kernel_shape", [kh, kw]), Self.ints("strides", [strides.h, strides.w]),
            Self.ints("dilations", [dilation.h, dilation.w]), Self.ints("pads", pads), Self.int("group", group)])
    }

    /// A depthwise convolution: Keras's (KH, KW, C, M) kernel puts output channel c·M + m after
    /// input channel c, which is the (KH, KW, 1, C·M) kernel of a Conv with C groups.
    mutating func depthwise(_ name: String, _ x: String, kernel: WeightSpec, bias: [Float]?, input: [Int],
                            strides: (h: Int, w: Int), dilation: (h: Int, w: Int), padding: Padding) -> String {
        let (kh, kw, c, m) = (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3])
        return conv(name, x, kernel: kernel.values, kernelShape: [kh, kw, 1, c * m], group: c, bias: bias,
                    input: input, strides: strides, dilation: dilation, padding: padding)
    }

    /// One value, or one per channel, shaped to broadcast against a value in `layout`: (C, 1, 1)
    /// against an NCHW image, (C) on the last axis otherwise, a scalar for one value.
    mutating func channelConstant(_ name: String, _ values: [Float], layout: Layout, rank: Int) -> String {
        if values.count == 1 { return scalar(name, values[0]) }
        return floats(name, values, dims: layout == .nchw && rank == 3 ? [values.count, 1, 1] : [values.count])
    }

    mutating func pool(_ op: String, _ p: Pool2DConfig, _ n: GraphNode) -> String {
        let (h, w) = (n.inputShapes[0][0], n.inputShapes[0][1])
        var pads = [0, 0, 0, 0]
        if p.padding == .same {
            let ph = Self.samePads(input: h, kernel: p.poolSize.h, stride: p.strides.h)
            let pw = Self.samePads(input: w, kernel: p.poolSize.w, stride: p.strides.w)
            pads = [ph.0, pw.0, ph.1, pw.1]
        }
        var attributes = [Self.ints("kernel_shape", [p.poolSize.h, p.poolSize.w]),
                          Self.ints("strides", [p.strides.h, p.strides.w]), Self.ints("pads", pads)]
        // Keras averages over the real pixels of a window only, never the padding.
        if op == "AveragePool" { attributes.append(Self.int("count_include_pad", 0)) }
        return node(op, [value(n.inputs[0], .nchw)], name: n.path, attributes: attributes)
    }

    mutating func globalPool(_ op: String, keepdims: Bool, _ n: GraphNode) -> String {
        let y = node(op, [value(n.inputs[0], .nchw)], name: n.path)
        return keepdims ? y : node("Flatten", [y], name: n.path + "/squeeze", attributes: [Self.int("axis", 1)])
    }

    /// `activation` applied to `x`; nil (and the failure recorded) for one without a mapping.
    /// Softmax runs over the channels: axis 1 of an NCHW image, the last axis otherwise.
    mutating func activation(_ a: Activation, _ x: String, layout: Layout, rank: Int, name: String,
                             fail: (String) -> Void, always: Bool = false) -> String? {
        let n = always ? name : name + "/" + a.rawValue
        switch a {
        case .linear: return always ? node("Identity", [x], name: n) : x
        case .relu: return node("Relu", [x], name: n)
        case .relu6: return node("Clip", [x, scalar(n + "/min", 0), scalar(n + "/max", 6)], name: n)
        case .sigmoid: return node("Sigmoid", [x], name: n)
        case .tanh: return node("Tanh", [x], name: n)
        case .softmax: return node("Softmax", [x], name: n, attributes: [Self.int("axis", layout == .nchw && rank == 3 ? 1 : -1)])
        case .elu: return node("Elu", [x], name: n, attributes: [Self.float("alpha", 1)])
        case .selu:
            return node("Selu", [x], name: n, attributes: [Self.float("alpha", 1.6732632423543772848170429916717),
                                                           Self.float("gamma", 1.0507009873554804934193349852946)])
        case .softplus: return node("Softplus", [x], name: n)
        case .softsign: return node("Softsign", [x], name: n)
        case .silu: return node("Mul", [x, node("Sigmoid", [x], name: n + "/sigmoid")], name: n)
        case .hardSigmoid:
            // relu6(x + 3) / 6 = clip(x/6 + 1/2, 0, 1).
            return node("HardSigmoid", [x], name: n, attributes: [Self.float("alpha", 1.0 / 6), Self.float("beta", 0.5)])
        case .hardSilu:
            let s = node("HardSigmoid", [x], name: n + "/hard_sigmoid", attributes: [Self.float("alpha", 1.0 / 6), Self.float("beta", 0.5)])
            return node("Mul", [x, s], name: n)
        case .gelu:
            // 0.5·x·(1 + erf(x/√2)), Keras's exact gelu (ONNX's Gelu op needs opset 20).
            let e = node("Erf", [node("Mul", [x, scalar(n + "/rsqrt2", 0.70710678118654752440)], name: n + "/scaled")], name: n + "/erf")
            let one = node("Add", [e, scalar(n + "/one", 1)], name: n + "/one_plus")
            return node("Mul", [node("Mul", [x, scalar(n + "/half", 0.5)], name: n + "/half_x"), one], name: n)
        }
    }

    /// Keras's `relu(x, negative_slope, max_value, threshold)`, as the engine computes it (ReLU.swift).
    mutating func relu(_ c: ReLUConfig, _ x: String, name: String) -> String {
        if c.threshold == 0 && c.maxValue == nil {
            return c.negativeSlope == 0 ? node("Relu", [x], name: name)
                : node("LeakyRelu", [x], name: name, attributes: [Self.float("alpha", c.negativeSlope)])
        }
        var p: String
        if c.threshold != 0 {
            let zero = scalar(name + "/zero", 0)
            p = node("Where", [node("Greater", [x, scalar(name + "/threshold", c.threshold)], name: name + "/above"), x, zero], name: name + "/thresholded")
        } else {
            p = node("Relu", [x], name: name + "/relu")
        }
        if let top = c.maxValue { p = node("Clip", [p, scalar(name + "/min", 0), scalar(name + "/max", top)], name: name + "/clip") }
        if c.negativeSlope != 0 {
            let below = node("Relu", [node("Sub", [scalar(name + "/t", c.threshold), x], name: name + "/t_minus_x")], name: name + "/below")
            p = node("Sub", [p, node("Mul", [below, scalar(name + "/slope", c.negativeSlope)], name: name + "/leak")], name: name + "/leaky")
        }
        return node("Identity", [p], name: name)
    }

    mutating func merge(_ m: MergeOp, _ n: GraphNode, fail: (String) -> Void) {
        let rank = n.outputShape.count
        let layout: Layout = rank == 3 ? .nchw : .plain
        var inputs: [String] = []
        for v in n.inputs {
            let r = shape(v).count
            if r == rank { inputs.append(value(v, layout)); continue }
            // Keras expands a lower-rank input right after the batch axis: (C) against an image
            // is (1, 1, C), which in NCHW is (C, 1, 1).
            guard r == 1, rank == 3 else { fail("merging inputs of rank \(r) and \(rank)"); return }
            inputs.append(node("Unsqueeze", [value(v, .plain), int64s(n.path + "/axes", [2, 3])], name: n.path + "/expand"))
        }
        let name = n.path
        func chain(_ op: String) -> String {
            var y = inputs[0]
            for (i, other) in inputs.dropFirst().enumerated() {
                y = node(op, [y, other], name: i == inputs.count - 2 ? name : "\(name)/\(op.lowercased())_\(i)")
            }
            return y
        }
        let out: String
        switch m {
        case .add: out = inputs.count == 1 ? node("Identity", inputs, name: name) : chain("Add")
        case .multiply: out = inputs.count == 1 ? node("Identity", inputs, name: name) : chain("Mul")
        case .subtract:
            guard inputs.count == 2 else { fail("Subtract of \(inputs.count) inputs"); return }
            out = node("Sub", inputs, name: name)
        case .average: out = node("Mean", inputs, name: name)
        case .maximum: out = node("Max", inputs, name: name)
        case .minimum: out = node("Min", inputs, name: name)
        case .concatenate(let axis):
            // Keras counts the batch axis; an image's axes 1, 2, 3 (H, W, C) are NCHW's 2, 3, 1.
            let k = axis < 0 ? axis + rank + 1 : axis
            let onnxAxis = layout == .nchw ? [1: 2, 2: 3, 3: 1][k] ?? k : k
            out = node("Concat", inputs, name: name, attributes: [Self.int("axis", onnxAxis)])
        }
        names[n.output] = (out, layout)
    }
}
