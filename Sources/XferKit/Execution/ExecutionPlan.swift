// What each node of a model graph runs during training: the one answer that `--dry-run`, the
// trainer and the feature cache all read.
//
// A value "needs a gradient" when a trainable weight lies on a path into it: the output of a
// node with trainable weights, or of any node reading such a value. Nodes whose output needs
// no gradient form the frozen prefix: they run forward only, and when nothing random runs
// among them in training (Dropout), once per sample for the whole run (the feature cache).
// The prefix hands the rest of the graph its frontier: the values without a gradient that
// nodes with one read — several tensors when a frozen part feeds a residual Add, say.
//
// Modes follow Keras: a layer inside a nested model called with `training=False` always runs
// in inference mode; a frozen BatchNormalization layer runs in inference mode; Dropout is
// active in training.

/// What a layer runs during training.
package enum LayerWork: String, Sendable {
    /// Frozen and fed by nothing that trains: forward only.
    case forwardOnly = "forward only"
    /// Like `forwardOnly`, and its output is computed once per sample and reused every epoch.
    case cached = "forward, cached"
    /// Trainable, fed by nothing that trains: weight gradients, no input gradient.
    case weightGradients = "weight gradients"
    /// Trainable and fed by something that trains: weight and input gradients.
    case weightAndInputGradients = "weight + input gradients"
    /// Frozen or weightless, fed by something that trains: input gradients only.
    case inputGradients = "input gradients"
}

/// Per node of a `ModelGraph`, what runs in a training step.
package struct ExecutionPlan: Sendable {
    /// Per node.
    package let work: [LayerWork]
    /// Per node: runs in training mode during a training step.
    package let trainingMode: [Bool]
    /// Per value: a trainable weight lies on a path into it.
    package let needsGradient: [Bool]
    /// The values the frozen prefix hands to the trainable part, in value order.
    package let frontier: [Int]
    /// Whether the prefix runs once per sample (its outputs kept as features).
    package let cached: Bool

    /// Whether anything trains.
    package var trains: Bool { needsGradient.contains(true) }

    /// Per node: part of the frozen prefix (its output needs no gradient).
    package func inPrefix(_ node: Int, of graph: ModelGraph) -> Bool { !needsGradient[graph.nodes[node].output] }

    /// Plans `graph`. `cacheAllowed`: the caller can keep features (no augmentation, cache not off).
    package init(graph: ModelGraph, cacheAllowed: Bool) {
        var needs = [Bool](repeating: false, count: graph.valueShapes.count)
        var mode: [Bool] = []
        for node in graph.nodes {
            needs[node.output] = node.trainable || node.inputs.contains { needs[$0] }
            var training = !node.inferenceOnly
            if node.layer.op is BatchNormConfig, !node.trainable { training = false }
            mode.append(training)
        }
        var frontier = Set<Int>()
        for node in graph.nodes where needs[node.output] {
            for v in node.inputs where !needs[v] { frontier.insert(v) }
        }
        let randomInPrefix = graph.nodes.indices.contains { i in
            graph.nodes[i].layer.op?.isRandomInTraining == true && mode[i] && !needs[graph.nodes[i].output]
        }
        let trains = needs[graph.output]
        let cached = cacheAllowed && trains && !frontier.contains(0) && !randomInPrefix
        work = graph.nodes.map { node in
            guard needs[node.output] else { return cached ? .cached : .forwardOnly }
            let fedByTraining = node.inputs.contains { needs[$0] }
            if node.trainable { return fedByTraining ? .weightAndInputGradients : .weightGradients }
            return .inputGradients
        }
        trainingMode = mode
        needsGradient = needs
        self.frontier = frontier.sorted()
        self.cached = cached
    }
}
