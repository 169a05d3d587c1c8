// Concatenate: the inputs joined along `axis`, in input order. Keras counts `axis` with the
// batch axis (default −1, the channels; in NHWC 1 = H, 2 = W, 3 = C; negative from the end);
// axis 0 would join samples and is refused. Every input has the same rank and the same sizes
// off the axis; the output's size along it is the sum of theirs.
// With the per-sample axis a, each input is (outer, size_k, inner), outer = N·Π sizes before
// a and inner = Π sizes after it, and
//   forward   y[o, offset_k + i, j] = x_k[o, i, j],   offset_k = Σ_{m<k} size_m
//   backward  ∂L/∂x_k[o, i, j] = dy[o, offset_k + i, j]   (dy's slice; needs only shapes).
//
// Follows Keras 3 keras/src/layers/merging/concatenate.py (`ops.concatenate(inputs,
// axis=self.axis)`; its `build` drops size-1 axes before comparing shapes, which lets a
// mismatch through to `call` where it fails — refused here at once) and
// tf_keras/src/layers/merging/concatenate.py (`backend.concatenate`); the gradient is
// TensorFlow's `_ConcatGradV2` (array_grad.py: slices of the gradient).

/// A Keras `Concatenate` layer.
package final class ConcatenateLayer: MergeLayer {
    package let name: String
    package let inputShapes: [[Int]]
    package let outputShape: [Int]
    /// The concatenation axis in a per-sample shape (Keras's `axis`, normalised, minus 1).
    let sampleAxis: Int

    /// Throws `XferError.badInput` when the axis or the shapes do not fit.
    init(name: String, axis: Int = -1, inputShapes: [[Int]]) throws {
        outputShape = try Self.outputShape(name: name, axis: axis, inputShapes: inputShapes)
        sampleAxis = try Self.sampleAxis(name: name, axis: axis, inputShapes: inputShapes)
        self.name = name
        self.inputShapes = inputShapes
    }

    /// The output shape of one sample (Keras's `compute_output_shape` without the batch axis),
    /// without building the layer; throws `XferError.badInput` when the axis or shapes do not fit.
    static func outputShape(name: String, axis: Int = -1, inputShapes: [[Int]]) throws -> [Int] {
        let a = try sampleAxis(name: name, axis: axis, inputShapes: inputShapes)
        var shape = inputShapes[0]
        shape[a] = inputShapes.reduce(0) { $0 + $1[a] }
        return shape
    }

    /// Checks the inputs against `axis` and returns the per-sample axis.
    private static func sampleAxis(name: String, axis: Int, inputShapes: [[Int]]) throws -> Int {
        let subject = "layer '\(name)'"
        guard let first = inputShapes.first else { throw XferError.badInput(subject, "Concatenate has no input") }
        let list = inputShapes.map { "\($0)" }.joined(separator: ", ")
        try requirePositiveSizes(inputShapes, subject: subject, kind: "Concatenate")
        guard inputShapes.allSatisfy({ $0.count == first.count }) else {
            throw XferError.badInput(subject, "Concatenate inputs of shapes \(list) differ in rank")
        }
        let rank = first.count + 1  // with the batch axis, as Keras counts
        let normalised = axis < 0 ? axis + rank : axis
        guard (0..<rank).contains(normalised) else {
            throw XferError.badInput(subject, "Concatenate axis \(axis) is out of range for inputs of rank \(rank) (batch axis included)")
        }
        guard normalised != 0 else {
            throw XferError.badInput(subject, "Concatenate axis \(axis) is the batch axis: joining samples is not supported")
        }
        let a = normalised - 1
        func off(_ s: [Int]) -> [Int] { var s = s; s.remove(at: a); return s }
        guard inputShapes.allSatisfy({ off($0) == off(first) }) else {
            throw XferError.badInput(subject, "Concatenate inputs of shapes \(list) differ off the concatenation axis \(axis)")
        }
        return a
    }

    /// (outer, inner) of the (outer, size_k, inner) view, for a batch of n.
    private func blocks(_ n: Int) -> (outer: Int, inner: Int) {
        (n * outputShape[..<sampleAxis].reduce(1, *), outputShape[(sampleAxis + 1)...].reduce(1, *))
    }

    package func forward(_ inputs: [Tensor], _ context: ForwardContext) -> Tensor {
        precondition(inputs.count == inputShapes.count, "\(name): \(inputs.count) inputs, \(inputShapes.count) expected")
        let n = inputs[0].shape[0]
        for (x, s) in zip(inputs, inputShapes) { precondition(x.shape == [n] + s, "\(name): input \(x.shape), expected \([n] + s)") }
        var y = context.output([n] + outputShape)
        guard y.count > 0 else { return y }
        let (outer, inner) = blocks(n)
        let sizes = inputShapes.map { $0[sampleAxis] }
        withValuePointers(inputs) { xs in
            y.values.withUnsafeMutableBufferPointer { py in
                concatenateBlocks(xs, sizes: sizes, outer: outer, inner: inner, into: py.baseAddress!)
            }
        }
        return y
    }

    package func backward(_ dy: Tensor, _ context: ForwardContext, needInputGradients: [Bool]) -> [Tensor?] {
        precondition(needInputGradients.count == inputShapes.count, "\(name): \(needInputGradients.count) flags, \(inputShapes.count) inputs")
        let n = dy.shape[0]
        precondition(dy.shape == [n] + outputShape, "\(name): dy \(dy.shape), expected \([n] + outputShape)")
        let (outer, inner) = blocks(n)
        let sizes = inputShapes.map { $0[sampleAxis] }
        return inputShapes.indices.map { k in
            guard needInputGradients[k] else { return nil }
            var dx = Tensor(uninitializedShape: [n] + inputShapes[k])
            guard dx.count > 0 else { return dx }
            dy.values.withUnsafeBufferPointer { pdy in
                dx.values.withUnsafeMutableBufferPointer { pdx in
                    concatenationSlice(pdy.baseAddress!, sizes: sizes, input: k, outer: outer, inner: inner, into: pdx.baseAddress!)
                }
            }
            return dx
        }
    }
}

// MARK: - Kernels

/// Input k, (outer, sizes[k], inner), copied into y, (outer, Σ sizes, inner), at offset
/// Σ_{m<k} sizes[m] along the middle axis; for every k.
func concatenateBlocks(_ xs: [UnsafePointer<Float>], sizes: [Int], outer: Int, inner: Int, into y: UnsafeMutablePointer<Float>) {
    let total = sizes.reduce(0, +)
    parallelRanges(outer, elements: outer * total * inner) { range in
        for o in range {
            var dst = y + o * total * inner
            for k in xs.indices {
                let block = sizes[k] * inner
                dst.update(from: xs[k] + o * block, count: block)
                dst += block
            }
        }
    }
}

/// The slice of dy (outer, Σ sizes, inner) that input k filled, copied into dx (outer, sizes[k], inner).
func concatenationSlice(_ dy: UnsafePointer<Float>, sizes: [Int], input k: Int, outer: Int, inner: Int,
                        into dx: UnsafeMutablePointer<Float>) {
    let total = sizes.reduce(0, +), offset = sizes[..<k].reduce(0, +), block = sizes[k] * inner
    parallelRanges(outer, elements: outer * block) { range in
        for o in range { (dx + o * block).update(from: dy + (o * total + offset) * inner, count: block) }
    }
}

// MARK: - Naive oracles (for the tests)

/// Naive oracle of the forward: every output element, by its coordinates, taken from the input
/// that covers it along `axis` (a whole-tensor axis, batch = 0).
func concatenateNaive(_ inputs: [Tensor], axis: Int) -> Tensor {
    var shape = inputs[0].shape
    shape[axis] = inputs.reduce(0) { $0 + $1.shape[axis] }
    var y = Tensor(shape: shape, repeating: 0)
    for i in 0..<y.count {
        var c = coordinates(i, shape)
        var k = 0
        while c[axis] >= inputs[k].shape[axis] { c[axis] -= inputs[k].shape[axis]; k += 1 }
        y.values[i] = inputs[k].values[flatIndex(c, inputs[k].shape)]
    }
    return y
}

/// Naive oracle of the backward: dx_k element by element from dy, for input shapes `shapes`
/// (whole tensors) joined along `axis`.
func concatenationSliceNaive(_ dy: Tensor, shapes: [[Int]], axis: Int, input k: Int) -> Tensor {
    var dx = Tensor(shape: shapes[k], repeating: 0)
    let offset = shapes[..<k].reduce(0) { $0 + $1[axis] }
    for i in 0..<dx.count {
        var c = coordinates(i, shapes[k])
        c[axis] += offset
        dx.values[i] = dy.values[flatIndex(c, dy.shape)]
    }
    return dx
}

private func coordinates(_ index: Int, _ shape: [Int]) -> [Int] {
    var c = [Int](repeating: 0, count: shape.count), rest = index
    for d in stride(from: shape.count - 1, through: 0, by: -1) { c[d] = rest % shape[d]; rest /= shape[d] }
    return c
}

private func flatIndex(_ c: [Int], _ shape: [Int]) -> Int {
    zip(c, shape).reduce(0) { $0 * $1.1 + $1.0 }
}
