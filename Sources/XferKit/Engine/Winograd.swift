// The Winograd path for 3×3, stride-1, undilated convolutions: oneDNN's F(4×4, 3×3) kernel
// (`jit_wino_4x3`, AVX-512), which needs 4× fewer multiplications in its GEMM stage than the
// direct definition, behind COneDNN's `xfer_wino_*` calls.
//
// Which core runs a convolution is decided per layer by shape (`ConvolutionChoice`):
//   - im2col + SGEMM (Conv2D.swift) stays the general core and the exact reference; it runs
//     every other shape, and everything under `Convolution.path = .im2col` (`--conv im2col`).
//   - `.auto` (the default) takes Winograd where it was measured faster on this project's
//     machine, per pass (`Convolution.forwardSlowerOnWinograd`, `backwardSlowerOnWinograd`,
//     BENCHMARKS.md "Winograd"): not on maps under 12×12, nor the backward of 3-channel inputs,
//     where the transforms cost more than they save.
//   - `.winograd` takes it wherever oneDNN can run it, even where slower (tests, measurements).
//   - Where oneDNN cannot (a CPU without AVX-512, a shape its kernel refuses), the layer falls
//     back to im2col with the reason, which `--dry-run` shows.
//
// Numbers: Winograd rounds differently from the direct sum (its transforms add and subtract
// scaled tile values), a relative error of a few 1e-6 on unit-scale activations; the parity
// tests hold both paths to Keras at their stated tolerances (ForwardParityTests).
//
// Threads and memory: the batch is cut into chunks of samples, run as tasks on the engine's
// pool, each oneDNN call on its worker thread alone (an OpenMP team of 1, as for the SGEMM), so
// at most `ThreadPool.shared.threadCount` threads compute at any time and no OpenMP team spins
// beside the pool. (A first version ran one call on an OpenMP team of the whole budget: between
// calls the team's idle threads spun and took cores from the pool's, and ResNet50 ran slower
// than on im2col.) The blocked copies of the activations that oneDNN's kernel works in are cut to at
// most `chunkBytes` per call; they and oneDNN's scratchpad (the transformed tiles and filters)
// live in the pass's Workspace, a slice per worker, shared with im2col and every layer, so the
// scratch is bounded whatever the batch size (on VGG16 at batch 16: about 90 MB per worker).
// The kernels are reordered into oneDNN's blocked layout once per kernel version (once for a
// frozen layer, after each optimizer step for a trainable one); the Winograd filter transform
// itself runs inside each call (COneDNN/onednn.c says why: same time, a quarter of the memory).

import COneDNN
import Foundation

/// Which convolution core runs the 3×3, stride-1 convolutions (`--conv`).
package enum ConvolutionPath: String, Sendable, CaseIterable {
    /// Winograd where it pays off by shape, im2col + SGEMM elsewhere (the default).
    case auto
    /// im2col + SGEMM everywhere: the general core and the exact reference.
    case im2col
    /// Winograd wherever oneDNN can run it, even where it is slower.
    case winograd
}

/// The process-wide convolution settings.
package enum Convolution {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var _path: ConvolutionPath = .auto

    /// The core 3×3 stride-1 convolutions run on, for every network built or run after it is set.
    ///
    /// ```swift
    /// Convolution.path = .im2col   // as `xfer finetune --conv im2col`
    /// ```
    package static var path: ConvolutionPath {
        get { lock.withLock { _path } }
        set { lock.withLock { _path = newValue } }
    }

    /// Why `.auto` keeps a 3×3 stride-1 shape's forward pass on im2col, nil when Winograd is
    /// faster. Measured layer by layer at batch 16 on a quiet machine (`xfer-bench layers`,
    /// BENCHMARKS.md "Winograd"): Winograd's forward was faster on every shape tried, 1.08× to
    /// 2.46× (3 input channels 1.13×, 16 channels 2.11×, 128 → 32 1.08×), except on 7×7 maps
    /// (0.81× at 512 channels, 1.00× at 64): a 4×4-tile transform pads 7 to 8 and has only 4
    /// tiles per image.
    static func forwardSlowerOnWinograd(_ g: ConvGeometry) -> String? {
        min(g.oh, g.ow) < 12 ? "output smaller than 12×12" : nil
    }

    /// The same for the backward passes (input and weight gradients together): slower also with
    /// 3 input channels (0.72×: the weight gradient's transforms dominate when C is tiny).
    static func backwardSlowerOnWinograd(_ g: ConvGeometry) -> String? {
        if let why = forwardSlowerOnWinograd(g) { return why }
        return g.c < 16 ? "fewer than 16 input channels" : nil
    }

    /// Bytes of one blocked activation copy per oneDNN call; the batch is run in chunks under it.
    /// Measured on VGG16's forward at batch 16 (2 threads): 2 MiB 0.736 s, 4 MiB 0.70 s, 8 MiB
    /// 0.70 s, 16 MiB 0.662 s, 32 MiB 0.654 s; peak RSS 691, 687, 755, 804, 969 MB. 16 MiB keeps
    /// nearly all the speed for 165 MB less than 32.
    static let chunkBytes = 16 << 20
}

/// How one convolution layer runs, forward and backward, and why.
struct ConvolutionChoice: Equatable {
    /// The forward pass runs on Winograd.
    let winograd: Bool
    /// The backward passes (input and weight gradients) run on Winograd.
    let winogradBackward: Bool
    /// Why im2col runs the forward (empty when Winograd does), and the backward.
    let reason: String, backwardReason: String

    /// For a layer of geometry `g` under `path`.
    init(_ g: ConvGeometry, path: ConvolutionPath = Convolution.path) {
        func im2col(_ why: String) -> ConvolutionChoice {
            ConvolutionChoice(winograd: false, winogradBackward: false, reason: why, backwardReason: why)
        }
        self = {
            if path == .im2col { return im2col("--conv im2col") }
            guard g.kh == 3, g.kw == 3, g.sh == 1, g.sw == 1, g.dh == 1, g.dw == 1 else {
                return im2col("not 3×3 stride 1")
            }
            if ThreadPool.shared.threadCount > Int(XFER_WINO_MAX_WORKERS) {
                return im2col("more than \(XFER_WINO_MAX_WORKERS) threads")
            }
            let forward = path == .auto ? Convolution.forwardSlowerOnWinograd(g) : nil
            let backward = path == .auto ? Convolution.backwardSlowerOnWinograd(g) : nil
            if let forward, let backward, forward == backward { return im2col(forward) }
            if let refusal = WinogradAvailability.shared.refusal(g) { return im2col(refusal) }
            return ConvolutionChoice(winograd: forward == nil, winogradBackward: backward == nil,
                                     reason: forward ?? "", backwardReason: backward ?? "")
        }()
    }

    private init(winograd: Bool, winogradBackward: Bool, reason: String, backwardReason: String) {
        self.winograd = winograd
        self.winogradBackward = winogradBackward
        self.reason = reason
        self.backwardReason = backwardReason
    }

    /// For `--dry-run`: "winograd", "im2col (why)", or the two passes when they differ.
    var description: String {
        switch (winograd, winogradBackward) {
        case (true, true): return "winograd"
        case (false, false): return "im2col (\(reason))"
        case (true, false): return "winograd (backward on im2col: \(backwardReason))"
        case (false, true): return "im2col (\(reason); backward on winograd)"
        }
    }
}

/// Whether oneDNN runs a Winograd kernel for a shape on this CPU, asked once per shape.
final class WinogradAvailability: @unchecked Sendable {
    static let shared = WinogradAvailability()
    private let lock = NSLock()
    private var answers: [ShapeKey: String?] = [:]

    struct ShapeKey: Hashable { let c, o, oh, ow, h, w, top, left: Int }

    /// nil when it runs, else why not.
    func refusal(_ g: ConvGeometry) -> String? {
        let key = ShapeKey(c: g.c, o: g.o, oh: g.oh, ow: g.ow, h: g.h, w: g.w, top: g.padTop, left: g.padLeft)
        if let known = lock.withLock({ answers[key] }) { return known }
        var why = [CChar](repeating: 0, count: 160)
        let handle = g.withWinogradShape(batch: 1) { n, h, w, c, o, oh, ow, t, l, b, r in
            xfer_wino_create(0, 0, n, h, w, c, o, oh, ow, t, l, b, r, &why, Int32(why.count))
        }
        var answer: String?
        if let handle {
            // jit_wino_4x3 is oneDNN's only float32 Winograd kernel; anything else is a reference loop.
            let implementation = String(cString: xfer_wino_implementation(handle))
            if !implementation.contains("wino") { answer = "oneDNN offers \(implementation), not a Winograd kernel" }
            xfer_wino_destroy(handle)
        } else {
            answer = String(decoding: why.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        lock.withLock { answers[key] = .some(answer) }
        return answer
    }
}

extension ConvGeometry {
    /// The shape as oneDNN takes it: batch, input, output and the four paddings.
    func withWinogradShape<R>(batch: Int, _ body: (Int64, Int64, Int64, Int64, Int64, Int64, Int64,
                                                   Int64, Int64, Int64, Int64) -> R) -> R {
        // Bottom/right padding: what the output size needs beyond the input and the top/left pad.
        let bottom = oh - 1 + kh - h - padTop, right = ow - 1 + kw - w - padLeft
        return body(Int64(batch), Int64(h), Int64(w), Int64(c), Int64(o), Int64(oh), Int64(ow),
                    Int64(padTop), Int64(padLeft), Int64(bottom), Int64(right))
    }
}

/// One layer's Winograd primitives: per chunk size, forward only or with the backward passes.
final class WinogradConvolution {
    let geometry: ConvGeometry
    private struct Key: Hashable { let batch: Int; let backward: Bool }
    private var handles: [Key: OpaquePointer] = [:]
    /// The kernel version each handle holds.
    private var loaded: [Key: Int] = [:]

    /// Bytes of one blocked activation copy per oneDNN call (tests make it small to cut batches).
    let chunkBytes: Int
    /// The forward adds the bias / applies ReLU inside oneDNN's output transform (one pass over
    /// the output fewer: BENCHMARKS.md, "Winograd").
    let fusesBias: Bool, fusesReLU: Bool

    init(_ g: ConvGeometry, fusingBias: Bool = false, fusingReLU: Bool = false, chunkBytes: Int = Convolution.chunkBytes) {
        geometry = g
        fusesBias = fusingBias
        fusesReLU = fusingReLU
        self.chunkBytes = chunkBytes
    }

    deinit { for h in handles.values { xfer_wino_destroy(h) } }

    /// Samples per oneDNN call: under `chunkBytes` per blocked copy, and at most an even share of
    /// the batch per thread, so every worker gets a chunk.
    func samplesPerCall(batch: Int, threads: Int = ThreadPool.shared.threadCount) -> Int {
        let g = geometry
        let perSample = 4 * max(g.h * g.w * g.c, g.oh * g.ow * g.o)
        let share = (batch + max(threads, 1) - 1) / max(threads, 1)
        return max(1, min(share, chunkBytes / max(perSample, 1)))
    }

    /// Set when oneDNN failed to make or run a primitive (out of memory, say): every later call
    /// returns false, and the layer runs on im2col from then on. (Tests set it to simulate that.)
    var failed = false

    /// The handle for chunks of `key.batch` samples, nil if oneDNN cannot make it. Called outside
    /// the parallel section: making a handle and loading its kernel must not overlap its calls.
    private func handle(_ key: Key) -> OpaquePointer? {
        if let existing = handles[key] { return existing }
        // The availability check made the same shape at batch 1: a refusal now is oneDNN out of memory.
        guard let made = geometry.withWinogradShape(batch: key.batch, { n, hh, w, c, o, oh, ow, t, l, b, r in
            xfer_wino_create(key.backward ? 1 : 0, (fusesBias ? Int32(XFER_WINO_BIAS) : 0) | (fusesReLU ? Int32(XFER_WINO_RELU) : 0),
                             n, hh, w, c, o, oh, ow, t, l, b, r, nil, 0)
        }) else { return nil }
        handles[key] = made
        return made
    }

    /// Loads the kernel at `version` into `h` if it holds another, with worker 0's scratch.
    private func load(_ h: OpaquePointer, key: Key, kernel: UnsafePointer<Float>, version: Int,
                      scratch: UnsafeMutableRawPointer) -> Bool {
        guard loaded[key] != version else { return true }
        var status: Int32 = 0
        // On a worker index of the pool's own (the caller's), as every oneDNN call is made.
        parallelFor(1) { _, worker in status = xfer_wino_set_kernel(h, kernel, Int32(worker), scratch) }
        guard status == 0 else { return false }
        loaded[key] = version
        return true
    }

    /// Runs `body(handle, first sample, worker, scratch)` on each chunk of the batch, the chunks as
    /// tasks on the thread pool, each with its worker's slice of `workspace` (the scratch the
    /// pass's layers share, im2col's too). False when oneDNN failed (`failed` is then set).
    private func eachChunk(batch: Int, backward: Bool, kernel: UnsafePointer<Float>, version: Int, workspace: Workspace,
                           _ body: (OpaquePointer, Int, Int, UnsafeMutableRawPointer) -> Int32) -> Bool {
        guard !failed else { return false }
        let size = samplesPerCall(batch: batch)
        let tasks = (batch + size - 1) / size
        let fullKey = Key(batch: size, backward: backward), lastKey = Key(batch: batch % size, backward: backward)
        guard let full = handle(fullKey), let last = batch % size == 0 ? full : handle(lastKey) else {
            failed = true
            return false
        }
        // Floats per worker, rounded up to 64 bytes (and the base aligned) for oneDNN's vector loads.
        let floats = (max(xfer_wino_scratch_bytes(full), xfer_wino_scratch_bytes(last)) + 63) / 64 * 16
        workspace.reserve(workers: ThreadPool.shared.threadCount, floats: floats + 16)
        func slice(_ worker: Int) -> UnsafeMutableRawPointer {
            UnsafeMutableRawPointer(workspace.slice(worker)).alignedUp(toMultipleOf: 64)
        }
        guard load(full, key: fullKey, kernel: kernel, version: version, scratch: slice(0)),
              last == full || load(last, key: lastKey, kernel: kernel, version: version, scratch: slice(0)) else {
            failed = true
            return false
        }
        var statuses = [Int32](repeating: 0, count: tasks)
        statuses.withUnsafeMutableBufferPointer { st in
            parallelFor(tasks) { t, worker in
                st[t] = body(t == tasks - 1 ? last : full, t * size, worker, slice(worker))
            }
        }
        if statuses.contains(where: { $0 != 0 }) { failed = true }
        return !failed
    }

    /// y (N, OH, OW, O) = conv(x (N, H, W, C)), then + bias (O) and ReLU where this fuses them.
    /// False when oneDNN failed (y is then to be written by im2col), as for the backward passes.
    func forward(_ x: UnsafePointer<Float>, batch: Int, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 version: Int, backward: Bool, workspace: Workspace, into y: UnsafeMutablePointer<Float>) -> Bool {
        precondition(!fusesBias || bias != nil)
        let g = geometry, inSample = g.h * g.w * g.c, outSample = g.oh * g.ow * g.o
        return eachChunk(batch: batch, backward: backward, kernel: kernel, version: version, workspace: workspace) { h, first, worker, scratch in
            xfer_wino_forward(h, x + first * inSample, bias, y + first * outSample, Int32(worker), scratch)
        }
    }

    /// dx (N, H, W, C) from dz (N, OH, OW, O).
    func backwardData(_ dz: UnsafePointer<Float>, batch: Int, kernel: UnsafePointer<Float>, version: Int,
                      workspace: Workspace, into dx: UnsafeMutablePointer<Float>) -> Bool {
        let g = geometry, inSample = g.h * g.w * g.c, outSample = g.oh * g.ow * g.o
        return eachChunk(batch: batch, backward: true, kernel: kernel, version: version, workspace: workspace) { h, first, worker, scratch in
            xfer_wino_backward_data(h, dz + first * outSample, dx + first * inSample, Int32(worker), scratch)
        }
    }

    /// dKernel (3, 3, C, O) += Σ over the batch of x ⋆ dz. Each chunk writes its own partial and
    /// the partials are added in chunk order, so the sum does not depend on which thread ran what.
    func backwardWeights(_ x: UnsafePointer<Float>, dz: UnsafePointer<Float>, batch: Int,
                         kernel: UnsafePointer<Float>, version: Int, workspace: Workspace,
                         addingInto dKernel: UnsafeMutablePointer<Float>) -> Bool {
        let g = geometry, inSample = g.h * g.w * g.c, outSample = g.oh * g.ow * g.o
        let count = g.k * g.o, size = samplesPerCall(batch: batch)
        let chunks = (batch + size - 1) / size
        let parts = UnsafeMutablePointer<Float>.allocate(capacity: chunks * count)
        defer { parts.deallocate() }
        let done = eachChunk(batch: batch, backward: true, kernel: kernel, version: version, workspace: workspace) { h, first, worker, scratch in
            xfer_wino_backward_weights(h, x + first * inSample, dz + first * outSample, parts + first / size * count,
                                       Int32(worker), scratch)
        }
        guard done else { return false }
        let blocks = max(1, min(ThreadPool.shared.threadCount * 4, count / 4096))
        parallelFor(blocks) { block, _ in
            for c in 0..<chunks {
                let part = parts + c * count
                for i in chunk(block, of: blocks, total: count) { dKernel[i] += part[i] }
            }
        }
        return true
    }
}
