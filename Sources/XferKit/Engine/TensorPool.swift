// Activation buffers reused from one layer to the next and from one batch to the next.
//
// A fresh large array costs a page fault and a kernel-zeroed page per 4 KB the first
// time it is written (glibc maps large allocations anew and unmaps them on free):
// about a tenth of VGG16's forward time. So layers that make a new output take its
// buffer from here and hand their input back when done, and after the first batch a
// forward pass allocates nothing. The pool keeps only buffers it issued itself — never
// a caller's array, which the caller may still hold.

final class TensorPool {
    /// Buffers kept for reuse: enough for a layer's input and output plus one spare.
    private let capacity = 6
    private var free: [[Float]] = []
    /// Base addresses of the buffers issued and not yet returned.
    private var issued: Set<UnsafeRawPointer> = []

    /// A tensor of `shape` with arbitrary contents, to be overwritten entirely.
    /// `fitted`: only a buffer at most twice the size will do (else a new one), for a tensor
    /// that is kept past the pass: it must not pin one of the pass's largest buffers.
    func tensor(_ shape: [Int], fitted: Bool = false) -> Tensor {
        let count = shape.reduce(1, *)
        // A small tensor (a squeeze-excite branch's (N, 1, 1, C)) taking one of the pass's large
        // buffers would pin it while the large tensors beside it need new ones (page faults and
        // zero fills, a fifth of EfficientNet's forward): small ones get a buffer of their size.
        let fitted = fitted || count < Self.smallTensor
        var values: [Float]
        if let i = free.indices.filter({ free[$0].capacity >= count && (!fitted || !Self.oversized(free[$0].capacity, count)) })
            .min(by: { free[$0].capacity < free[$1].capacity }) {
            values = free.remove(at: i)
            if values.count > count {
                values.removeLast(values.count - count)
            } else if values.count < count {
                values.append(contentsOf: repeatElement(0, count: count - values.count))
            }
        } else {
            values = Tensor(uninitializedShape: [count]).values
        }
        if count > 0 { issued.insert(address(values)) }
        return Tensor(shape: shape, values: values)
    }

    /// Floats below which a tensor only takes a buffer at most twice its size.
    static let smallTensor = 1 << 15

    /// Whether a buffer of `capacity` floats is more than twice what `count` needs.
    static func oversized(_ capacity: Int, _ count: Int) -> Bool { capacity > 2 * max(count, 1) }

    /// Takes back a tensor that nothing else will read, if this pool issued its buffer.
    func recycle(_ t: consuming Tensor) {
        let values = t.values
        guard !values.isEmpty, issued.remove(address(values)) != nil else { return }
        free.append(values)
        if free.count > capacity, let smallest = free.indices.min(by: { free[$0].capacity < free[$1].capacity }) {
            free.remove(at: smallest)
        }
    }

    /// Starts a forward pass: buffers issued before it (outputs handed to the caller,
    /// inputs a layer keeps for backward) are no longer taken back.
    func beginPass() { issued.removeAll() }

    /// Drops every kept buffer.
    func removeAll() {
        free.removeAll()
        issued.removeAll()
    }

    /// Bytes held for reuse.
    var bytes: Int { free.reduce(0) { $0 + $1.capacity } * MemoryLayout<Float>.size }

    private func address(_ values: [Float]) -> UnsafeRawPointer {
        values.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
    }
}
