// The oneDNN direct-convolution path for the inference forward of the convolutions Winograd does
// not take: 1×1, strided, k×k other than 3×3 stride 1 (and 3×3 on maps too small for Winograd),
// depthwise (a grouped convolution, groups = channels, `multiplier` filters each) and Conv2D with
// groups, behind COneDNN's `xfer_dconv_*` calls. oneDNN's JIT kernels (`jit_1x1`, `jit`, `jit_dw`
// on AVX-512) take the engine's NHWC activations as they are; only the kernel is reordered into
// oneDNN's layout, once per kernel version, as the Winograd path does.
//
// When it runs (`DirectConvolution.wanted`): forward passes that keep nothing for a backward
// (predict, frozen layers of a fine-tuning, the feature cache) under `--conv auto` or `winograd`.
// Under `--conv im2col` every convolution runs on im2col + SGEMM (depthwise on its Swift loop),
// which stay the general core and the reference; a backward pass and everything it needs use
// them too. Where oneDNN offers only a reference loop for a shape, or fails at run time, the
// layer runs on its own core from then on.
//
// Fused epilogue: the bias and ReLU, ReLU6 (clip), SiLU (swish, α = 1), sigmoid and tanh run as
// oneDNN post-ops (one pass over the output fewer); other activations run after the call. A
// `summing` primitive adds the convolution to what the output already holds before the
// activation (a sum post-op): a residual connection's Add, folded in (InferenceFolding.swift).
//
// Numbers: oneDNN sums in another order than the GEMM (and its swish/sigmoid/tanh use its own
// polynomial exp), a relative difference of a few 1e-6 on unit-scale activations; the tests hold it
// to the naive oracle (DirectConvolutionTests) and the families to Keras (check_families.py).
//
// Threads: as for Winograd (Winograd.swift says why), the batch is cut into chunks of samples
// run as tasks on the engine's pool, each oneDNN call single-threaded on its worker's stream with
// its worker's slice of the pass's Workspace as oneDNN's scratchpad.

import COneDNN
import Foundation

/// One layer's oneDNN direct-convolution primitives (forward only), one per chunk size.
package final class DirectConvolution {
    /// The whole layer's: all C input channels, all O filters.
    let geometry: ConvGeometry
    /// 1 for a dense convolution, C for a depthwise one, G for a Conv2D in G groups.
    let groups: Int
    let fusesBias: Bool
    /// y += the convolution: y holds a residual on entry.
    let summing: Bool
    /// The activation oneDNN applies after the bias (`.linear` when it fuses none).
    let fusedActivation: Activation
    private var handles: [Int: OpaquePointer] = [:]
    private var loaded: [Int: Int] = [:]
    /// Why oneDNN does not run this layer (set on the first call that finds out); then every call
    /// returns false and the layer runs on its own core.
    private(set) var refusal: String?

    /// The kernel as Keras stores it: (KH, KW, C/groups, O), or for a depthwise layer (groups = C,
    /// `g.o` = C·M) (KH, KW, C, M).
    init(_ g: ConvGeometry, groups: Int, fusingBias: Bool, activation: Activation, summing: Bool = false) {
        geometry = g
        self.groups = groups
        fusesBias = fusingBias
        self.summing = summing
        fusedActivation = DirectConvolution.fusable(activation) ? activation : .linear
    }

    deinit { for h in handles.values { xfer_dconv_destroy(h) } }

    /// Whether the forward of a pass runs here: it keeps nothing for a backward, and `--conv` is not im2col.
    static func wanted(_ context: ForwardContext) -> Bool {
        !context.keepForBackward && Convolution.path != .im2col
            && ThreadPool.shared.threadCount <= Int(XFER_WINO_MAX_WORKERS)
    }

    static func fusable(_ a: Activation) -> Bool { code(a) != nil }

    private static func code(_ a: Activation) -> Int32? {
        switch a {
        case .linear: return Int32(XFER_ACT_NONE)
        case .relu: return Int32(XFER_ACT_RELU)
        case .relu6: return Int32(XFER_ACT_RELU6)
        case .silu: return Int32(XFER_ACT_SWISH)
        case .sigmoid: return Int32(XFER_ACT_SIGMOID)
        case .tanh: return Int32(XFER_ACT_TANH)
        default: return nil
        }
    }

    /// The implementation oneDNN picks for this shape (for tests and measurements), nil if none.
    func implementation(batch: Int) -> String? {
        handle(batch).map { String(cString: xfer_dconv_implementation($0)) }
    }

    /// Output pixels per oneDNN call at least (whole samples): smaller calls than an even share
    /// per thread let the pool's threads even out when one of them is held up, and above this size
    /// each call still reuses its kernel over many rows. `xfer-bench --direct-pixels` sets it.
    nonisolated(unsafe) package static var pixelsPerCall = 1 << 30

    /// Samples per oneDNN call: at most an even share of the batch per thread, so every worker gets
    /// a chunk, and no fewer than `pixelsPerCall` output pixels' worth.
    func samplesPerCall(batch: Int, threads: Int = ThreadPool.shared.threadCount) -> Int {
        let share = max(1, (batch + max(threads, 1) - 1) / max(threads, 1))
        let pixels = geometry.oh * geometry.ow
        return min(share, max(1, (DirectConvolution.pixelsPerCall + pixels - 1) / max(pixels, 1)))
    }

    private func handle(_ batch: Int) -> OpaquePointer? {
        if let existing = handles[batch] { return existing }
        guard refusal == nil else { return nil }
        let g = geometry
        let bottom = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1 - g.h - g.padTop
        let right = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1 - g.w - g.padLeft
        var why = [CChar](repeating: 0, count: 160)
        guard let made = xfer_dconv_create(Int64(groups), fusesBias ? 1 : 0, summing ? 1 : 0,
                                           DirectConvolution.code(fusedActivation)!,
                                           Int64(batch), Int64(g.h), Int64(g.w), Int64(g.c), Int64(g.o),
                                           Int64(g.kh), Int64(g.kw), Int64(g.sh), Int64(g.sw), Int64(g.dh), Int64(g.dw),
                                           Int64(g.oh), Int64(g.ow), Int64(g.padTop), Int64(g.padLeft),
                                           Int64(bottom), Int64(right), &why, Int32(why.count)) else {
            refusal = String(decoding: why.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return nil
        }
        // A reference loop is slower than the engine's own cores: keep those.
        let implementation = String(cString: xfer_dconv_implementation(made))
        if implementation.contains("ref") {
            xfer_dconv_destroy(made)
            refusal = "oneDNN offers only \(implementation)"
            return nil
        }
        handles[batch] = made
        return made
    }

    /// y (N, OH, OW, O) = act(conv(x) + bias [+ y when `summing`]) for what this fuses (the caller
    /// applies the rest). False when oneDNN does not run it, before it has written anything (y is
    /// then to be written by the layer's own core). A summing call whose oneDNN calls fail for some
    /// samples (errors oneDNN reports before it executes) does those samples on im2col here, since
    /// y already holds the others' sums.
    func forward(_ x: UnsafePointer<Float>, batch: Int, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 version: Int, workspace: Workspace, into y: UnsafeMutablePointer<Float>) -> Bool {
        precondition(!fusesBias || bias != nil)
        guard refusal == nil, batch > 0 else { return false }
        let size = samplesPerCall(batch: batch)
        let tasks = (batch + size - 1) / size
        let lastSize = batch - (tasks - 1) * size
        guard let full = handle(size), let last = lastSize == size ? full : handle(lastSize) else { return false }
        let floats = (max(xfer_dconv_scratch_bytes(full), xfer_dconv_scratch_bytes(last)) + 63) / 64 * 16
        workspace.reserve(workers: ThreadPool.shared.threadCount, floats: floats + 16)
        func slice(_ worker: Int) -> UnsafeMutableRawPointer {
            UnsafeMutableRawPointer(workspace.slice(worker)).alignedUp(toMultipleOf: 64)
        }
        for (n, h) in Set([size, lastSize]).map({ ($0, $0 == size ? full : last) }) where loaded[n] != version {
            var status: Int32 = 0
            parallelFor(1) { _, worker in status = xfer_dconv_set_kernel(h, kernel, Int32(worker), slice(worker)) }
            guard status == 0 else {
                refusal = "oneDNN failed to load the kernel (status \(status))"
                return false
            }
            loaded[n] = version
        }
        let g = geometry, inSample = g.h * g.w * g.c, outSample = g.oh * g.ow * g.o
        var statuses = [Int32](repeating: 0, count: tasks)
        statuses.withUnsafeMutableBufferPointer { st in
            parallelFor(tasks) { t, worker in
                let first = t * size
                st[t] = xfer_dconv_forward(t == tasks - 1 ? last : full, x + first * inSample, bias, y + first * outSample,
                                           Int32(worker), slice(worker))
            }
        }
        guard let bad = statuses.first(where: { $0 != 0 }) else { return true }
        refusal = "oneDNN failed (status \(bad))"
        guard summing else { return false }
        precondition(groups == 1)
        for t in statuses.indices where statuses[t] != 0 {
            let first = t * size, count = t == tasks - 1 ? lastSize : size
            var z = [Float](repeating: 0, count: count * outSample)
            z.withUnsafeMutableBufferPointer { pz in
                conv2DForward(x + first * inSample, batch: count, g, kernel: kernel, bias: bias, .linear,
                              into: pz.baseAddress!, workspace: workspace)
                let out = y + first * outSample
                for i in 0..<pz.count { out[i] += pz[i] }
                activate(out, rows: count * g.oh * g.ow, cols: g.o, fusedActivation)
            }
        }
        return true
    }
}
