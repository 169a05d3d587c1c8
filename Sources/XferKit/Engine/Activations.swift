// Activation functions as Keras 3 on TensorFlow computes them (K3
// `activations/activations.py`, `backend/tensorflow/nn.py`), applied in place to a
// block of `rows` rows of `cols` values, the last axis being `cols`:
//
//   relu max(x, 0)          relu6 min(max(x, 0), 6)     sigmoid 1/(1+e^−x)
//   tanh                    softmax over the last axis, max-subtracted
//   elu  x>0 ? x : e^x−1    selu λ·(x>0 ? x : α(e^x−1)), λ≈1.0507, α≈1.6733
//   softplus log(1+e^x) = max(x,0) + log1p(e^−|x|)      softsign x/(1+|x|)
//   silu x·sigmoid(x)       gelu x/2·(1+erf(x/√2))  (Keras 3 default approximate=False)
//   hard_sigmoid relu6(x+3)/6  hard_silu (hard_swish) x·hard_sigmoid(x)   (Keras 3's; MobileNetV3)
//
// `biasActivate` adds a per-column bias first: the epilogue of Conv2D and Dense.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `p[r·cols + j] = f(p[r·cols + j] + bias[j])` for r < rows, j < cols.
func biasActivate(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
                  bias: UnsafePointer<Float>?, _ activation: Activation) {
    // The two cases every conv net runs, fused into one pass.
    if let bias, activation == .relu || activation == .linear {
        let relu = activation == .relu
        for r in 0..<rows {
            let row = p + r * cols
            if relu {
                for j in 0..<cols { let v = row[j] + bias[j]; row[j] = v > 0 ? v : 0 }
            } else {
                for j in 0..<cols { row[j] += bias[j] }
            }
        }
        return
    }
    if let bias {
        for r in 0..<rows {
            let row = p + r * cols
            for j in 0..<cols { row[j] += bias[j] }
        }
    }
    activate(p, rows: rows, cols: cols, activation)
}

/// Applies `activation` in place to `rows` rows of `cols` values.
func activate(_ p: UnsafeMutablePointer<Float>, rows: Int, cols: Int, _ activation: Activation) {
    let n = rows * cols
    switch activation {
    case .linear:
        return
    case .softmax:
        for r in 0..<rows { softmaxRow(p + r * cols, cols) }
    case .relu:
        for i in 0..<n { let v = p[i]; p[i] = v > 0 ? v : 0 }
    case .relu6:
        for i in 0..<n { let v = p[i]; p[i] = v > 6 ? 6 : (v > 0 ? v : 0) }
    default:
        for i in 0..<n { p[i] = activationScalar(activation, p[i]) }
    }
}

/// One element of an element-wise activation (every case but softmax, which needs its row).
@inline(__always)
func activationScalar(_ activation: Activation, _ x: Float) -> Float {
    switch activation {
    case .linear: return x
    case .relu: return x > 0 ? x : 0
    case .relu6: return x > 6 ? 6 : (x > 0 ? x : 0)
    case .sigmoid: return 1 / (1 + expf(-x))
    case .tanh: return tanhf(x)
    case .elu: return x > 0 ? x : expm1f(x)
    case .selu:
        let alpha: Float = 1.6732632423543772848170429916717
        let scale: Float = 1.0507009873554804934193349852946
        return scale * (x > 0 ? x : alpha * expm1f(x))
    case .softplus: return max(x, 0) + log1pf(expf(-abs(x)))
    case .softsign: return x / (1 + abs(x))
    case .silu: return x / (1 + expf(-x))
    case .gelu: return 0.5 * x * (1 + erff(x * 0.70710678118654752440))
    case .hardSigmoid: return hardSigmoid(x)
    case .hardSilu: return x * hardSigmoid(x)
    case .softmax: preconditionFailure("softmax is not element-wise")
    }
}

/// Keras 3's hard_sigmoid, relu6(x + 3) / 6 (MobileNetV3's; tf_keras's own `hard_sigmoid`
/// activation is a different function, 0.2·x + 0.5 clipped, which xfer refuses in Keras 2 files).
@inline(__always)
func hardSigmoid(_ x: Float) -> Float {
    let t = x + 3
    return (t > 6 ? 6 : (t > 0 ? t : 0)) / 6
}

/// Numerically stable softmax of `count` values in place.
func softmaxRow(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
    guard count > 0 else { return }
    var m = p[0]
    for j in 1..<count { m = max(m, p[j]) }
    var sum: Float = 0
    for j in 0..<count { let e = expf(p[j] - m); p[j] = e; sum += e }
    let inv = 1 / sum
    for j in 0..<count { p[j] *= inv }
}

/// Applies an activation to a whole tensor, splitting rows over the thread pool.
func activate(_ x: inout Tensor, _ activation: Activation) {
    guard activation != .linear, x.count > 0 else { return }
    let cols = x.shape.last ?? 1
    let rows = x.count / max(cols, 1)
    let parts = min(rows, ThreadPool.shared.threadCount * 4)
    x.values.withUnsafeMutableBufferPointer { buf in
        let base = buf.baseAddress!
        parallelFor(parts) { i, _ in
            let r = chunk(i, of: parts, total: rows)
            activate(base + r.lowerBound * cols, rows: r.count, cols: cols, activation)
        }
    }
}

/// Backward of an activation, in place: `dy[i] ← dy[i] · f′` for `rows` rows of `cols` values.
/// f′ is taken from the activation's output `y` (and, for silu and gelu only, from its input
/// `x`, which the layer must then keep). Softmax: `dy ← y ⊙ (dy − Σ dy ⊙ y)` per row.
/// ReLU's gradient passes only where the output is > 0 (TF `ReluGrad`); relu6 where 0 < y < 6.
func activationBackward(_ dy: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>,
                        input x: UnsafePointer<Float>?, rows: Int, cols: Int, _ activation: Activation) {
    let n = rows * cols
    switch activation {
    case .linear:
        return
    case .relu:
        for i in 0..<n where !(y[i] > 0) { dy[i] = 0 }
    case .relu6:
        for i in 0..<n where !(y[i] > 0 && y[i] < 6) { dy[i] = 0 }
    case .sigmoid:
        for i in 0..<n { dy[i] *= y[i] * (1 - y[i]) }
    case .tanh:
        for i in 0..<n { dy[i] *= 1 - y[i] * y[i] }
    case .elu:
        for i in 0..<n where !(y[i] > 0) { dy[i] *= y[i] + 1 }
    case .selu:
        let alpha: Float = 1.6732632423543772848170429916717
        let scale: Float = 1.0507009873554804934193349852946
        // TensorFlow's SeluGrad: y < 0 ? y + scale·alpha : scale (at y = 0, scale).
        for i in 0..<n { dy[i] *= y[i] < 0 ? y[i] + scale * alpha : scale }
    case .softplus:
        for i in 0..<n { dy[i] *= -expm1f(-y[i]) }
    case .softsign:
        for i in 0..<n { let a = 1 - abs(y[i]); dy[i] *= a * a }
    case .silu:
        guard let x else { preconditionFailure("silu backward needs the input") }
        for i in 0..<n {
            let s = 1 / (1 + expf(-x[i]))
            dy[i] *= s * (1 + x[i] * (1 - s))
        }
    case .gelu:
        guard let x else { preconditionFailure("gelu backward needs the input") }
        for i in 0..<n {
            let cdf = 0.5 * (1 + erff(x[i] * 0.70710678118654752440))
            let pdf = expf(-0.5 * x[i] * x[i]) * 0.39894228040143267794
            dy[i] *= cdf + x[i] * pdf
        }
    case .hardSigmoid:
        // TensorFlow's Relu6Grad on x + 3: passes where 0 < x + 3 < 6, that is 0 < y < 1.
        for i in 0..<n { dy[i] *= y[i] > 0 && y[i] < 1 ? 1.0 / 6 : 0 }
    case .hardSilu:
        guard let x else { preconditionFailure("hard_silu backward needs the input") }
        for i in 0..<n {
            let inside = x[i] > -3 && x[i] < 3
            dy[i] *= hardSigmoid(x[i]) + (inside ? x[i] / 6 : 0)
        }
    case .softmax:
        for r in 0..<rows {
            let d = dy + r * cols, p = y + r * cols
            var dot: Float = 0
            for j in 0..<cols { dot += d[j] * p[j] }
            for j in 0..<cols { d[j] = p[j] * (d[j] - dot) }
        }
    }
}

/// Whether `activationBackward` needs the activation's input, not just its output.
func activationBackwardNeedsInput(_ activation: Activation) -> Bool {
    activation == .silu || activation == .gelu || activation == .hardSilu
}
