// The elementwise merge layers — Add, Subtract, Multiply, Average, Maximum, Minimum, one file
// each in Layers/ — as one generic layer parameterised by the binary op and its partial
// derivatives (`ElementwiseMergeOp`).
//
// Keras folds the inputs pairwise in their order (`output = ops.add(output, inputs[i])`, and
// so on, keras/src/layers/merging/*.py), so TensorFlow's gradient is that of the chain:
//
//   forward   s_0 = x_0,  s_i = op(s_{i−1}, x_i),  y = finish(s_{n−1})
//   backward  g_{n−1} = finish′(dy);  for i = n−1 … 1: (g_{i−1}, ∂x_i) = backprop(g_i, s_{i−1}, x_i);  ∂x_0 = g_0
//
// where backprop applies op's partial derivatives (∂op/∂a·g, ∂op/∂b·g), and each input's
// gradient is ∂x_i summed over the axes it was broadcast along (Broadcast.swift). The chain
// fixes which input gets the gradient of a tie in Maximum and Minimum, as in TensorFlow, and
// the order of Multiply's products. Keras 3 and tf_keras take any number of inputs from 1
// (`Merge.build` asks for "at least 1"; one input gives y = x_0), Subtract exactly 2.
//
// Forward is one pass over the output reading every input. Backward computes each wanted
// input's ∂x_i at the output's shape in its own pass (recomputing the chain from the kept
// inputs when op's derivatives read values), then sums it down to the input's shape; an Add
// input of the output's shape gets dy itself.

/// A binary op of an elementwise merge and its derivatives.
package protocol ElementwiseMergeOp {
    /// The Keras class name, for messages.
    static var kind: String { get }
    /// The exact input count Keras requires (Subtract: 2), or nil: any count from 1.
    static var requiredInputCount: Int? { get }
    /// op(a, b), a the result so far and b the next input.
    static func apply(_ a: Float, _ b: Float) -> Float
    /// From g = dL/d op(a, b): (dL/da, dL/db), op's partial derivatives at (a, b) applied to g.
    static func backprop(_ g: Float, _ a: Float, _ b: Float) -> (a: Float, b: Float)
    /// Whether `backprop` reads a and b (Multiply, Maximum, Minimum): forward then keeps the inputs.
    static var backpropReadsValues: Bool { get }
    /// Whether `backprop` is (g, g) and `finishGradient` the identity (Add): every input's
    /// gradient is dy, summed over its broadcast axes.
    static var passesGradientThrough: Bool { get }
    /// The output from the folded value of n inputs (Average divides by n).
    static func finish(_ s: Float, inputCount n: Int) -> Float
    /// dL/d(folded value) from dL/dy (Average: dy / n).
    static func finishGradient(_ dy: Float, inputCount n: Int) -> Float
    /// Whether `finish` returns s itself (all but Average), so the forward skips that pass.
    static var finishIsIdentity: Bool { get }
}

extension ElementwiseMergeOp {
    package static var requiredInputCount: Int? { nil }
    package static var passesGradientThrough: Bool { false }
    package static func finish(_ s: Float, inputCount n: Int) -> Float { s }
    package static var finishIsIdentity: Bool { true }
    package static func finishGradient(_ dy: Float, inputCount n: Int) -> Float { dy }
}

/// A Keras elementwise merge layer (`AddLayer`, `MultiplyLayer`, …).
package final class ElementwiseMergeLayer<Op: ElementwiseMergeOp>: MergeLayer {
    package let name: String
    package let inputShapes: [[Int]]
    package let outputShape: [Int]
    /// The inputs of the last forward, when backward reads their values.
    private(set) var kept: [Tensor] = []

    /// Throws `XferError.badInput` when the input count or shapes do not fit the layer.
    init(name: String, inputShapes: [[Int]]) throws {
        outputShape = try Self.outputShape(name: name, inputShapes: inputShapes)
        self.name = name
        self.inputShapes = inputShapes
    }

    /// The output shape of one sample (Keras's `compute_output_shape` without the batch axis),
    /// without building the layer; throws `XferError.badInput` for input shapes that do not fit.
    static func outputShape(name: String, inputShapes: [[Int]]) throws -> [Int] {
        let subject = "layer '\(name)'"
        guard !inputShapes.isEmpty else { throw XferError.badInput(subject, "\(Op.kind) has no input") }
        if let required = Op.requiredInputCount, inputShapes.count != required {
            throw XferError.badInput(subject, "\(Op.kind) needs exactly \(required) inputs, got \(inputShapes.count)")
        }
        try requirePositiveSizes(inputShapes, subject: subject, kind: Op.kind)
        guard let shape = broadcastShape(inputShapes) else {
            throw XferError.badInput(subject, "\(Op.kind) inputs of shapes \(inputShapes.map { "\($0)" }.joined(separator: ", ")) "
                                        + "do not broadcast (aligned on the last axis, the sizes along each axis must agree or be 1)")
        }
        return shape
    }

    /// Whole-tensor shapes for a batch of n: the output, and each input padded to its rank.
    private func batchShapes(_ n: Int) -> (output: [Int], inputs: [[Int]]) {
        ([n] + outputShape, inputShapes.map { [n] + leftPadded($0, toRank: outputShape.count) })
    }

    package func forward(_ inputs: [Tensor], _ context: ForwardContext) -> Tensor {
        precondition(inputs.count == inputShapes.count, "\(name): \(inputs.count) inputs, \(inputShapes.count) expected")
        let n = inputs[0].shape[0]
        for (x, s) in zip(inputs, inputShapes) { precondition(x.shape == [n] + s, "\(name): input \(x.shape), expected \([n] + s)") }
        let shapes = batchShapes(n)
        var y = context.output(shapes.output)
        kept = context.keepForBackward && Op.backpropReadsValues ? inputs : []
        guard y.count > 0 else { return y }
        let loop = BroadcastLoop(outShape: shapes.output, operandShapes: shapes.inputs)
        withValuePointers(inputs) { xs in
            y.values.withUnsafeMutableBufferPointer { py in
                elementwiseMergeForward(Op.self, loop, xs, into: py.baseAddress!)
            }
        }
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradients: [Bool]) -> [Tensor?] {
        precondition(needInputGradients.count == inputShapes.count, "\(name): \(needInputGradients.count) flags, \(inputShapes.count) inputs")
        let n = dy.shape[0]
        let shapes = batchShapes(n)
        precondition(dy.shape == shapes.output, "\(name): dy \(dy.shape), expected \(shapes.output)")
        precondition(!Op.backpropReadsValues || kept.count == inputShapes.count,
                     "\(name): backward without a forward that kept its inputs")
        var result = [Tensor?](repeating: nil, count: inputShapes.count)
        let loop = BroadcastLoop(outShape: shapes.output, operandShapes: shapes.inputs)
        for k in inputShapes.indices where needInputGradients[k] {
            let reduced = shapes.inputs[k] != shapes.output
            if Op.passesGradientThrough {
                result[k] = reduced ? summed(dy, to: [n] + inputShapes[k]) : dy
                continue
            }
            // ∂x_k at the output's shape: dx_k itself, or a scratch buffer summed down after.
            var g = reduced ? context.pool.tensor(shapes.output) : Tensor(uninitializedShape: shapes.output)
            if g.count > 0 {
                withValuePointers(Op.backpropReadsValues ? kept + [dy] : [dy]) { ps in
                    g.values.withUnsafeMutableBufferPointer { pg in
                        elementwiseMergeGradient(Op.self, loop, values: Array(ps.dropLast()), dy: ps[ps.count - 1],
                                                 inputCount: inputShapes.count, input: k, into: pg.baseAddress!)
                    }
                }
            }
            if reduced {
                result[k] = summed(g, to: [n] + inputShapes[k])
                context.pool.recycle(g)
            } else {
                result[k] = g
            }
        }
        return result
    }

    /// `g` (the output's shape) summed over the axes along which an input of `shape` is broadcast.
    private func summed(_ g: Tensor, to shape: [Int]) -> Tensor {
        var dx = Tensor(uninitializedShape: shape)
        guard dx.count > 0 else { return dx }
        let padded = [shape[0]] + leftPadded(Array(shape.dropFirst()), toRank: outputShape.count)
        g.values.withUnsafeBufferPointer { pg in
            dx.values.withUnsafeMutableBufferPointer { pdx in
                broadcastSum(pg.baseAddress!, outShape: g.shape, operandShape: padded, into: pdx.baseAddress!)
            }
        }
        return dx
    }
}

/// Throws unless every size of every shape is at least 1.
func requirePositiveSizes(_ shapes: [[Int]], subject: String, kind: String) throws {
    if let bad = shapes.first(where: { $0.contains { $0 < 1 } }) {
        throw XferError.badInput(subject, "\(kind) input of shape \(bad): every size must be at least 1")
    }
}

// MARK: - Kernels

/// y = finish(op(…op(x_0, x_1)…, x_{n−1})) element by element, the inputs read through `loop`
/// (operand k = input k). Specialised for each op: called from the generic layer class, the
/// compiler would otherwise call `Op.apply` through its witness per element (measured: 14 % of
/// EfficientNetB0's predict in its squeeze-excite Multiplies).
@_specialize(where Op == AddOp)
@_specialize(where Op == MultiplyOp)
@_specialize(where Op == SubtractOp)
@_specialize(where Op == AverageOp)
@_specialize(where Op == MaximumOp)
@_specialize(where Op == MinimumOp)
func elementwiseMergeForward<Op: ElementwiseMergeOp>(_: Op.Type, _ loop: BroadcastLoop, _ xs: [UnsafePointer<Float>],
                                                   into y: UnsafeMutablePointer<Float>) {
    let n = xs.count
    let inner = loop.spansInner.map { $0 ? 1 : 0 }
    // Every operand runs along the row (Add of a residual, Multiply by an SE block's (N, 1, 1, C)
    // scale): the same chain input by input over whole rows, loops the compiler vectorises (the
    // element loop below does not: measured 15–19 % of ResNet50's predict in its 16 Adds).
    let contiguous = !inner.contains(0)
    loop.splitOuter(elements: loop.shape.reduce(1, *)) { outer in
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: n) { rows in
            loop.forEachRow(outer) { out, offsets, length in
                for k in 0..<n { rows[k] = xs[k] + offsets[k] }
                let dst = y + out
                if contiguous {
                    let first = rows[0]
                    if n == 1 {
                        dst.update(from: first, count: length)
                    } else {
                        let second = rows[1]
                        for j in 0..<length { dst[j] = Op.apply(first[j], second[j]) }
                        for k in 2..<max(n, 2) {
                            let next = rows[k]
                            for j in 0..<length { dst[j] = Op.apply(dst[j], next[j]) }
                        }
                    }
                    if !Op.finishIsIdentity { for j in 0..<length { dst[j] = Op.finish(dst[j], inputCount: n) } }
                    return
                }
                for j in 0..<length {
                    var s = rows[0][j * inner[0]]
                    for k in 1..<n { s = Op.apply(s, rows[k][j * inner[k]]) }
                    dst[j] = Op.finish(s, inputCount: n)
                }
            }
        }
    }
}

/// ∂x_k element by element at the output's shape, before the sum over x_k's broadcast axes:
/// the chain s_0 … s_{n−2} recomputed from `values` (the n inputs; empty when op's derivatives
/// do not read them, which are then 0), and dy passed back through op down to input k.
func elementwiseMergeGradient<Op: ElementwiseMergeOp>(_: Op.Type, _ loop: BroadcastLoop, values xs: [UnsafePointer<Float>],
                                                    dy: UnsafePointer<Float>, inputCount n: Int, input k: Int,
                                                    into g: UnsafeMutablePointer<Float>) {
    let reads = !xs.isEmpty
    precondition(!reads || xs.count == n, "\(xs.count) inputs for \(n)")
    let inner = loop.spansInner.map { $0 ? 1 : 0 }
    loop.splitOuter(elements: loop.shape.reduce(1, *)) { outer in
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: max(n, 1)) { rows in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: max(n, 1)) { s in
                let s = s.baseAddress!
                loop.forEachRow(outer) { out, offsets, length in
                    if reads { for i in 0..<n { rows[i] = xs[i] + offsets[i] } }
                    let src = dy + out, dst = g + out
                    for j in 0..<length {
                        // s[i] = s_i for i < n − 1: what op met at step i + 1.
                        if reads {
                            s[0] = rows[0][j * inner[0]]
                            for i in 1..<max(n - 1, 1) { s[i] = Op.apply(s[i - 1], rows[i][j * inner[i]]) }
                        }
                        var grad = Op.finishGradient(src[j], inputCount: n)
                        var i = n - 1
                        while i >= max(k, 1) {
                            let b = Op.backprop(grad, reads ? s[i - 1] : 0, reads ? rows[i][j * inner[i]] : 0)
                            grad = i == k ? b.b : b.a
                            i -= 1
                        }
                        dst[j] = grad
                    }
                }
            }
        }
    }
}

// MARK: - Naive oracles (for the tests)

/// Naive oracle of the forward: element by element, the inputs (N, inputShapes[k]…) read
/// through `broadcastIndexNaive`.
func elementwiseMergeForwardNaive<Op: ElementwiseMergeOp>(_: Op.Type, _ inputs: [Tensor], outputShape: [Int]) -> Tensor {
    let n = inputs[0].shape[0]
    let out = [n] + outputShape
    let shapes = inputs.map { [n] + leftPadded(Array($0.shape.dropFirst()), toRank: outputShape.count) }
    var y = Tensor(shape: out, repeating: 0)
    for i in 0..<y.count {
        var s = inputs[0].values[broadcastIndexNaive(i, outShape: out, operandShape: shapes[0])]
        for k in 1..<inputs.count {
            s = Op.apply(s, inputs[k].values[broadcastIndexNaive(i, outShape: out, operandShape: shapes[k])])
        }
        y.values[i] = Op.finish(s, inputCount: inputs.count)
    }
    return y
}

/// Naive oracle of the backward: per output element, the chain forward then back, each
/// input's share added where it was read.
func elementwiseMergeBackwardNaive<Op: ElementwiseMergeOp>(_: Op.Type, _ inputs: [Tensor], outputShape: [Int], dy: Tensor) -> [Tensor] {
    let n = inputs[0].shape[0], count = inputs.count
    let out = [n] + outputShape
    let shapes = inputs.map { [n] + leftPadded(Array($0.shape.dropFirst()), toRank: outputShape.count) }
    var dx = inputs.map { Tensor(shape: $0.shape, repeating: 0) }
    for i in 0..<dy.count {
        let at = shapes.map { broadcastIndexNaive(i, outShape: out, operandShape: $0) }
        let x = (0..<count).map { inputs[$0].values[at[$0]] }
        var s = [x[0]]
        for k in 1..<count { s.append(Op.apply(s[k - 1], x[k])) }
        var g = Op.finishGradient(dy.values[i], inputCount: count)
        for k in stride(from: count - 1, through: 1, by: -1) {
            let b = Op.backprop(g, s[k - 1], x[k])
            dx[k].values[at[k]] += b.b
            g = b.a
        }
        dx[0].values[at[0]] += g
    }
    return dx
}
