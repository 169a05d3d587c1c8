// ReLU layer with Keras's `max_value`, `negative_slope`, `threshold`, computed as
// Keras 3's `ReLU.static_call` (`activations/activations.py`) does:
//
//   slope ≠ 0, no max, threshold 0:  leaky relu, x > 0 ? x : slope·x
//   otherwise:  p = threshold ≠ 0 ? (x > threshold ? x : 0) : max(x, 0)
//               p = clip(p, 0, max_value)            if max_value is set
//               p − slope·max(threshold − x, 0)      if slope ≠ 0
//
// Runs in place on its input.

/// A Keras `ReLU` layer.
public final class ReLULayer: Layer {
    public let name: String
    public let inputShape: [Int]
    public var outputShape: [Int] { inputShape }
    let config: ReLUConfig

    init(name: String, config: ReLUConfig, inputShape: [Int]) {
        self.name = name; self.config = config; self.inputShape = inputShape
    }

    public func forward(_ x: consuming Tensor, _ context: ForwardContext) -> Tensor {
        var y = x
        let n = y.count, parts = min(n, ThreadPool.shared.threadCount * 4)
        let cfg = config
        y.values.withUnsafeMutableBufferPointer { py in
            let p = py.baseAddress!
            parallelFor(parts) { part, _ in
                for i in chunk(part, of: parts, total: n) { p[i] = relu(p[i], cfg) }
            }
        }
        return y
    }
}

/// Keras's `relu(x, negative_slope, max_value, threshold)` of one value.
@inline(__always)
func relu(_ x: Float, _ c: ReLUConfig) -> Float {
    if c.negativeSlope != 0 && c.maxValue == nil && c.threshold == 0 {
        return x > 0 ? x : c.negativeSlope * x
    }
    var p = c.threshold != 0 ? (x > c.threshold ? x : 0) : max(x, 0)
    if let top = c.maxValue { p = min(max(p, 0), top) }
    if c.negativeSlope != 0 { p -= c.negativeSlope * max(c.threshold - x, 0) }
    return p
}
