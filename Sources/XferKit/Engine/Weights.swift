// Taking a layer's weights out of its LayerSpec, checking each against the shape the
// layer needs. Errors name the layer, the weight's role and both shapes.

extension LayerSpec {
    /// The values of weight `role`, which must have `shape`.
    func values(_ role: WeightRole, shape: [Int]) throws -> [Float] {
        guard let w = weight(role) else {
            throw XferError.badInput("layer '\(name)'", "missing weight '\(role)' of shape \(shape)",
                                     hint: "the checkpoint does not match the model configuration")
        }
        guard w.shape == shape else {
            throw XferError.badInput("layer '\(name)'",
                                     "weight '\(role)' has shape \(w.shape), expected \(shape)",
                                     hint: "the checkpoint does not match the model configuration")
        }
        guard w.values.count == w.count else {
            throw XferError.badInput("layer '\(name)'",
                                     "weight '\(role)' holds \(w.values.count) values for shape \(w.shape)",
                                     hint: "load the checkpoint with its weight values")
        }
        return w.values
    }

    /// Fails when the layer carries a weight whose role is not in `roles`.
    func onlyWeights(_ roles: [WeightRole]) throws {
        if let extra = weights.first(where: { !roles.contains($0.role) }) {
            throw XferError.badInput("layer '\(name)'",
                                     "unexpected weight '\(extra.role)' of shape \(extra.shape); this layer takes \(roles.isEmpty ? "no weights" : roles.map(\.rawValue).joined(separator: ", "))",
                                     hint: "the checkpoint does not match the model configuration")
        }
    }
}

/// Fails unless a per-sample shape has `rank` axes.
func requireRank(_ shape: [Int], _ rank: Int, layer: String, kind: String) throws {
    guard shape.count == rank else {
        let what = rank == 3 ? "(H, W, C)" : "rank \(rank)"
        throw XferError.badInput("layer '\(layer)'", "\(kind) needs input \(what) per sample, got shape \(shape)")
    }
}
