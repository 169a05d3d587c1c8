// Helpers shared by the engine tests: reproducible random numbers.

@testable import XferKit

/// A small reproducible generator (SplitMix64), so a failing case can be rerun.
struct SeededRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }

    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in float() } }

    mutating func tensor(_ shape: [Int]) -> Tensor { Tensor(shape: shape, values: floats(shape.reduce(1, *))) }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}
