// A model being trained: its layers as one chain (nested models opened up), each
// layer told whether its weights train and whether it runs in training mode, and
// the training step written out top to bottom:
//
//   forward    every layer, keeping what backward needs from the lowest trainable up
//   loss       softmax cross-entropy from the logits, as Keras's `fit` (docs/KERAS-FORMATS.md B.6)
//   backward   from the top down to the lowest trainable layer (no input gradient there)
//   update     the optimizer on every trainable weight, in Keras's order
//
// Modes follow Keras: a layer inside a nested model called with `training=False`
// always runs in inference mode; a BatchNormalization layer that is frozen runs in
// inference mode; Dropout is active in training unless so disabled.

import Foundation

public final class TrainingNetwork {
    /// One layer of the chain.
    struct Entry {
        /// `name`, or `outer/inner` for a layer of a nested model.
        var path: String
        var spec: LayerSpec
        var layer: Layer
        /// Weights train (the layer and every enclosing model are trainable).
        var trainable: Bool
        /// Runs in training mode during a training step.
        var trainingMode: Bool
    }

    let entries: [Entry]
    /// The model as planned (its weights are the initial ones); `exportModel` fills in the trained ones.
    public let model: ModelSpec
    public let inputShape: [Int]
    /// Index of the lowest layer with trainable weights; nil when nothing trains.
    public let lowestTrainable: Int?
    private let context = ForwardContext()

    /// Builds the chain. `kerasVersion` decides BatchNormalization's moving-variance update
    /// (Keras 2's fused kernel uses n/(n−1), Keras 3 the biased variance); `seed` seeds Dropout.
    public init(model: ModelSpec, kerasVersion: String?, seed: UInt64) throws {
        self.model = model
        inputShape = model.inputShape
        var flat: [(path: String, spec: LayerSpec, trainable: Bool, inference: Bool)] = []
        func walk(_ m: ModelSpec, prefix: String, trainable: Bool, inference: Bool) {
            for l in m.layers {
                // A nested model's own flag does not reach into its layers (ModelSpec.weightCounts).
                if case .model(let inner) = l.kind {
                    walk(inner, prefix: prefix + l.name + "/", trainable: trainable,
                         inference: inference || l.callTrainingFalse)
                } else {
                    flat.append((prefix + l.name, l, trainable && l.trainable, inference))
                }
            }
        }
        walk(model, prefix: "", trainable: model.trainable, inference: false)
        guard var last = flat.last?.spec else { throw XferError.badInput(model.name, "has no layers") }
        // The final softmax is applied by the loss, from the logits.
        switch last.kind {
        case .dense(var d) where d.activation == .softmax:
            d.activation = .linear; last.kind = .dense(d)
        case .activation(.softmax):
            last.kind = .activation(.linear)
        default:
            throw XferError.badInput(model.name, "does not end in a softmax, so it cannot be trained with categorical cross-entropy",
                                     hint: "fine-tune with a new head (drop --keep-top)")
        }
        flat[flat.count - 1].spec = last

        let bessel = !(kerasVersion?.hasPrefix("3") ?? false)
        var shape = model.inputShape
        var built: [Entry] = []
        var random = SeededRandom(seed: seed)
        for f in flat {
            let layer = try Network.build(f.spec, inputShape: shape)
            shape = layer.outputShape
            let hasWeights = f.spec.hasWeights
            var trainingMode = !f.inference
            if case .batchNormalization = f.spec.kind, !f.trainable { trainingMode = false }
            if let t = layer as? TrainableLayer {
                t.trainable = f.trainable && hasWeights
                t.training = false
                if let d = layer as? DropoutLayer { d.random = SeededRandom(seed: random.next()) }
            }
            configureBatchNorm(layer, bessel: bessel, inputRank: layer.inputShape.count)
            built.append(Entry(path: f.path, spec: f.spec, layer: layer, trainable: f.trainable && hasWeights, trainingMode: trainingMode))
        }
        entries = built
        lowestTrainable = built.firstIndex { $0.trainable }
        if let lowest = lowestTrainable {
            for e in built[lowest...] where !(e.layer is TrainableLayer) {
                throw XferError.badInput(e.path, "\(e.spec.className) layers cannot be trained yet",
                                         hint: "freeze it and everything below it (--freeze-until a later layer)")
            }
        }
    }

    /// Whether the weights of the layer at `path` (or of `path/role`) train.
    public func isTrainable(_ path: String) -> Bool {
        entries.contains { $0.trainable && (path == $0.path || path.hasPrefix($0.path + "/")) }
    }

    /// `path/role` of each trainable parameter, in the order the optimizer numbers them.
    public var parameterPaths: [String] {
        var out: [String] = []
        guard let lowest = lowestTrainable else { return out }
        for e in entries[lowest...] where e.trainable {
            (e.layer as! TrainableLayer).withParameters { role, _, _ in out.append("\(e.path)/\(role)") }
        }
        return out
    }

    /// The number of values each sample's output has (the classes of the final softmax).
    public var outputCount: Int { entries.last?.layer.outputShape.reduce(1, *) ?? 0 }

    /// `path/role` and number of values of each trainable parameter, in the order the optimizer
    /// numbers them (what a resumed optimizer state must match).
    public var parameterSizes: [(path: String, count: Int)] {
        var out: [(path: String, count: Int)] = []
        guard let lowest = lowestTrainable else { return out }
        for e in entries[lowest...] where e.trainable {
            (e.layer as! TrainableLayer).withParameters { role, value, _ in out.append(("\(e.path)/\(role)", value.count)) }
        }
        return out
    }

    /// The chain's layer paths, in order.
    public var layerPaths: [String] { entries.map(\.path) }

    /// Whether anything before the lowest trainable layer is random in training (Dropout), which
    /// rules out caching the frozen prefix's output.
    public var prefixIsDeterministic: Bool {
        guard let lowest = lowestTrainable else { return true }
        return !entries[..<lowest].contains { e in
            if case .dropout(let d) = e.spec.kind { return d.rate > 0 && e.trainingMode }
            return false
        }
    }

    private func setModes(training: Bool) {
        for e in entries { (e.layer as? TrainableLayer)?.training = training && e.trainingMode }
    }

    // MARK: The training step

    /// One training step on a batch `x` (n, inputShape…) with integer `labels`: forward in
    /// training mode, loss, backward, optimizer update. Returns the batch's mean loss (from before
    /// the update, as Keras's `train_on_batch`) and how many samples were classified right.
    ///
    /// `from` > 0 starts at that layer with `x` its input (a cached frozen prefix's output).
    @discardableResult
    public func trainStep(_ x: Tensor, labels: [Int], optimizer: Optimizer, from start: Int = 0) -> (loss: Double, correct: Int) {
        guard let lowest = lowestTrainable else { return evaluateBatch(x, labels: labels, from: start) }
        let (loss, correct) = forwardBackward(x, labels: labels, from: start, lowest: lowest)
        // update
        var k = 0
        for e in entries[lowest...] where e.trainable {
            (e.layer as! TrainableLayer).withParameters { _, value, gradient in
                optimizer.update(k, value, gradient)
                k += 1
            }
        }
        optimizer.finishStep()
        return (loss, correct)
    }

    /// Forward in training mode, keeping what backward needs from `lowest` up; the loss from the
    /// logits; backward from the top down to `lowest`, with no input gradient there. Leaves the
    /// weight gradients in the layers.
    private func forwardBackward(_ x: Tensor, labels: [Int], from start: Int, lowest: Int) -> (loss: Double, correct: Int) {
        precondition(start <= lowest, "the cached prefix must end at or below the lowest trainable layer")
        setModes(training: true)
        defer { setModes(training: false) }
        // forward
        context.pool.beginPass()
        var y = x
        for i in start..<entries.count {
            context.keepForBackward = i >= lowest
            y = entries[i].layer.forward(y, context)
        }
        context.keepForBackward = false
        // loss
        let (loss, correct, dLogits) = softmaxCrossEntropy(logits: y, labels: labels)
        // backward
        for i in lowest..<entries.count { (entries[i].layer as! TrainableLayer).zeroGradients() }
        var dy = dLogits
        for i in stride(from: entries.count - 1, through: lowest, by: -1) {
            let layer = entries[i].layer as! TrainableLayer
            guard let dx = layer.backward(dy, context, needInputGradient: i > lowest) else { break }
            dy = dx
        }
        return (loss, correct)
    }

    /// Loss and correct count of a batch in inference mode (validation, evaluation).
    public func evaluateBatch(_ x: Tensor, labels: [Int], from start: Int = 0) -> (loss: Double, correct: Int) {
        let logits = forwardLogits(x, from: start)
        let r = softmaxCrossEntropy(logits: logits, labels: labels)
        return (r.loss, r.correct)
    }

    /// The logits for `x`, every layer in inference mode.
    public func forwardLogits(_ x: Tensor, from start: Int = 0, upTo end: Int? = nil) -> Tensor {
        setModes(training: false)
        context.keepForBackward = false
        context.pool.beginPass()
        var y = x
        for i in start..<(end ?? entries.count) { y = entries[i].layer.forward(y, context) }
        return y
    }

    /// The output of the layers before `end` (the frozen prefix), for the feature cache. The
    /// prefix is frozen and deterministic, so inference mode gives what training mode would.
    public func prefixOutput(_ x: Tensor, end: Int) -> Tensor {
        var y = forwardLogits(x, from: 0, upTo: end)
        y.values = Array(y.values)  // its own storage, outside the activation pool
        return y
    }

    /// The gradients of the mean loss on a batch w.r.t. every trainable weight, by `path/role`,
    /// without updating anything (for parity tests against Keras's GradientTape).
    public func gradients(_ x: Tensor, labels: [Int]) -> (loss: Double, gradients: [String: [Float]]) {
        guard let lowest = lowestTrainable else { return (evaluateBatch(x, labels: labels).loss, [:]) }
        let (loss, _) = forwardBackward(x, labels: labels, from: 0, lowest: lowest)
        var out: [String: [Float]] = [:]
        for e in entries[lowest...] where e.trainable {
            (e.layer as! TrainableLayer).withParameters { role, _, g in out["\(e.path)/\(role)"] = Array(g) }
        }
        return (loss, out)
    }

    /// Every weight of the chain now, by `path/role` (moving statistics included).
    public func currentWeights() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for e in entries {
            guard let t = e.layer as? TrainableLayer else {
                for w in e.spec.weights { out["\(e.path)/\(w.role)"] = w.values }
                continue
            }
            for (role, v) in t.currentWeights() { out["\(e.path)/\(role)"] = v }
        }
        return out
    }

    /// The weights that training can change (trainable layers, and BatchNormalization layers that
    /// run in training mode), by `path/role`: what a snapshot of the training state needs.
    public func changingWeights() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for e in entries {
            let bnTraining: Bool = { if case .batchNormalization = e.spec.kind { return e.trainingMode } else { return false } }()
            guard e.trainable || bnTraining, let t = e.layer as? TrainableLayer else { continue }
            for (role, v) in t.currentWeights() { out["\(e.path)/\(role)"] = v }
        }
        return out
    }

    /// Puts back weights taken with `currentWeights()` (early stopping's best epoch).
    public func restore(_ weights: [String: [Float]]) {
        for e in entries {
            guard let t = e.layer as? TrainableLayer else { continue }
            var own: [String: [Float]] = [:]
            for (key, v) in weights where key.hasPrefix(e.path + "/") { own[String(key.dropFirst(e.path.count + 1))] = v }
            if !own.isEmpty { t.restoreWeights(own) }
        }
    }

    /// The planned model with the weights as they are now (softmax restored).
    public func exportModel() -> ModelSpec {
        let now = currentWeights()
        func fill(_ m: ModelSpec, prefix: String) -> ModelSpec {
            var m = m
            for i in m.layers.indices {
                let l = m.layers[i]
                if case .model(let inner) = l.kind {
                    m.layers[i].kind = .model(fill(inner, prefix: prefix + l.name + "/"))
                    continue
                }
                for j in l.weights.indices {
                    if let v = now["\(prefix)\(l.name)/\(l.weights[j].role)"] { m.layers[i].weights[j].values = v }
                }
            }
            return m
        }
        return fill(model, prefix: "")
    }
}

/// Keras's `fit` loss for a softmax output (from the logits): per-sample
/// logsumexp(z) − z_label, averaged over the batch; gradient (softmax(z) − onehot)/N.
func softmaxCrossEntropy(logits: Tensor, labels: [Int]) -> (loss: Double, correct: Int, dLogits: Tensor) {
    let n = logits.shape[0], c = logits.count / max(n, 1)
    precondition(labels.count == n)
    var d = logits.values
    var loss = 0.0
    var correct = 0
    for i in 0..<n {
        let row = i * c
        var m = -Float.infinity
        var arg = 0
        for j in 0..<c where logits.values[row + j] > m { m = logits.values[row + j]; arg = j }
        var s: Float = 0
        for j in 0..<c { let e = expf(logits.values[row + j] - m); d[row + j] = e; s += e }
        let label = labels[i]
        loss += Double(m + logf(s) - logits.values[row + label])
        if arg == label { correct += 1 }
        for j in 0..<c { d[row + j] = (d[row + j] / s - (j == label ? 1 : 0)) / Float(n) }
    }
    return (loss / Double(max(n, 1)), correct, Tensor(shape: logits.shape, values: d))
}

/// Sets BatchNormalization's moving-variance rule: tf-keras's fused kernel (4-D input) uses
/// the unbiased n/(n−1) batch variance, its non-fused path (2-D input) and Keras 3 the biased one.
func configureBatchNorm(_ layer: Layer, bessel: Bool, inputRank: Int) {
    guard let bn = layer as? BatchNormalizationLayer else { return }
    bn.besselCorrection = bessel && inputRank == 3
}
