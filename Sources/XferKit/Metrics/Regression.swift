// The regression metrics `xfer evaluate` prints, as Keras's `mae`, `mse` and
// `RootMeanSquaredError()`: means over every output of every sample, RMSE = √MSE.

import Foundation

/// (mae, mse, rmse) of `outputs` against `targets` (same count).
package func regressionMetrics(outputs: [Float], targets: [Float]) -> (mae: Double, mse: Double, rmse: Double) {
    precondition(outputs.count == targets.count)
    var a = 0.0, s = 0.0
    for (y, t) in zip(outputs, targets) {
        let e = Double(y) - Double(t)
        a += abs(e); s += e * e
    }
    let n = Double(max(outputs.count, 1))
    return (a / n, s / n, (s / n).squareRoot())
}
