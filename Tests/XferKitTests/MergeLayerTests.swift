// The merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate) and the
// broadcasting under them, checked three ways:
//
// - against the naive oracles beside the kernels (Broadcast.swift, ElementwiseMerge.swift,
//   Concatenate.swift: index by index from the definition): forward bit for bit, backward to
//   1e-6 (the sums over broadcast axes run in another order);
// - the backward against central finite differences of L = Σ r·y (checkGradient in
//   BackwardTests.swift), coordinates where a step changes which input wins a Maximum or
//   Minimum skipped;
// - against real Keras/TensorFlow: checkpoints/merge/merge_reference.json, written by
//   checkpoints/make_merge_reference.py with Keras 3 and tf_keras (exact ties, broadcasting,
//   lower-rank inputs, every Concatenate axis).

import Foundation
import XCTest
@testable import XferKit

final class MergeLayerTests: XCTestCase {
    var rng = SeededRandom(seed: 2024)
    /// Every check's numbers, printed at the end of each test.
    private var log: [String] = []

    override func tearDown() {
        for line in log { print("merge: \(line)") }
        log = []
        super.tearDown()
    }

    // MARK: - Broadcasting

    func testBroadcastShapeRule() {
        XCTAssertEqual(broadcastShape([[3, 4, 5], [3, 4, 5]]), [3, 4, 5])
        XCTAssertEqual(broadcastShape([[4, 5, 6], [1, 1, 6]]), [4, 5, 6])
        XCTAssertEqual(broadcastShape([[1, 1, 6], [4, 5, 6]]), [4, 5, 6])
        XCTAssertEqual(broadcastShape([[3, 1, 4], [1, 5, 4]]), [3, 5, 4])
        XCTAssertEqual(broadcastShape([[3, 4, 1], [3, 4, 5]]), [3, 4, 5])
        XCTAssertEqual(broadcastShape([[2, 3, 4], [2, 1, 4], [1, 3, 1]]), [2, 3, 4])
        // Lower rank: aligned on the last axis (Keras expands at axis 1).
        XCTAssertEqual(broadcastShape([[4], [2, 3, 4]]), [2, 3, 4])
        XCTAssertEqual(broadcastShape([[2, 3, 4], [3, 4]]), [2, 3, 4])
        XCTAssertEqual(broadcastShape([[1], [2, 3, 4]]), [2, 3, 4])
        XCTAssertEqual(broadcastShape([[5]]), [5])
        XCTAssertNil(broadcastShape([[2, 3], [3, 3]]))
        XCTAssertNil(broadcastShape([[4], [2, 3, 5]]))
        XCTAssertNil(broadcastShape([[2, 3, 4], [2, 1, 4], [1, 2, 1]]))
        XCTAssertNil(broadcastShape([]))
    }

    /// Whole-tensor shapes (batch first, one rank) of a random broadcast: an output and
    /// operands of size 1 or the output's along each axis.
    private func randomBroadcast(operands: Int) -> (out: [Int], operands: [[Int]]) {
        let rank = rng.int(1...5)
        let out = [rng.int(1...3)] + (1..<rank).map { _ in rng.int(1...4) }
        let shapes = (0..<operands).map { _ in [out[0]] + out.dropFirst().map { rng.int(0...2) == 0 ? 1 : $0 } }
        return (out, shapes)
    }

    func testBroadcastLoopMatchesNaiveIndexMapping() {
        var cases = 0, rows = 0
        for _ in 0..<300 {
            let (out, shapes) = randomBroadcast(operands: rng.int(1...4))
            let count = out.reduce(1, *)
            let loop = BroadcastLoop(outShape: out, operandShapes: shapes)
            // Split the first axis in 1, 2 or 3 pieces: the pieces must cover the output in order.
            let parts = rng.int(1...3)
            var next = 0
            for p in 0..<parts {
                loop.forEachRow(chunk(p, of: parts, total: loop.outerCount)) { start, offsets, length in
                    rows += 1
                    XCTAssertEqual(start, next, "\(out) \(shapes): rows out of order")
                    for j in 0..<length {
                        for k in shapes.indices {
                            let expected = broadcastIndexNaive(start + j, outShape: out, operandShape: shapes[k])
                            XCTAssertEqual(offsets[k] + (loop.spansInner[k] ? j : 0), expected, "\(out) \(shapes) element \(start + j) operand \(k)")
                        }
                    }
                    next = start + length
                }
            }
            XCTAssertEqual(next, count, "\(out) \(shapes): the rows do not cover the output")
            cases += 1
        }
        // The squeeze-excite case merges to (N·H·W, C) against (N, 1, C): rows of C.
        let se = BroadcastLoop(outShape: [2, 4, 5, 6], operandShapes: [[2, 4, 5, 6], [2, 1, 1, 6]])
        XCTAssertEqual(se.shape, [2, 20, 6])
        XCTAssertEqual(se.strides, [[120, 6, 1], [6, 0, 1]])
        // Equal shapes merge to one run; with N = 1 the batch axis stays first.
        XCTAssertEqual(BroadcastLoop(outShape: [2, 3, 4], operandShapes: [[2, 3, 4], [2, 3, 4]]).shape, [24])
        XCTAssertEqual(BroadcastLoop(outShape: [1, 4, 5, 6], operandShapes: [[1, 4, 5, 6], [1, 1, 1, 6]]).shape, [1, 20, 6])
        log.append("index mapping: \(cases) random broadcasts, \(rows) rows, every element equal to the naive mapping")
    }

    func testBroadcastSumMatchesNaive() {
        var worst: Float = 0
        for _ in 0..<200 {
            let (out, shapes) = randomBroadcast(operands: 1)
            let g = rng.floats(out.reduce(1, *))
            var dx = [Float](repeating: .nan, count: shapes[0].reduce(1, *))
            g.withUnsafeBufferPointer { pg in
                dx.withUnsafeMutableBufferPointer { broadcastSum(pg.baseAddress!, outShape: out, operandShape: shapes[0], into: $0.baseAddress!) }
            }
            let naive = broadcastSumNaive(g, outShape: out, operandShape: shapes[0])
            let d = maxDifference(dx, naive)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-5, "\(out) → \(shapes[0])")
        }
        log.append("broadcastSum vs naive: 200 random broadcasts, max abs difference \(worst)")
    }

    // MARK: - Elementwise merges

    /// Per-sample shape combinations, each with its output shape.
    static let pairs: [(inputs: [[Int]], output: [Int])] = [
        ([[3, 4, 5], [3, 4, 5]], [3, 4, 5]),   // equal
        ([[4, 5, 6], [1, 1, 6]], [4, 5, 6]),   // squeeze-excite
        ([[1, 1, 6], [4, 5, 6]], [4, 5, 6]),
        ([[3, 1, 4], [1, 5, 4]], [3, 5, 4]),   // (H, 1, C) with (1, W, C)
        ([[3, 4, 1], [3, 4, 5]], [3, 4, 5]),   // broadcast along the channels
        ([[4], [2, 3, 4]], [2, 3, 4]),         // lower rank: (C,) with (H, W, C)
        ([[2, 3, 4], [3, 4]], [2, 3, 4]),
        ([[5], [5]], [5]),                     // rank 1 (Dense outputs)
        ([[1], [5]], [5]),
    ]
    static let triples: [(inputs: [[Int]], output: [Int])] = [
        ([[2, 3, 4], [2, 3, 4], [2, 3, 4]], [2, 3, 4]),
        ([[2, 3, 4], [2, 1, 4], [1, 3, 1]], [2, 3, 4]),
        ([[3, 1, 2], [1, 1, 2], [1, 4, 1], [3, 4, 2]], [3, 4, 2]),  // four inputs
        ([[2, 3]], [2, 3]),                                         // one input: Keras allows it
    ]

    /// The input each output element's chain picks (Maximum, Minimum): where the gradient goes.
    private func winners<Op: ElementwiseMergeOp>(_: Op.Type, _ inputs: [Tensor], outputShape: [Int]) -> [Int32] {
        let n = inputs[0].shape[0], out = [n] + outputShape
        let shapes = inputs.map { [n] + leftPadded(Array($0.shape.dropFirst()), toRank: outputShape.count) }
        return (0..<out.reduce(1, *)).map { i in
            let x = inputs.indices.map { inputs[$0].values[broadcastIndexNaive(i, outShape: out, operandShape: shapes[$0])] }
            var s = x[0], w: Int32 = 0
            for k in 1..<x.count {
                if Op.backprop(1, s, x[k]).b == 1 { w = Int32(k) }
                s = Op.apply(s, x[k])
            }
            return w
        }
    }

    /// One layer on one shape combination: shapes, forward and backward against the oracles,
    /// backward against finite differences.
    private func checkElementwise<Op: ElementwiseMergeOp>(_ op: Op.Type, _ shapes: [[Int]], output: [Int], batch: Int = 2,
                                                          file: StaticString = #filePath, line: UInt = #line) throws {
        let label = "\(Op.kind) \(shapes.map { "\($0)" }.joined(separator: " ")) N=\(batch)"
        let layer = try ElementwiseMergeLayer<Op>(name: "m", inputShapes: shapes)
        XCTAssertEqual(layer.outputShape, output, label, file: file, line: line)
        XCTAssertEqual(try ElementwiseMergeLayer<Op>.outputShape(name: "m", inputShapes: shapes), output, label, file: file, line: line)
        let inputs = shapes.map { rng.tensor([batch] + $0) }
        let context = ForwardContext(keepForBackward: true)
        let y = layer.forward(inputs, context)
        let oracle = elementwiseMergeForwardNaive(Op.self, inputs, outputShape: output)
        XCTAssertEqual(y.shape, [batch] + output, label, file: file, line: line)
        XCTAssertEqual(y.values, oracle.values, "\(label): forward differs from the naive oracle", file: file, line: line)

        let r = rng.floats(y.count)
        let dy = Tensor(shape: y.shape, values: r)
        let dx = layer.backward(dy, context, needInputGradients: shapes.map { _ in true })
        let naive = elementwiseMergeBackwardNaive(Op.self, inputs, outputShape: output, dy: dy)
        var worst: Float = 0
        for k in shapes.indices {
            guard let g = dx[k] else { XCTFail("\(label): no gradient for input \(k)", file: file, line: line); continue }
            XCTAssertEqual(g.shape, inputs[k].shape, label, file: file, line: line)
            let d = maxDifference(g.values, naive[k].values)
            worst = max(worst, d)
            XCTAssertLessThanOrEqual(d, 1e-6, "\(label): backward of input \(k) differs from the naive oracle", file: file, line: line)
        }
        let kinky = Op.self == MaximumOp.self || Op.self == MinimumOp.self
        var fd: [String] = []
        for k in shapes.indices {
            guard let g = dx[k] else { continue }
            let check = checkGradient("\(label) dx\(k)", point: inputs[k].values, analytic: g.values, step: 1e-3, file: file, line: line) { p in
                var xs = inputs
                xs[k] = Tensor(shape: inputs[k].shape, values: p)
                let out = layer.forward(xs, ForwardContext())
                return (weightedSum(r, out), kinky ? self.winners(Op.self, xs, outputShape: output) : [])
            }
            fd.append("dx\(k) \(check)")
        }
        log.append("\(label): forward = oracle, backward vs oracle max abs \(worst); finite differences: \(fd.joined(separator: "; "))")
    }

    private func checkEveryCombination<Op: ElementwiseMergeOp>(_ op: Op.Type) throws {
        let combos = Op.requiredInputCount == 2 ? Self.pairs : Self.pairs + Self.triples
        for c in combos { try checkElementwise(op, c.inputs, output: c.output) }
        // N = 1: the batch axis has size 1 and must still be the one split across threads.
        try checkElementwise(op, [[4, 5, 6], [1, 1, 6]], output: [4, 5, 6], batch: 1)
    }

    func testAdd() throws { try checkEveryCombination(AddOp.self) }
    func testSubtract() throws { try checkEveryCombination(SubtractOp.self) }
    func testMultiply() throws { try checkEveryCombination(MultiplyOp.self) }
    func testAverage() throws { try checkEveryCombination(AverageOp.self) }
    func testMaximum() throws { try checkEveryCombination(MaximumOp.self) }
    func testMinimum() throws { try checkEveryCombination(MinimumOp.self) }

    /// Large enough to be split across threads: the same results as the oracles.
    func testLargeBroadcastsOnThreads() throws {
        for (shapes, output) in [([[32, 32, 32], [1, 1, 32]], [32, 32, 32]), ([[16, 1, 64], [1, 32, 64]], [16, 32, 64])] {
            let layer = try MultiplyLayer(name: "se", inputShapes: shapes)
            let inputs = shapes.map { rng.tensor([2] + $0) }
            let context = ForwardContext(keepForBackward: true)
            let y = layer.forward(inputs, context)
            XCTAssertEqual(y.values, elementwiseMergeForwardNaive(MultiplyOp.self, inputs, outputShape: output).values)
            let dy = rng.tensor(y.shape)
            let dx = layer.backward(dy, context, needInputGradients: [true, true])
            let naive = elementwiseMergeBackwardNaive(MultiplyOp.self, inputs, outputShape: output, dy: dy)
            for k in 0..<2 {
                let scale = max(1, naive[k].values.map(abs).max()!)
                let d = maxDifference(dx[k]!.values, naive[k].values)
                XCTAssertLessThanOrEqual(d, 1e-6 * scale * 32, "\(shapes) input \(k)")
                log.append("threads \(shapes) dx\(k): max abs difference \(d) (largest |dx| \(scale))")
            }
        }
    }

    // MARK: - Ties

    /// The TensorFlow rule on exact ties: through max(s, x) the gradient goes to s where s ≥ x,
    /// so of tied inputs the first gets everything.
    func testMaximumAndMinimumTiesGoToTheFirstInput() throws {
        // Per position (a, b, c): a=b>c, b=c>a, a=c>b, a=b=c, distinct (c wins), and one loser tied twice.
        let a: [Float] = [1, 0, 1, 1, 0, 0]
        let b: [Float] = [1, 1, 0, 1, 0, 0]
        let c: [Float] = [0, 1, 1, 1, 2, -1]
        let inputs = [a, b, c].map { Tensor(shape: [1, 6], values: $0) }
        let dy = Tensor(shape: [1, 6], values: [1, 2, 3, 4, 5, 6])
        let max = try MaximumLayer(name: "max", inputShapes: [[6], [6], [6]])
        let ctx = ForwardContext(keepForBackward: true)
        XCTAssertEqual(max.forward(inputs, ctx).values, [1, 1, 1, 1, 2, 0])
        let dmax = max.backward(dy, ctx, needInputGradients: [true, true, true]).map { $0!.values }
        XCTAssertEqual(dmax[0], [1, 0, 3, 4, 0, 6])
        XCTAssertEqual(dmax[1], [0, 2, 0, 0, 0, 0])
        XCTAssertEqual(dmax[2], [0, 0, 0, 0, 5, 0])
        let min = try MinimumLayer(name: "min", inputShapes: [[6], [6], [6]])
        XCTAssertEqual(min.forward(inputs, ctx).values, [0, 0, 0, 1, 0, -1])
        let dmin = min.backward(dy, ctx, needInputGradients: [true, true, true]).map { $0!.values }
        XCTAssertEqual(dmin[0], [0, 2, 0, 4, 5, 0])
        XCTAssertEqual(dmin[1], [0, 0, 3, 0, 0, 0])
        XCTAssertEqual(dmin[2], [1, 0, 0, 0, 0, 6])
        // A broadcast input tied with several positions collects the gradient of each tie it wins.
        let se = try MaximumLayer(name: "max", inputShapes: [[1, 2], [3, 2]])
        _ = se.forward([Tensor(shape: [1, 1, 2], values: [1, 0]), Tensor(shape: [1, 3, 2], values: [1, 1, 0, 0, 2, -1])], ctx)
        let dse = se.backward(Tensor(shape: [1, 3, 2], values: [1, 2, 3, 4, 5, 6]), ctx, needInputGradients: [true, true])
        XCTAssertEqual(dse[0]!.values, [1 + 3, 4 + 6])
        XCTAssertEqual(dse[1]!.values, [0, 2, 0, 0, 5, 0])
    }

    func testMaximumAndMinimumFollowTensorFlowOnNaNAndSignedZeros() {
        // tf.maximum / tf.minimum: NaN from either side; the first operand on equal values.
        XCTAssertTrue(MaximumOp.apply(.nan, 1).isNaN)
        XCTAssertTrue(MaximumOp.apply(1, .nan).isNaN)
        XCTAssertTrue(MinimumOp.apply(.nan, 1).isNaN)
        XCTAssertTrue(MinimumOp.apply(1, .nan).isNaN)
        XCTAssertEqual(MaximumOp.apply(-0.0, 0.0).sign, .minus)
        XCTAssertEqual(MaximumOp.apply(0.0, -0.0).sign, .plus)
        XCTAssertEqual(MinimumOp.apply(-0.0, 0.0).sign, .minus)
        // The gradient where a value is NaN goes to the second operand (x ≥ NaN is false).
        XCTAssertEqual(MaximumOp.backprop(1, .nan, 1).b, 1)
        XCTAssertEqual(MinimumOp.backprop(1, 1, .nan).b, 1)
    }

    // MARK: - Concatenate

    static let concatenations: [(axis: Int, inputs: [[Int]], output: [Int])] = [
        (-1, [[2, 3, 2], [2, 3, 3]], [2, 3, 5]),
        (3, [[2, 2, 1], [2, 2, 3]], [2, 2, 4]),
        (1, [[1, 3, 2], [2, 3, 2]], [3, 3, 2]),
        (-3, [[1, 3, 2], [2, 3, 2]], [3, 3, 2]),
        (2, [[2, 1, 2], [2, 3, 2], [2, 2, 2]], [2, 6, 2]),
        (-2, [[2, 1, 2], [2, 3, 2]], [2, 4, 2]),
        (-1, [[3], [2]], [5]),
        (1, [[3], [2], [4]], [9]),
        (-1, [[2, 3, 4]], [2, 3, 4]),
    ]

    func testConcatenate() throws {
        for c in Self.concatenations {
            for batch in [2, 1] {
                let label = "Concatenate axis \(c.axis) \(c.inputs.map { "\($0)" }.joined(separator: " ")) N=\(batch)"
                let layer = try ConcatenateLayer(name: "cat", axis: c.axis, inputShapes: c.inputs)
                XCTAssertEqual(layer.outputShape, c.output, label)
                XCTAssertEqual(try ConcatenateLayer.outputShape(name: "cat", axis: c.axis, inputShapes: c.inputs), c.output, label)
                let inputs = c.inputs.map { rng.tensor([batch] + $0) }
                let context = ForwardContext(keepForBackward: true)
                let y = layer.forward(inputs, context)
                let axis = layer.sampleAxis + 1
                XCTAssertEqual(y, concatenateNaive(inputs, axis: axis), label)
                let r = rng.floats(y.count)
                let dy = Tensor(shape: y.shape, values: r)
                let dx = layer.backward(dy, context, needInputGradients: c.inputs.map { _ in true })
                var fd: [String] = []
                for k in c.inputs.indices {
                    XCTAssertEqual(dx[k], concatenationSliceNaive(dy, shapes: inputs.map(\.shape), axis: axis, input: k), "\(label) dx\(k)")
                    let check = checkGradient("\(label) dx\(k)", point: inputs[k].values, analytic: dx[k]!.values, step: 1e-3) { p in
                        var xs = inputs
                        xs[k] = Tensor(shape: inputs[k].shape, values: p)
                        return (weightedSum(r, layer.forward(xs, ForwardContext())), [])
                    }
                    fd.append("dx\(k) \(check)")
                }
                log.append("\(label): forward and backward = oracle; finite differences: \(fd.joined(separator: "; "))")
            }
        }
        // Large enough for several threads.
        let big = try ConcatenateLayer(name: "cat", axis: -1, inputShapes: [[32, 32, 24], [32, 32, 40]])
        let inputs = [rng.tensor([2, 32, 32, 24]), rng.tensor([2, 32, 32, 40])]
        let y = big.forward(inputs, ForwardContext())
        XCTAssertEqual(y, concatenateNaive(inputs, axis: 3))
        let dx = big.backward(y, ForwardContext(), needInputGradients: [true, true])
        XCTAssertEqual(dx[0], inputs[0])
        XCTAssertEqual(dx[1], inputs[1])
    }

    // MARK: - Keras reference

    struct Reference: Decodable {
        var keras_version: String
        var tf_keras_version: String
        var tensorflow_version: String
        var cases: [Case]
        struct Case: Decodable {
            var name: String
            var layer: String
            var axis: Int?
            var input_shapes: [[Int]]
            var batch: Int
            var inputs: [[Double]]
            var r: [Double]
            var output_shape: [Int]
            var y: [Double]
            var grads: [[Double]]
        }
    }

    private func makeLayer(_ kind: String, axis: Int?, _ shapes: [[Int]]) throws -> MergeLayer {
        switch kind {
        case "Add": return try AddLayer(name: "add", inputShapes: shapes)
        case "Subtract": return try SubtractLayer(name: "subtract", inputShapes: shapes)
        case "Multiply": return try MultiplyLayer(name: "multiply", inputShapes: shapes)
        case "Average": return try AverageLayer(name: "average", inputShapes: shapes)
        case "Maximum": return try MaximumLayer(name: "maximum", inputShapes: shapes)
        case "Minimum": return try MinimumLayer(name: "minimum", inputShapes: shapes)
        case "Concatenate": return try ConcatenateLayer(name: "concatenate", axis: axis ?? -1, inputShapes: shapes)
        default: throw XferError.badInput(kind, "not a merge layer")
        }
    }

    func testMatchesKerasAndTensorFlow() throws {
        let url = Fixtures.root.appendingPathComponent("checkpoints/merge/merge_reference.json")
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        XCTAssertGreaterThanOrEqual(reference.cases.count, 20)
        var worst: Float = 0, inexactForward = 0
        for c in reference.cases {
            let layer = try makeLayer(c.layer, axis: c.axis, c.input_shapes)
            XCTAssertEqual(layer.outputShape, c.output_shape, c.name)
            let inputs = zip(c.input_shapes, c.inputs).map { Tensor(shape: [c.batch] + $0, values: $1.map { Float($0) }) }
            let context = ForwardContext(keepForBackward: true)
            let y = layer.forward(inputs, context)
            let expected = c.y.map { Float($0) }
            // Single float32 operations in the same order as TensorFlow's: bit for bit.
            if y.values != expected { inexactForward += 1 }
            XCTAssertEqual(y.values, expected, "\(c.name): forward")
            let dy = Tensor(shape: y.shape, values: c.r.map { Float($0) })
            let dx = layer.backward(dy, context, needInputGradients: c.input_shapes.map { _ in true })
            for k in c.input_shapes.indices {
                let d = maxDifference(dx[k]!.values, c.grads[k].map { Float($0) })
                worst = max(worst, d)
                XCTAssertLessThanOrEqual(d, 1e-6, "\(c.name): gradient of input \(k)")
            }
        }
        log.append("Keras \(reference.keras_version) / tf_keras \(reference.tf_keras_version) / TensorFlow \(reference.tensorflow_version): "
                   + "\(reference.cases.count) cases, forward bit for bit in \(reference.cases.count - inexactForward), gradients max abs difference \(worst)")
    }

    // MARK: - What is kept, what is asked

    func testKeepsInputsOnlyWhenBackwardReadsThem() throws {
        let shapes = [[2, 3], [1, 3]]
        let inputs = shapes.map { rng.tensor([2] + $0) }
        func kept<Op: ElementwiseMergeOp>(_: Op.Type, keep: Bool) throws -> Int {
            let layer = try ElementwiseMergeLayer<Op>(name: "m", inputShapes: shapes)
            _ = layer.forward(inputs, ForwardContext(keepForBackward: keep))
            return layer.kept.count
        }
        for keep in [false, true] {
            XCTAssertEqual(try kept(AddOp.self, keep: keep), 0)
            XCTAssertEqual(try kept(SubtractOp.self, keep: keep), 0)
            XCTAssertEqual(try kept(AverageOp.self, keep: keep), 0)
            XCTAssertEqual(try kept(MultiplyOp.self, keep: keep), keep ? 2 : 0)
            XCTAssertEqual(try kept(MaximumOp.self, keep: keep), keep ? 2 : 0)
            XCTAssertEqual(try kept(MinimumOp.self, keep: keep), keep ? 2 : 0)
        }
        // An inference pass after a training one drops what the training one kept.
        let layer = try MultiplyLayer(name: "m", inputShapes: shapes)
        _ = layer.forward(inputs, ForwardContext(keepForBackward: true))
        _ = layer.forward(inputs, ForwardContext())
        XCTAssertTrue(layer.kept.isEmpty)
    }

    func testGradientsOnlyForTheInputsAsked() throws {
        let inputs = [rng.tensor([2, 2, 3]), rng.tensor([2, 1, 3])]
        let dy = rng.tensor([2, 2, 3])
        for layer in [try AddLayer(name: "a", inputShapes: [[2, 3], [1, 3]]) as MergeLayer,
                      try MultiplyLayer(name: "m", inputShapes: [[2, 3], [1, 3]]),
                      try ConcatenateLayer(name: "c", axis: 1, inputShapes: [[2, 3], [1, 3]])] {
            let ctx = ForwardContext(keepForBackward: true)
            let y = layer.forward(inputs, ctx)
            let g = layer is ConcatenateLayer ? rng.tensor(y.shape) : dy
            let dx = layer.backward(g, ctx, needInputGradients: [false, true])
            XCTAssertNil(dx[0], layer.name)
            XCTAssertEqual(dx[1]?.shape, [2, 1, 3], layer.name)
            XCTAssertTrue(layer.backward(g, ctx, needInputGradients: [false, false]).allSatisfy { $0 == nil }, layer.name)
        }
        // Add hands dy itself to an input of the output's shape.
        let add = try AddLayer(name: "a", inputShapes: [[2, 3], [1, 3]])
        let dx = add.backward(dy, ForwardContext(), needInputGradients: [true, true])
        XCTAssertEqual(dx[0], dy)
        var summed: [Float] = []
        for b in 0..<2 {
            for c in 0..<3 { summed.append(dy.values[b * 6 + c] + dy.values[b * 6 + 3 + c]) }
        }
        XCTAssertEqual(dx[1]!.values, summed)
    }

    // MARK: - Shape errors

    func testShapeErrorsAreOneLineXferErrors() {
        let cases: [(String, () throws -> Any)] = [
            ("no input", { try AddLayer(name: "bad", inputShapes: []) }),
            ("incompatible", { try AddLayer(name: "bad", inputShapes: [[2, 3], [3, 3]]) }),
            ("incompatible 3rd", { try MultiplyLayer(name: "bad", inputShapes: [[4, 5, 6], [1, 1, 6], [4, 4, 6]]) }),
            ("lower rank incompatible", { try AverageLayer(name: "bad", inputShapes: [[5], [2, 3, 4]]) }),
            ("zero size", { try MaximumLayer(name: "bad", inputShapes: [[0, 3], [1, 3]]) }),
            ("Subtract 3", { try SubtractLayer(name: "bad", inputShapes: [[3], [3], [3]]) }),
            ("Subtract 1", { try SubtractLayer(name: "bad", inputShapes: [[3]]) }),
            ("Minimum outputShape", { try MinimumLayer.outputShape(name: "bad", inputShapes: [[2], [3]]) }),
            ("Concatenate no input", { try ConcatenateLayer(name: "bad", inputShapes: []) }),
            ("Concatenate axis 0", { try ConcatenateLayer(name: "bad", axis: 0, inputShapes: [[2, 3], [2, 3]]) }),
            ("Concatenate axis -3 of rank 3", { try ConcatenateLayer(name: "bad", axis: -3, inputShapes: [[2, 3], [2, 3]]) }),
            ("Concatenate axis 4", { try ConcatenateLayer(name: "bad", axis: 4, inputShapes: [[2, 3, 4], [2, 3, 1]]) }),
            ("Concatenate axis -5", { try ConcatenateLayer(name: "bad", axis: -5, inputShapes: [[2, 3, 4], [2, 3, 1]]) }),
            ("Concatenate ranks", { try ConcatenateLayer(name: "bad", inputShapes: [[2, 3, 4], [3, 4]]) }),
            ("Concatenate off axis", { try ConcatenateLayer(name: "bad", inputShapes: [[2, 3, 4], [2, 2, 1]]) }),
            ("Concatenate off axis, size 1", { try ConcatenateLayer(name: "bad", inputShapes: [[2, 3, 4], [2, 1, 1]]) }),
            ("Concatenate zero size", { try ConcatenateLayer(name: "bad", axis: 1, inputShapes: [[0, 3], [2, 3]]) }),
            ("Concatenate outputShape", { try ConcatenateLayer.outputShape(name: "bad", axis: 2, inputShapes: [[2, 3], [3, 3]]) }),
        ]
        for (label, make) in cases {
            do {
                _ = try make()
                XCTFail("\(label): no error")
            } catch let e as XferError {
                XCTAssertEqual(e.kind, .badInput, label)
                XCTAssertEqual(e.subject, "layer 'bad'", label)
                XCTAssertFalse(e.description.contains("\n"), label)
                log.append("\(label): \(e)")
            } catch {
                XCTFail("\(label): \(error) is not an XferError")
            }
        }
    }
}
