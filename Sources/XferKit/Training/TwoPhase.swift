// Phase 2 of Keras's fine-tuning recipe (keras.io/guides/transfer_learning, "fine-tuning";
// `xfer finetune --then-unfreeze NAME`): after the head has trained on the frozen base,
// unfreeze the base from a layer on and train again with a fresh optimizer at a low
// learning rate. Planned from the model phase 1 trained:
//
// - every layer from the first one named NAME (or starting with `NAME_`, nested ones included)
//   to the output trains; every layer before it is frozen;
// - the BatchNormalization layers phase 1 kept frozen stay in inference mode (moving statistics
//   fixed, γ and β training where unfrozen), as the guide's `base(inputs, training=False)` keeps
//   them: each is marked as called with `training=False`, which is also how the written model
//   records it (tf-keras honours it; Keras 3's `fit` overrides it, keras-team/keras#20285).
//
// The optimizer is new (Keras's `compile` after unfreezing: no slots, step 0); the caller
// builds it. Numbers equal the two phases done by hand in tf-keras and Keras 3
// (checkpoints/make_two_phase_fixtures.py).

import Foundation

/// The plan of phase 2 and the BatchNormalization layers it keeps in inference mode.
package struct UnfreezePlan: Sendable {
    package var plan: FreezePlan
    /// The layer the unfreezing starts at (the first named NAME or `NAME_…`).
    package var firstLayer: String
    /// BatchNormalization layers that were frozen in phase 1 and now train γ and β in
    /// inference mode.
    package var inferenceBatchNorms: [String]
}

/// Plans phase 2 on `model` (phase 1's trained model, its flags as phase 1 set them): everything
/// from the first layer named `name` (or `name_…`) on trains, the rest is frozen, and the
/// BatchNormalization layers frozen in phase 1 stay in inference mode.
/// - Throws: ``XferError`` `.usage` naming `--then-unfreeze` when no layer has that name.
package func planUnfreezing(_ model: ModelSpec, from name: String, cacheAllowed: Bool = true) throws -> UnfreezePlan {
    let names = model.allLayerNames
    guard let first = names.first(where: { $0 == name || $0.hasPrefix(name + "_") }) else {
        throw XferError.usage("--then-unfreeze", "no layer named '\(name)' or starting with '\(name)_'",
                              hint: "layers: " + names.joined(separator: ", "))
    }
    let frozenBN = Set(model.flattenedLayers().filter { !$0.trainable && $0.layer.op is BatchNormConfig }.map(\.layer.name))
    var options = FreezeOptions(freezeUntil: first, keepTop: true, classes: 0)
    options.head = []
    var unfrozen = try planFineTuning(model, options: options, cacheAllowed: cacheAllowed).model
    var inference: [String] = []
    func mark(_ m: inout ModelSpec) {
        for i in m.layers.indices {
            if case .model(var inner) = m.layers[i].kind {
                mark(&inner)
                m.layers[i].kind = .model(inner)
            } else if frozenBN.contains(m.layers[i].name) {
                m.layers[i].callTrainingFalse = true
                if m.layers[i].trainable { inference.append(m.layers[i].name) }
            }
        }
    }
    mark(&unfrozen)
    var keep = FreezeOptions(classes: 0)
    keep.keepFlags = true
    let plan = try planFineTuning(unfrozen, options: keep, cacheAllowed: cacheAllowed)
    return UnfreezePlan(plan: plan, firstLayer: first, inferenceBatchNorms: inference)
}
