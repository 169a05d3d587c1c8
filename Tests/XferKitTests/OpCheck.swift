// checkOp: one layer kind checked through its op (Ops/LayerOp.swift), as the graph builds and
// runs it, on tiny random shapes:
//
// - its Keras config, written by the op and read back through JSON, gives the same op, and
//   the registry finds the op by its class name;
// - the engine kernel the op makes (random weights of the shapes the op expects) outputs
//   the shape of the op's rule, and the values of the kind's naive oracle where it has one
//   (1e-4, relative to max(|y|, 1));
// - the input gradients and the trainable weights' gradients of its backward agree with
//   finite differences of its forward (checkGradient, BackwardTests.swift).

import Foundation
import XCTest
@testable import XferKit

/// A forward oracle: the op, the inputs (N, inputShape…), the weights by role and the
/// per-sample output shape → the output values.
typealias OpOracle<Op> = (_ op: Op, _ inputs: [Tensor], _ weights: [String: [Float]], _ outputShape: [Int]) -> [Float]

/// Checks `op` (of Keras class `className`, by default the op's own) on inputs of `shapes` (no
/// batch axis), in training mode when `training`. `signature` marks the piecewise structure
/// of the forward at the given inputs (a coordinate whose step changes it is skipped).
func checkOp<Op: LayerOp & Equatable>(_ op: Op, className: String? = nil, inputs shapes: [[Int]], batch: Int = 2,
                                      output expected: [Int]? = nil, oracle: OpOracle<Op>? = nil, training: Bool = false,
                                      scale: Float = 1, seed: UInt64 = 7,
                                      signature: @escaping ([Tensor]) -> [Int32] = { _ in [] },
                                      file: StaticString = #filePath, line: UInt = #line) throws {
    let cls = className ?? op.kerasClassName
    let label = "\(cls) \(op)"
    var rng = XferKit.SeededRandom(seed: seed)
    func random(_ n: Int, _ s: Float = 1) -> [Float] { (0..<n).map { _ in rng.uniform(-s, s) } }

    // The registry reads this class as this op, and the op reads back what it writes.
    XCTAssertTrue(Op.kerasClassNames.contains(cls) || Op.kerasAliases.contains(cls), "\(label): not a class of the op", file: file, line: line)
    XCTAssertEqual(layerOpsByClassName[cls].map(ObjectIdentifier.init), ObjectIdentifier(Op.self),
                   "\(label): the registry does not find the op", file: file, line: line)
    var written: [String: Any] = ["name": "op", "trainable": true, "dtype": "float32"]
    op.writeKeras(&written, className: cls)
    let json = try JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: written)) as! [String: Any]
    // A tensor op's constant travels in its call (tf-keras's kwargs), as the writers put it.
    let call: Any? = (op as? TensorOpConfig).map { ["prev", 0, 0, $0.tfKwargs] as [Any] }
    let read = try Op(keras: KerasLayerConfig(source: "test", className: cls, name: "op", values: json, call: call))
    XCTAssertEqual(read, op, "\(label): written then read", file: file, line: line)

    // The spec, with random weights of the shapes the op expects.
    let expectedWeights = op.expectedWeights(input: shapes[0])
    XCTAssertEqual(!expectedWeights.isEmpty, op.hasWeights, "\(label): hasWeights", file: file, line: line)
    let weights = expectedWeights.map { w -> WeightSpec in
        let n = w.shape.reduce(1, *)
        // Variances positive, away from 0.
        let values = w.role == .movingVariance || w.role == .variance ? random(n, 0.5).map { abs($0) + 0.5 } : random(n, 0.5)
        return WeightSpec(role: w.role, shape: w.shape, values: values, isTrainableKind: w.trainableKind)
    }
    let spec = LayerSpec(name: "op", className: cls, kind: .op(op), weights: weights)
    let outputShape = try spec.outputShape(inputs: shapes)
    if let expected { XCTAssertEqual(outputShape, expected, "\(label): output shape", file: file, line: line) }

    // Builds the kernel of `spec` and runs it on `xs`.
    func forward(_ spec: LayerSpec, _ xs: [Tensor], keep: Bool) throws -> (y: Tensor, kernel: NodeKernel, context: ForwardContext) {
        let kernel = try spec.makeKernel(inputShapes: shapes)
        let context = ForwardContext(keepForBackward: keep)
        switch kernel {
        case .layer(let layer):
            let t = layer as! TrainableLayer
            t.training = training
            t.trainable = op.hasWeights
            return (layer.forward(xs[0], context), kernel, context)
        case .merge(let merge):
            return (merge.forward(xs, context), kernel, context)
        }
    }

    let xs = shapes.map { Tensor(shape: [batch] + $0, values: random(batch * $0.reduce(1, *), scale)) }
    let (y, kernel, context) = try forward(spec, xs, keep: true)
    XCTAssertEqual(y.shape, [batch] + outputShape, "\(label): the kernel's output", file: file, line: line)
    switch kernel {
    case .layer(let l): XCTAssertEqual(l.outputShape, outputShape, "\(label): the layer's output shape", file: file, line: line)
    case .merge(let m): XCTAssertEqual(m.outputShape, outputShape, "\(label): the layer's output shape", file: file, line: line)
    }
    if let oracle {
        let slow = oracle(op, xs, Dictionary(uniqueKeysWithValues: weights.map { ($0.role.rawValue, $0.values) }), outputShape)
        XCTAssertEqual(slow.count, y.count, "\(label): oracle size", file: file, line: line)
        if slow.count == y.count {
            for i in 0..<y.count where abs(slow[i] - y.values[i]) > 1e-4 * max(abs(slow[i]), 1) {
                XCTFail("\(label): y[\(i)] = \(y.values[i]), the oracle gives \(slow[i])", file: file, line: line)
                break
            }
        }
    }

    // Backward against finite differences: L = Σ r·y.
    let r = random(y.count)
    let dy = Tensor(shape: y.shape, values: r)
    let dxs: [Tensor]
    var gradients: [String: [Float]] = [:]
    switch kernel {
    case .layer(let layer):
        let t = layer as! TrainableLayer
        dxs = [t.backward(dy, context, needInputGradient: true)!]
        t.withParameters { role, _, g in gradients[role.rawValue] = Array(g) }
    case .merge(let merge):
        dxs = merge.backward(dy, context, needInputGradients: shapes.map { _ in true }).map { $0! }
    }
    func loss(_ spec: LayerSpec, _ xs: [Tensor]) -> (loss: Double, signature: [Int32]) {
        let y = try! forward(spec, xs, keep: false).y
        return (weightedSum(r, y), signature(xs))
    }
    for k in shapes.indices {
        let check = checkGradient("\(label) dx\(k)", point: xs[k].values, analytic: dxs[k].values, step: 1e-3,
                                  file: file, line: line) { p in
            var moved = xs
            moved[k] = Tensor(shape: xs[k].shape, values: p)
            return loss(spec, moved)
        }
        print("\(label) dx\(k): \(check)")
    }
    for (index, w) in weights.enumerated() {
        guard let analytic = gradients[w.role.rawValue] else { continue }
        let check = checkGradient("\(label) d\(w.role)", point: w.values, analytic: analytic, step: 1e-3,
                                  file: file, line: line) { p in
            var moved = spec
            moved.weights[index].values = p
            return loss(moved, xs)
        }
        print("\(label) d\(w.role): \(check)")
    }
    XCTAssertEqual(Set(gradients.keys), Set(weights.filter(\.isTrainableKind).map(\.role.rawValue)),
                   "\(label): the weights that train", file: file, line: line)
}
