// The scratch memory that layers share: one slice per worker thread, reused by every
// layer in turn. Its size is bounded by design: a convolution takes tiles of output
// pixels small enough that one tile's im2col matrix fits `floatsPerWorker`, whatever
// the image size or batch (the one exception: a single output pixel's patch, K floats,
// larger than that). A Winograd convolution takes what its chunk of samples needs
// (Engine/Winograd.swift: blocked copies under 8 MiB each, and oneDNN's scratchpad).

final class Workspace {
    /// im2col budget of one worker thread: 2 MB. oneDNN's SGEMM keeps ≥ 100 GFLOP/s per
    /// core down to M ≈ 60 rows on VGG16's shapes, so a bigger tile gains nothing
    /// (BENCHMARKS.md, "Inference engine").
    static let defaultFloatsPerWorker = 1 << 19

    let floatsPerWorker: Int
    private var buffer: UnsafeMutablePointer<Float>?
    private var capacity = 0
    private var stride = 0

    init(floatsPerWorker: Int = Workspace.defaultFloatsPerWorker) {
        self.floatsPerWorker = floatsPerWorker
    }

    deinit { buffer?.deallocate() }

    /// Makes `workers` slices of `floats` each available. Call before a parallel
    /// section, never inside one.
    func reserve(workers: Int, floats: Int) {
        let needed = workers * floats
        if needed > capacity {
            buffer?.deallocate()
            buffer = .allocate(capacity: needed)
            capacity = needed
        }
        stride = floats
    }

    /// Worker `worker`'s slice, `floats` long as last reserved.
    func slice(_ worker: Int) -> UnsafeMutablePointer<Float> {
        buffer! + worker * stride
    }

    /// Bytes currently held.
    var bytes: Int { capacity * MemoryLayout<Float>.size }
}
