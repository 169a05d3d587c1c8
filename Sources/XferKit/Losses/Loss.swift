// What a fine-tuning run minimises, and what its head is: the seam every loss plugs into.
//
// A loss owns the model's last activation: the trainer strips it from the graph and the loss
// applies it to the logits itself, as Keras's `fit` does with `from_logits`-style fused kernels
// (categorical cross-entropy: `softmax_cross_entropy_with_logits`, docs/KERAS-FORMATS.md B.6).
// The planner asks it for the head's activation and units, the trainer for the loss and its
// gradient from the logits, `predict`/`evaluate` for probabilities and metrics.

/// A training loss and the head it goes with.
public protocol Loss: Sendable {
    /// The activation of the model's output layer, which the loss applies from the logits.
    var headActivation: Activation { get }
    /// Units of the output layer for data with `classes` classes.
    func outputUnits(classes: Int) -> Int
    /// The batch's mean loss, its gradient with respect to the logits, and how many samples the
    /// model gets right (the accuracy metric's count).
    func lossAndGradient(logits: Tensor, labels: [Int]) -> (loss: Double, correct: Int, dLogits: Tensor)
    /// Loss and correct count without the gradient (validation, evaluation).
    func loss(logits: Tensor, labels: [Int]) -> (loss: Double, correct: Int)
    /// What the model outputs, from the logits (probabilities for a classifier).
    func probabilities(logits: Tensor) -> Tensor
}
