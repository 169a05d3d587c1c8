// A model being trained: its graph (nested models opened up), each node told by the
// execution plan whether its weights train, whether a gradient flows through it and whether
// it runs in training mode, and the training step written out top to bottom:
//
//   forward    every node, keeping what backward needs where a gradient flows
//   loss       the Loss (Losses/: Keras's loss, from the logits under a softmax/sigmoid head,
//              weighted by class weights), as Keras's `fit`
//   backward   in reverse, summing a value's gradients over its readers, down to the frontier
//   update     the optimizer on every trainable weight, in Keras's order
//
// Modes follow Keras: a layer inside a nested model called with `training=False`
// always runs in inference mode; a BatchNormalization layer that is frozen runs in
// inference mode; Dropout is active in training unless so disabled.

import Foundation

package final class TrainingNetwork {
    /// The model opened up: one node per layer call, nested models inlined, the final softmax or
    /// sigmoid of a cross-entropy removed (the loss applies it, from the logits).
    package let graph: ModelGraph
    /// What each node runs (the `--dry-run` table and the feature cache read the same plan).
    package let plan: ExecutionPlan
    /// The model as planned (its weights are the initial ones); `exportModel` fills in the trained ones.
    package let model: ModelSpec
    package let inputShape: [Int]
    /// What training minimises (Keras's loss and its arguments).
    package let lossConfig: LossConfig
    /// The loss function, on what the graph outputs: the logits when the head's softmax/sigmoid
    /// was stripped (or the loss is `from_logits`), else the model's outputs.
    package let loss: Loss
    /// The metric logged beside the loss.
    package let metric: TrainingMetric
    private let context = ForwardContext()
    private let executor: GraphExecutor
    /// Per node, its engine layer when it has one that trains or runs in a training mode.
    private let trainable: [(node: Int, layer: TrainableLayer)]

    /// Builds the graph. The Keras version (`kerasVersion`, else the model's own) decides
    /// BatchNormalization's moving-variance update
    /// (Keras 2's fused kernel uses n/(n−1), Keras 3 the biased variance); `seed` seeds Dropout.
    /// `cacheAllowed`: the caller may keep the frozen prefix's outputs (no augmentation).
    /// `inferenceOnly`: the network only evaluates (FineTuner's validation network), so what
    /// cannot train in it is not refused.
    package init(model: ModelSpec, kerasVersion: String? = nil, seed: UInt64, cacheAllowed: Bool = true,
                loss: LossConfig = .categorical, inferenceOnly: Bool = false) throws {
        var sharedCalls: [Int: [TrainableLayer]] = [:]
        self.model = model
        self.lossConfig = loss
        inputShape = model.inputShape
        var graph = try ModelGraph(model)
        guard let last = graph.nodes.last, last.output == graph.output else {
            throw XferError.badInput(model.name, "has no layers")
        }
        // A cross-entropy applies the head's softmax/sigmoid itself, from the logits (as Keras's
        // `fit` finds them under the activation); `from_logits` takes the outputs as logits.
        if loss.activation != .linear, !loss.fromLogits {
            guard let head = last.layer.withoutActivation(loss.activation) else {
                throw XferError.badInput(model.name, "does not end in a \(loss.activation.rawValue), so \(loss.kind.shortName) cannot train it",
                                         hint: "a linear head trains with --from-logits; or fine-tune with a new head (drop --keep-top)")
            }
            graph.replaceLayer(ofNode: graph.nodes.count - 1, with: head)
        }
        self.loss = loss.make(logits: loss.activation != .linear)
        self.graph = graph
        metric = TrainingMetric.for(loss, units: graph.outputShape.reduce(1, *))
        plan = ExecutionPlan(graph: graph, cacheAllowed: cacheAllowed)
        executor = try GraphExecutor(graph: graph, context: context)

        let bessel = !((kerasVersion ?? model.kerasVersion)?.hasPrefix("3") ?? false)
        var dropouts = 0, augmentLayers = 0
        var layers: [(node: Int, layer: TrainableLayer)] = []
        var paths = Set<String>()
        for (i, layer) in executor.layers {
            let node = graph.nodes[i]
            guard let t = layer as? TrainableLayer else {
                if plan.needsGradient[node.output] {
                    throw XferError.badInput(node.path, "\(node.layer.className) layers cannot be trained yet",
                                             hint: "freeze it and everything below it (--freeze-until a later layer)")
                }
                continue
            }
            if node.trainable && !paths.insert(node.path).inserted, let primary = layers.first(where: { graph.nodes[$0.node].path == node.path }) {
                // Another call of a shared layer: its own engine layer (its own saved state), the
                // same weights, its gradients summed into the first call's at each update.
                sharedCalls[primary.node, default: []].append(t)
            }
            t.trainable = node.trainable
            t.training = false
            if let d = layer as? DropoutLayer {
                d.random = SeededRandom(seed: seed, stream: .dropout(index: dropouts))
                dropouts += 1
            }
            if let a = layer as? RandomImageLayer {
                // Its training-mode transform has no backward: nothing before it may train.
                if plan.needsGradient[node.output] && plan.trainingMode[i] {
                    throw XferError.badInput(node.path, "\(node.layer.className) changes images at random in training and passes no gradient back",
                                             hint: "freeze every layer before it (--freeze-until a later layer)")
                }
                a.random = SeededRandom(seed: seed, stream: .augmentLayer(index: augmentLayers))
                augmentLayers += 1
            }
            if let crop = layer as? RandomCropLayer {
                if plan.trainingMode[i], !inferenceOnly, let why = crop.trainingRefusal {
                    throw XferError.badInput(node.path, why,
                                             hint: "save the model in Keras with an Input of the crop's size (and crop the images to it), or without the RandomCrop layer and train with --augment crop")
                }
                crop.random = SeededRandom(seed: seed, stream: .augmentLayer(index: augmentLayers))
                augmentLayers += 1
            }
            configureBatchNorm(layer, bessel: bessel, inputRank: layer.inputShape.count)
            layers.append((i, t))
        }
        trainable = layers
        self.sharedCalls = sharedCalls
    }

    /// The layers whose weights train, in the order the optimizer numbers their parameters (a
    /// shared layer once, by its first call).
    private var trainingLayers: [(node: Int, layer: TrainableLayer)] {
        var seen = Set<String>()
        return trainable.filter { graph.nodes[$0.node].trainable && seen.insert(graph.nodes[$0.node].path).inserted }
    }

    /// For the first call of a shared trainable layer (by node), the engine layers of its other calls.
    private let sharedCalls: [Int: [TrainableLayer]]

    /// Calls `body` with each parameter of the layer at `node` and its gradient summed over the
    /// layer's calls (the gradient of a shared weight is the sum over its uses, as in TensorFlow).
    private func withSummedParameters(_ node: Int, _ layer: TrainableLayer,
                                      _ body: (_ role: WeightRole, _ value: UnsafeMutableBufferPointer<Float>, _ gradient: UnsafeBufferPointer<Float>) -> Void) {
        guard let others = sharedCalls[node] else { return layer.withParameters(body) }
        layer.withParameters { role, value, gradient in
            var sum = Array(gradient)
            for other in others {
                other.withParameters { r, _, g in
                    guard r == role else { return }
                    for k in sum.indices { sum[k] += g[k] }
                }
            }
            sum.withUnsafeBufferPointer { body(role, value, $0) }
        }
    }

    /// Whether the weights of the layer at `path` (or of `path/role`) train.
    package func isTrainable(_ path: String) -> Bool {
        graph.nodes.contains { $0.trainable && (path == $0.path || path.hasPrefix($0.path + "/")) }
    }

    /// `path/role` of each trainable parameter, in the order the optimizer numbers them.
    package var parameterPaths: [String] { parameterSizes.map(\.path) }

    /// The number of values each sample's output has (the classes of the final softmax, the
    /// sigmoid units, the regression outputs).
    package var outputCount: Int { graph.outputShape.reduce(1, *) }

    /// `path/role` and number of values of each trainable parameter, in the order the optimizer
    /// numbers them (what a resumed optimizer state must match).
    package var parameterSizes: [(path: String, count: Int)] {
        var out: [(path: String, count: Int)] = []
        for (i, t) in trainingLayers {
            t.withParameters { role, value, _ in out.append(("\(graph.nodes[i].path)/\(role)", value.count)) }
        }
        return out
    }

    private func setModes(training: Bool) {
        for (i, t) in trainable { t.training = training && plan.trainingMode[i] }
    }

    // MARK: Feeding

    /// What a training step starts from: the model's input, or the frozen prefix's frontier
    /// values (`plan.frontier`, in that order) taken from the feature cache.
    package enum Feed {
        case input(Tensor)
        case frontier([Tensor])
    }

    private func values(_ feed: Feed) -> (values: [Int: Tensor], run: [Bool]?) {
        switch feed {
        case .input(let x):
            return ([0: x], nil)
        case .frontier(let tensors):
            precondition(tensors.count == plan.frontier.count, "one tensor per frontier value")
            let run = graph.nodes.map { plan.needsGradient[$0.output] }
            return (Dictionary(uniqueKeysWithValues: zip(plan.frontier, tensors)), run)
        }
    }

    // MARK: The training step

    /// What a step reports: the batch's mean loss (Keras's, from before the update, as
    /// `train_on_batch`), and the sum of the logged metric over the samples and their count
    /// (unweighted: Keras weights only `weighted_metrics`, not `metrics`, by class weights).
    package struct StepResult {
        package var loss: Double
        package var metricSum: Double
        package var weightSum: Double
        /// The metric over the batch (accuracy, or mae for regression).
        package var metric: Double { weightSum > 0 ? metricSum / weightSum : 0 }
    }

    /// Targets of integer class labels: one class id per row.
    static func classTargets(_ labels: [Int]) -> Tensor {
        Tensor(shape: [labels.count, 1], values: labels.map(Float.init))
    }

    /// One training step on a batch `x` (n, inputShape…) with integer `labels`: forward in
    /// training mode, loss, backward, optimizer update.
    @discardableResult
    package func trainStep(_ x: Tensor, labels: [Int], optimizer: Optimizer) -> StepResult {
        trainStep(.input(x), targets: Self.classTargets(labels), optimizer: optimizer)
    }

    /// One training step from `feed` (the input, or the cached frontier) on `targets` (n, width),
    /// each sample's loss and metric weighted by `weights` (class weights) when given.
    @discardableResult
    package func trainStep(_ feed: Feed, targets: Tensor, weights: [Float]? = nil, optimizer: Optimizer) -> StepResult {
        guard plan.trains else { return evaluateBatch(feed, targets: targets, weights: weights) }
        let result = forwardBackward(feed, targets: targets, weights: weights)
        // update
        var k = 0
        for (i, t) in trainingLayers {
            withSummedParameters(i, t) { _, value, gradient in
                optimizer.update(k, value, gradient)
                k += 1
            }
            // The other calls of a shared layer take the updated weights.
            for other in sharedCalls[i] ?? [] { other.restoreWeights(t.currentWeights()) }
        }
        optimizer.finishStep()
        return result
    }

    /// Forward in training mode, keeping what backward needs where a gradient flows; the loss
    /// from the graph's output; backward through every node whose output needs a gradient.
    /// Leaves the weight gradients in the layers.
    private func forwardBackward(_ feed: Feed, targets: Tensor, weights: [Float]?) -> StepResult {
        setModes(training: true)
        defer { setModes(training: false) }
        context.pool.beginPass()
        let (fed, run) = values(feed)
        let keep = graph.nodes.map { plan.needsGradient[$0.output] }
        let out = executor.forward(feed: fed, run: run, keep: keep, wanted: [graph.output])[0]
        let (value, gradient) = loss.batchLoss(out, targets: targets, weights: weights, gradient: true)
        let m = metric.batchSums(outputs: loss.outputs(out), targets: targets, weights: nil)
        for (_, t) in trainable { t.zeroGradients() }
        executor.backward(gradient!, plan: plan)
        return StepResult(loss: value, metricSum: m.sum, weightSum: m.weight)
    }

    /// Loss and metric of a batch in inference mode (validation, evaluation).
    package func evaluateBatch(_ x: Tensor, labels: [Int]) -> StepResult {
        evaluateBatch(.input(x), targets: Self.classTargets(labels))
    }

    package func evaluateBatch(_ feed: Feed, targets: Tensor, weights: [Float]? = nil) -> StepResult {
        let out = forwardLogits(feed)
        let value = loss.batchLoss(out, targets: targets, weights: weights, gradient: false).loss
        let m = metric.batchSums(outputs: loss.outputs(out), targets: targets, weights: nil)
        return StepResult(loss: value, metricSum: m.sum, weightSum: m.weight)
    }

    /// The logits for `feed`, every layer in inference mode.
    package func forwardLogits(_ feed: Feed) -> Tensor {
        setModes(training: false)
        context.pool.beginPass()
        let (fed, run) = values(feed)
        return executor.forward(feed: fed, run: run, wanted: [graph.output])[0]
    }

    /// The frozen prefix's frontier values for `x`, for the feature cache, each in its own
    /// storage. The prefix is frozen and deterministic, so inference mode gives what training
    /// mode would.
    package func frontierValues(_ x: Tensor) -> [Tensor] {
        setModes(training: false)
        context.pool.beginPass()
        let run = graph.nodes.map { !plan.needsGradient[$0.output] }
        return executor.forward(feed: [0: x], run: run, wanted: plan.frontier).map { Tensor(shape: $0.shape, values: Array($0.values)) }
    }

    /// The gradients of the mean loss on a batch w.r.t. every trainable weight, by `path/role`,
    /// without updating anything (for parity tests against Keras's GradientTape).
    package func gradients(_ x: Tensor, labels: [Int]) -> (loss: Double, gradients: [String: [Float]]) {
        gradients(x, targets: Self.classTargets(labels))
    }

    package func gradients(_ x: Tensor, targets: Tensor, weights: [Float]? = nil) -> (loss: Double, gradients: [String: [Float]]) {
        guard plan.trains else { return (evaluateBatch(.input(x), targets: targets, weights: weights).loss, [:]) }
        let loss = forwardBackward(.input(x), targets: targets, weights: weights).loss
        var out: [String: [Float]] = [:]
        for (i, t) in trainingLayers {
            withSummedParameters(i, t) { role, _, g in out["\(graph.nodes[i].path)/\(role.rawValue)"] = Array(g) }
        }
        return (loss, out)
    }

    /// Every weight now, by `path/role` (moving statistics included).
    package func currentWeights() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for node in graph.nodes { for w in node.layer.weights { out["\(node.path)/\(w.role.rawValue)"] = w.values } }
        for (i, t) in trainable { for (role, v) in t.currentWeights() { out["\(graph.nodes[i].path)/\(role.rawValue)"] = v } }
        return out
    }

    /// The weights that training can change (trainable layers, and BatchNormalization layers that
    /// run in training mode), by `path/role`: what a snapshot of the training state needs.
    package func changingWeights() -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for (i, t) in trainable {
            let node = graph.nodes[i]
            let bnTraining = node.layer.op is BatchNormConfig && plan.trainingMode[i]
            guard node.trainable || bnTraining else { continue }
            for (role, v) in t.currentWeights() { out["\(node.path)/\(role.rawValue)"] = v }
        }
        return out
    }

    /// Puts back weights taken with `currentWeights()` or `changingWeights()` (early stopping's
    /// best epoch, the last good epoch after a diverged batch), through each layer's `restoreWeights`.
    package func restore(_ weights: [String: [Float]]) {
        for (i, t) in trainable {
            let path = graph.nodes[i].path
            var own: [WeightRole: [Float]] = [:]
            for (key, v) in weights where key.hasPrefix(path + "/") {
                if let role = WeightRole(rawValue: String(key.dropFirst(path.count + 1))) { own[role] = v }
            }
            if !own.isEmpty { t.restoreWeights(own) }
        }
    }

    /// The planned model with the weights as they are now (the final activation restored).
    package func exportModel() -> ModelSpec {
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
                    if let v = now["\(prefix)\(l.name)/\(l.weights[j].role.rawValue)"] { m.layers[i].weights[j].values = v }
                }
            }
            return m
        }
        return fill(model, prefix: "")
    }
}

/// Sets BatchNormalization's moving-variance rule: tf-keras's fused kernel (4-D input) uses
/// the unbiased n/(n−1) batch variance, its non-fused path (2-D input) and Keras 3 the biased one.
func configureBatchNorm(_ layer: Layer, bessel: Bool, inputRank: Int) {
    guard let bn = layer as? BatchNormalizationLayer else { return }
    bn.besselCorrection = bessel && inputRank == 3
}
