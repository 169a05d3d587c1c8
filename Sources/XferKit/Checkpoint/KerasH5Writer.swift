// Writing a model as a Keras 2 full-model .h5 (`model.save("x.h5")` layout,
// docs/KERAS-FORMATS.md A.2) that `tf_keras.models.load_model` opens:
//
//   /                 attrs model_config (JSON), keras_version, backend, and (a trained model)
//                     training_config: the loss and optimizer it was trained with, as tf-keras
//                     `model.save` writes them, so `load_model` compiles it the same way
//   /model_weights    attrs layer_names, keras_version, backend
//     /<layer>        attr weight_names ["<layer>/kernel:0", ...]; datasets at /<layer>/<layer>/kernel:0
//     /<nested>       weight_names of all inner layers, trainable first (A.1.5)
//     /top_level_model_weights  empty weight_names
//
// The file is written through `writeAtomically` (Support/AtomicWrite.swift): to a temporary
// name beside the target, renamed into place only when complete, so a failure never leaves a
// partial file and an existing file is replaced in one step.

import Foundation

package enum KerasH5Writer {
    /// The Keras version recorded in files xfer writes: the tf-keras whose reader they are tested with.
    package static let kerasVersion = "2.21.0"

    /// Writes `model` to `path`. `protecting` lists input files that must never be overwritten.
    /// `classNames` is stored as the root attribute `class_names` (Keras ignores it; `xfer predict`
    /// prints names with it).
    /// `preprocess` is stored as the root attribute `preprocess` (informative; Keras ignores it).
    /// `trainingState` (optional) lets `xfer finetune --resume` continue the run; Keras ignores it.
    /// `compiled` (optional): the loss and optimizer, written as `training_config`.
    package static func write(_ model: ModelSpec, to path: String, protecting inputs: [String] = [],
                             classNames: [String]? = nil, preprocess: PreprocessMode? = nil,
                             trainingState: TrainingState? = nil,
                             compiled: (loss: LossConfig, optimizer: OptimizerConfig)? = nil) throws {
        var metadata = ModelMetadata(classNames: classNames, preprocess: preprocess)
        metadata.loss = compiled?.loss
        metadata.optimizer = compiled?.optimizer
        try write(model, to: path, protecting: inputs, metadata: metadata, trainingState: trainingState)
    }

    /// The same with everything `metadata` holds (root attributes Keras ignores, and
    /// `training_config` when it holds both the loss and the optimizer).
    package static func write(_ model: ModelSpec, to path: String, protecting inputs: [String] = [],
                              metadata: ModelMetadata, trainingState: TrainingState? = nil) throws {
        try writeAtomically(path, protecting: inputs, create: HDF5File.create) { file in
            try writeFile(model, to: file, metadata: metadata, trainingState: trainingState,
                          compiled: metadata.loss.flatMap { l in metadata.optimizer.map { (l, $0) } })
        }
    }

    /// tf-keras's `training_config`: the loss, no metrics, and the optimizer by its registered
    /// name and `get_config()` keys (docs/KERAS-FORMATS.md A.2).
    static func trainingConfig(loss: LossConfig, optimizer o: OptimizerConfig) -> [String: Any] {
        var config: [String: Any] = ["learning_rate": shortest(o.learningRate), "weight_decay": NSNull(), "clipnorm": NSNull(),
                                     "global_clipnorm": NSNull(), "clipvalue": NSNull(), "use_ema": false, "ema_momentum": 0.99,
                                     "ema_overwrite_frequency": NSNull(), "jit_compile": false, "is_legacy_optimizer": false]
        let name: String
        switch o.kind {
        case .sgd: name = "SGD"; config["momentum"] = shortest(o.momentum); config["nesterov"] = o.nesterov
        case .adam: name = "Adam"; config["beta_1"] = shortest(o.beta1); config["beta_2"] = shortest(o.beta2)
            config["epsilon"] = shortest(o.epsilon); config["amsgrad"] = false
        case .rmsprop: name = "RMSprop"; config["rho"] = shortest(o.rho); config["momentum"] = shortest(o.momentum)
            config["epsilon"] = shortest(o.epsilon); config["centered"] = false
        }
        config["name"] = name
        return ["loss": loss.kerasConfig, "metrics": NSNull(), "weighted_metrics": NSNull(), "loss_weights": NSNull(),
                "optimizer_config": ["class_name": "Custom>\(name)", "config": config] as [String: Any]]
    }

    private static func writeFile(_ model: ModelSpec, to file: HDF5File, metadata: ModelMetadata,
                                  trainingState: TrainingState?, compiled: (loss: LossConfig, optimizer: OptimizerConfig)?) throws {
        let config = try JSONSerialization.data(withJSONObject: KerasConfigWriter.model(model), options: [.sortedKeys])
        try file.setString("/", "model_config", String(decoding: config, as: UTF8.self), utf8: false)
        if let compiled {
            let training = try JSONSerialization.data(withJSONObject: trainingConfig(loss: compiled.loss, optimizer: compiled.optimizer),
                                                      options: [.sortedKeys])
            try file.setString("/", "training_config", String(decoding: training, as: UTF8.self), utf8: false)
        }
        try file.setString("/", "keras_version", kerasVersion, utf8: true)
        try file.setString("/", "backend", "tensorflow", utf8: true)
        try metadata.writeAttributes(to: file)

        let root = "/model_weights"
        try file.createGroup(root)
        try file.setStrings(root, "layer_names", model.layers.map(\.name))
        try file.setString(root, "backend", "tensorflow", utf8: false)
        try file.setString(root, "keras_version", kerasVersion, utf8: false)
        for layer in model.layers {
            let group = "\(root)/\(layer.name)"
            try file.createGroup(group)
            var names: [String] = []
            if case .model(let inner) = layer.kind {
                // Trainable weights of the whole nested model first, then the rest (A.1.5), each
                // weight by its own layer's flag, as tf-keras sees them when it loads the file (it
                // drops a nested model's own flag; the config below keeps Keras 3 in step).
                let all = nestedWeights(inner, trainable: true)
                for (innerLayer, w, _) in all.filter({ $0.2 }) + all.filter({ !$0.2 }) {
                    let name = "\(innerLayer)/\(w.role.rawValue):0"
                    try file.write("\(group)/\(name)", shape: w.shape, floats: w.values)
                    names.append(name)
                }
            } else {
                for w in layer.weights {
                    let name = "\(layer.name)/\(w.role.rawValue):0"
                    try file.write("\(group)/\(name)", shape: w.shape, floats: w.values)
                    names.append(name)
                }
            }
            try file.setStrings(group, "weight_names", names)
        }
        try file.createGroup("\(root)/top_level_model_weights")
        try file.setStrings("\(root)/top_level_model_weights", "weight_names", [])
        if let trainingState { try trainingState.write(to: file) }
        try file.flush()
    }

    /// (inner layer name, weight, counts as trainable) for every weight inside a nested model.
    private static func nestedWeights(_ model: ModelSpec, trainable: Bool) -> [(String, WeightSpec, Bool)] {
        model.layers.flatMap { l -> [(String, WeightSpec, Bool)] in
            if case .model(let m) = l.kind { return nestedWeights(m, trainable: trainable) }
            return l.weights.map { (l.name, $0, trainable && l.trainable && $0.isTrainableKind) }
        }
    }
}

/// The Keras 2 flavour of model JSON (A.2.1, A.2.3). Each layer's config holds the keys its
/// constructor takes (written by its op, `LayerOp.writeKeras`); omitted ones take Keras's defaults.
enum KerasConfigWriter {
    /// `[null, H, W, C]`, a size the model leaves open written as `null` too.
    static func batchInputShape(_ m: ModelSpec) -> [Any] {
        [NSNull()] + m.inputShape.map { $0 < 0 ? NSNull() as Any : $0 as Any }
    }

    static func model(_ m: ModelSpec) -> [String: Any] {
        var layers: [[String: Any]] = []
        let input: [String: Any] = [
            "class_name": "InputLayer",
            "config": ["batch_input_shape": batchInputShape(m), "dtype": "float32",
                       "sparse": false, "ragged": false,
                       "name": m.layers.first.map { l -> String in if case .input = l.kind { return l.name } else { return "\(l.name)_input" } } ?? "input"] as [String: Any],
        ]
        if m.className == "Sequential" {
            layers.append(input)
            for l in m.layers { layers.append(["class_name": l.className, "config": layerConfig(l)]) }
            return ["class_name": "Sequential", "config": ["name": m.name, "trainable": m.trainable, "layers": layers] as [String: Any]]
        }
        if let output = m.output { return graph(m, output: output, input: input) }
        // Functional chain: add an InputLayer if the spec has none, then link each layer to the previous.
        var previous: String?
        var previousIsModel = false
        if m.layers.first.map({ if case .input = $0.kind { return false } else { return true } }) ?? true {
            var entry = input
            let name = (input["config"] as! [String: Any])["name"] as! String
            entry["name"] = name
            entry["inbound_nodes"] = [Any]()
            layers.append(entry)
            previous = name
        }
        for l in m.layers {
            var entry: [String: Any] = ["class_name": l.className, "name": l.name, "config": layerConfig(l)]
            if case .input = l.kind {
                entry["class_name"] = "InputLayer"
                entry["config"] = ["batch_input_shape": batchInputShape(m), "dtype": "float32",
                                   "sparse": false, "ragged": false, "name": l.name] as [String: Any]
                entry["inbound_nodes"] = [Any]()
            } else if let p = previous {
                let kwargs: [String: Any] = l.callTrainingFalse ? ["training": false] : [:]
                // A nested model's node 0 is its own construction node, so calls to it are node 1 (A.2.1).
                entry["inbound_nodes"] = [[[p, previousIsModel ? 1 : 0, 0, kwargs]]]
            }
            layers.append(entry)
            previous = l.name
            if case .model = l.kind { previousIsModel = true } else { previousIsModel = false }
        }
        let inputName = (layers.first?["name"] as? String) ?? "input"
        return ["class_name": "Functional", "config": [
            "name": m.name, "trainable": m.trainable, "layers": layers,
            "input_layers": [[inputName, 0, 0]], "output_layers": [[previous ?? inputName, previousIsModel ? 1 : 0, 0]],
        ] as [String: Any]]
    }

    /// A Functional graph, each layer's calls written as tf-keras inbound nodes.
    static func graph(_ m: ModelSpec, output: TensorRef, input: [String: Any]) -> [String: Any] {
        let byName = Dictionary(m.layers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // tf-keras numbers the calls of a layer from 0, but a nested model's node 0 is its own
        // construction node, so its calls start at 1 (docs/KERAS-FORMATS.md A.2.1).
        func node(_ ref: TensorRef) -> Int {
            guard let producer = byName[ref.layer] else { return ref.node }
            let call = producer.calls.count > 1 ? ref.node : 0
            if case .model = producer.kind { return call + 1 }
            return call
        }
        var layers: [[String: Any]] = []
        for l in m.layers {
            var entry: [String: Any] = ["class_name": l.className, "name": l.name, "config": layerConfig(l)]
            if case .input = l.kind {
                entry["class_name"] = "InputLayer"
                var config = input["config"] as! [String: Any]
                config["name"] = l.name
                entry["config"] = config
                entry["inbound_nodes"] = [Any]()
            } else if let t = l.op as? TensorOpConfig {
                // tf-keras's TFOpLambda: the call is the tensor itself with the constant in its kwargs.
                entry["class_name"] = t.kerasClassName
                // (tf.stack: a list of tensors, each with the kwargs, as tf-keras writes it.)
                let calls = l.calls.map { call in call.map { [$0.layer, node($0), 0, t.tfKwargs] as [Any] } }
                entry["inbound_nodes"] = t.takesSeveralInputs ? calls : calls.map { $0[0] }
            } else {
                let kwargs: [String: Any] = l.callTrainingFalse ? ["training": false] : [:]
                entry["inbound_nodes"] = l.calls.map { call in call.map { [$0.layer, node($0), 0, kwargs] as [Any] } }
            }
            layers.append(entry)
        }
        let inputName = m.layers.first { if case .input = $0.kind { return true } else { return false } }?.name ?? "input"
        return ["class_name": "Functional", "config": [
            "name": m.name, "trainable": m.trainable, "layers": layers,
            "input_layers": [[inputName, 0, 0]], "output_layers": [[output.layer, node(output), 0]],
        ] as [String: Any]]
    }

    static func layerConfig(_ l: LayerSpec) -> [String: Any] {
        var c: [String: Any] = ["name": l.name, "trainable": l.trainable, "dtype": "float32"]
        switch l.kind {
        case .input:
            break
        case .op(let op):
            op.writeKeras(&c, className: l.className)
        case .model(let m):
            var config = model(m)["config"] as! [String: Any]
            // Keras 3 keeps a nested model's own flag when it loads, and a frozen nested model
            // lists its weights in creation order: mark it trainable when anything inside trains,
            // so that Keras 3 expects the order written above, as tf-keras does.
            if m.weightCounts().0 > 0 { config["trainable"] = true }
            return config
        }
        return c
    }
}
