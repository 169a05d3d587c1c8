// The seeded random numbers of xfer. Every generator of a run is derived from the run's one
// seed (`--seed`) by a named stream, so that each use draws its own numbers and a seeded run
// repeats byte for byte.

/// SplitMix64: a small, seeded, portable generator for head initialisation, the validation split,
/// shuffling, dropout and augmentation (each from its `SeedStream`).
package struct SeededRandom: Sendable {
    private var state: UInt64
    package init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    package mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        let u = Float(next() >> 40) / Float(1 << 24)
        return lo + (hi - lo) * u
    }

    /// A permutation of 0..<n (Fisher–Yates).
    package mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            p.swapAt(i, j)
        }
        return p
    }
}

/// What a generator derived from a run's seed is for; each stream has its own derived seed.
package enum SeedStream: Sendable, Equatable {
    /// The kernels of a new head (glorot-uniform).
    case headInit
    /// The stratified training/validation split (`--validation-split`).
    case split
    /// The order of the training samples in `epoch`.
    case shuffle(epoch: Int)
    /// The augmentations of a run that starts at `startEpoch` (one generator for the whole run).
    case augment(startEpoch: Int)
    /// The dropout layer that is number `index` (from 0) in execution order.
    case dropout(index: Int)
    /// The random augmentation layer (RandomFlip, RandomRotation, ...) that is number `index`
    /// (from 0) in execution order.
    case augmentLayer(index: Int)

    /// The seed of this stream for a run seeded with `seed`.
    package func seed(from seed: UInt64) -> UInt64 {
        switch self {
        case .headInit:
            return seed
        case .split:
            return seed ^ 0x5EED_5B11_7000_0001
        case .shuffle(let epoch):
            return seed &+ UInt64(epoch) &* 0x9E37_79B9
        case .augment(let startEpoch):
            return seed ^ 0xA06_3E47 &+ UInt64(startEpoch)
        case .dropout(let index):
            // The index-th draw of a generator seeded with `seed`.
            var r = SeededRandom(seed: seed)
            for _ in 0..<index { _ = r.next() }
            return r.next()
        case .augmentLayer(let index):
            return (seed ^ 0xA06_3E47_1A7E_0000) &+ UInt64(index) &* 0x9E37_79B9
        }
    }
}

extension SeededRandom {
    /// The generator of `stream` for a run seeded with `seed`.
    package init(seed: UInt64, stream: SeedStream) {
        self.init(seed: stream.seed(from: seed))
    }
}
