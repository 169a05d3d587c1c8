// The engine's one data type: float32 values in row-major order with a shape and
// nothing else — no strides, no views, no offset. Activations are NHWC
// (N batch, H, W, C channels), Dense activations (N, units).

/// A dense float32 tensor, row-major (the last axis varies fastest).
///
/// ```swift
/// let x = Tensor(shape: [1, 2, 2, 3], values: Array(repeating: 0.5, count: 12))  // (N, H, W, C)
/// x.count      // 12
/// x.shape[3]   // 3 channels
/// ```
public struct Tensor: Sendable, Equatable {
    /// The size of each axis (N, H, W, C for a batch of images).
    public private(set) var shape: [Int]
    /// Values in row-major order; `values.count == shape.reduce(1, *)`.
    public var values: [Float]

    /// A tensor of `shape` holding `values` in row-major order (their count must be the shape's product).
    ///
    /// ```swift
    /// let x = Tensor(shape: [1, 2], values: [0.25, 0.75])
    /// ```
    public init(shape: [Int], values: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(values.count == shape.reduce(1, *),
                     "\(values.count) values for shape \(shape) (\(shape.reduce(1, *)) expected)")
        self.shape = shape
        self.values = values
    }

    /// A tensor of `shape` with every value `value`.
    ///
    /// ```swift
    /// let zeros = Tensor(shape: [4, 32, 32, 3])
    /// ```
    public init(shape: [Int], repeating value: Float = 0) {
        self.init(shape: shape, values: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A tensor whose values the caller overwrites entirely before reading any
    /// (saves a pass over large activations).
    init(uninitializedShape shape: [Int]) {
        let count = shape.reduce(1, *)
        self.shape = shape
        self.values = [Float](unsafeUninitializedCapacity: count) { _, n in n = count }
    }

    /// The number of values.
    public var count: Int { values.count }
    /// The number of axes.
    public var rank: Int { shape.count }

    /// The same values under another shape of the same element count.
    package func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, values: values)
    }

    /// Samples `range` of the first axis, copied.
    package func samples(_ range: Range<Int>) -> Tensor {
        let per = shape.dropFirst().reduce(1, *)
        return Tensor(shape: [range.count] + shape.dropFirst(),
                      values: Array(values[range.lowerBound * per ..< range.upperBound * per]))
    }

    /// Largest |a − b| over all elements; the shapes must agree.
    package func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes \(shape) and \(other.shape) differ")
        var m: Float = 0
        for i in 0..<values.count { m = Swift.max(m, abs(values[i] - other.values[i])) }
        return m
    }
}
