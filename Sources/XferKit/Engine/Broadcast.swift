// Broadcasting, as Keras's elementwise merge layers apply it to their inputs.
//
// The shape rule (Keras 3 `Merge._compute_elemwise_op_output_shape`, the same in tf_keras):
// per-sample shapes are aligned on their last axis, a shorter one padded with leading 1s
// (Keras's `call` expands a lower-rank input at axis 1, just after the batch axis, which is
// the same thing); along every axis the sizes agree or one of them is 1, and the output takes
// the other. The batch axis is never broadcast: every input has the same N.
//
// Index mapping: output element (i0, …, ik) reads an operand at (j0, …, jk), jd = id where the
// operand spans axis d and 0 where it has size 1 there (`broadcastIndexNaive`, from the
// definition). `BroadcastLoop` does the same fast: it walks the output row by row with every
// operand's offset, after merging adjacent axes where no operand changes pattern (a (1, 1, C)
// against (H, W, C) becomes (1, C) against (H·W, C)), so a row is a long contiguous run.
//
// Summing over broadcast axes is what a backward pass does with these offsets: the gradient
// of an operand is the sum of the output gradient over every output element that read it
// (`broadcastSum`).
//
// Beside each fast function, a naive one that works element by element from the definition
// (`…Naive`), for the tests.

/// The shape `shapes` broadcast to (NumPy's rule, right-aligned), or nil when two sizes along
/// an axis differ and neither is 1.
func broadcastShape(_ shapes: [[Int]]) -> [Int]? {
    guard var out = shapes.first else { return nil }
    for s in shapes.dropFirst() {
        if s.count > out.count { out = [Int](repeating: 1, count: s.count - out.count) + out }
        let pad = out.count - s.count
        for (d, size) in s.enumerated() {
            let o = out[pad + d]
            if o == 1 { out[pad + d] = size } else if size != 1 && size != o { return nil }
        }
    }
    return out
}

/// `shape` with leading 1s up to `rank` axes.
func leftPadded(_ shape: [Int], toRank rank: Int) -> [Int] {
    [Int](repeating: 1, count: max(0, rank - shape.count)) + shape
}

/// Naive oracle of the index mapping: the flat index in an operand of shape `operandShape`
/// that output element `index` (flat, in `outShape`) reads.
func broadcastIndexNaive(_ index: Int, outShape: [Int], operandShape: [Int]) -> Int {
    let padded = leftPadded(operandShape, toRank: outShape.count)
    var coordinates = [Int](repeating: 0, count: outShape.count)
    var rest = index
    for d in stride(from: outShape.count - 1, through: 0, by: -1) {
        coordinates[d] = rest % outShape[d]
        rest /= outShape[d]
    }
    var flat = 0
    for d in 0..<outShape.count { flat = flat * padded[d] + (padded[d] == 1 ? 0 : coordinates[d]) }
    return flat
}

/// The output of a broadcast walked row by row, each operand's offset alongside.
///
/// Shapes are whole tensors of one rank (pad per-sample shapes with `leftPadded` before
/// putting N in front): axis 0 is the batch axis, which every operand spans (same N).
/// Other axes of size 1 are dropped and adjacent axes merged where every operand spans both or
/// neither, so a row is as long as it can be. The first merged axis always holds the batch
/// axis and every operand spans it, so different coordinates along it touch disjoint parts of
/// every operand: work split there may write operand-shaped results from several threads.
struct BroadcastLoop {
    /// The merged output shape.
    let shape: [Int]
    /// Per operand, its strides along the merged axes (0 where broadcast).
    let strides: [[Int]]
    /// Per operand, whether it spans the innermost axis (stride 1 there, else 0).
    let spansInner: [Bool]

    init(outShape: [Int], operandShapes: [[Int]]) {
        precondition(!outShape.isEmpty, "no batch axis")
        precondition(operandShapes.allSatisfy { $0.count == outShape.count && $0[0] == outShape[0]
                         && zip($0, outShape).allSatisfy { $0 == $1 || $0 == 1 } },
                     "operands \(operandShapes) do not broadcast to \(outShape) (same rank, same batch size)")
        // `patterns[d][k]`: whether operand k spans merged axis d.
        var merged = [outShape[0]]
        var patterns = [[Bool](repeating: true, count: operandShapes.count)]
        for d in outShape.indices.dropFirst() where outShape[d] != 1 {
            let pattern = operandShapes.map { $0[d] != 1 }
            if pattern == patterns[patterns.count - 1] {
                merged[merged.count - 1] *= outShape[d]
            } else {
                merged.append(outShape[d])
                patterns.append(pattern)
            }
        }
        shape = merged
        var strides: [[Int]] = []
        for k in operandShapes.indices {
            var s = [Int](repeating: 0, count: merged.count)
            var step = 1
            for d in stride(from: merged.count - 1, through: 0, by: -1) where patterns[d][k] {
                s[d] = step
                step *= merged[d]
            }
            strides.append(s)
        }
        self.strides = strides
        spansInner = patterns[merged.count - 1]
    }

    /// Size of the first merged axis: the unit `forEachRow` splits work in.
    var outerCount: Int { shape[0] }

    /// Calls `body(outputOffset, operandOffsets, length)` for every run of output elements whose
    /// first-axis coordinate is in `outer`, in row-major order: output elements
    /// outputOffset ..< outputOffset + length, operand k read from operandOffsets[k] on, with
    /// stride 1 if `spansInner[k]`, else 0. With one merged axis, the run is `outer` itself.
    func forEachRow(_ outer: Range<Int>, _ body: (_ outputOffset: Int, _ operandOffsets: UnsafePointer<Int>, _ length: Int) -> Void) {
        guard !outer.isEmpty else { return }
        let operands = strides.count, rank = shape.count
        withUnsafeTemporaryAllocation(of: Int.self, capacity: operands + rank) { scratch in
            let offsets = scratch.baseAddress!, coordinate = offsets + operands
            if rank == 1 {
                for k in 0..<operands { offsets[k] = outer.lowerBound * strides[k][0] }
                body(outer.lowerBound, offsets, outer.count)
                return
            }
            let length = shape[rank - 1]
            // Output elements per unit of the first axis.
            let block = shape.dropFirst().reduce(1, *)
            for i0 in outer {
                for k in 0..<operands { offsets[k] = i0 * strides[k][0] }
                for d in 0..<rank { coordinate[d] = 0 }
                var out = i0 * block
                // Odometer over the middle axes 1 ..< rank − 1.
                while true {
                    body(out, offsets, length)
                    out += length
                    var d = rank - 2
                    while d >= 1 {
                        coordinate[d] += 1
                        for k in 0..<operands { offsets[k] += strides[k][d] }
                        if coordinate[d] < shape[d] { break }
                        for k in 0..<operands { offsets[k] -= strides[k][d] * shape[d] }
                        coordinate[d] = 0
                        d -= 1
                    }
                    if d < 1 { break }
                }
            }
        }
    }

    /// Runs `body` on consecutive ranges of the first axis that together cover it, on several
    /// threads when the output (`elements` values) is large (`parallelRanges`).
    func splitOuter(elements: Int, _ body: (_ outer: Range<Int>) -> Void) {
        parallelRanges(outerCount, elements: elements, body)
    }
}

/// Sums `g` (a whole output, `outShape`, batch axis first) over the axes along which an
/// operand of shape `operandShape` (batch axis first, same N, same rank) is broadcast, into `dx`: the
/// operand's gradient from its output gradient.
func broadcastSum(_ g: UnsafePointer<Float>, outShape: [Int], operandShape: [Int], into dx: UnsafeMutablePointer<Float>) {
    dx.update(repeating: 0, count: operandShape.reduce(1, *))
    let loop = BroadcastLoop(outShape: outShape, operandShapes: [operandShape])
    let spans = loop.spansInner[0]
    loop.splitOuter(elements: outShape.reduce(1, *)) { outer in
        loop.forEachRow(outer) { out, offsets, length in
            let src = g + out, dst = dx + offsets[0]
            if spans {
                for j in 0..<length { dst[j] += src[j] }
            } else {
                var s: Float = 0
                for j in 0..<length { s += src[j] }
                dst[0] += s
            }
        }
    }
}

/// Naive oracle of `broadcastSum`: every output element added where the operand was read.
func broadcastSumNaive(_ g: [Float], outShape: [Int], operandShape: [Int]) -> [Float] {
    var dx = [Float](repeating: 0, count: operandShape.reduce(1, *))
    for i in g.indices { dx[broadcastIndexNaive(i, outShape: outShape, operandShape: operandShape)] += g[i] }
    return dx
}
