// xfer-bench: the inference benchmark of BENCHMARKS.md ("Inference engine").
//
// Builds the full-width VGG16 convolutional base (Keras `VGG16(include_top=False)`,
// 13 Conv2D 3×3 `same` + ReLU, 5 MaxPooling2D) with synthetic weights made here,
// and times one of:
//   xfer   Network.predict on a random batch
//   layers one 3×3 `same` convolution at a time, on VGG16's, ResNet50's and DenseNet's shapes and
//          narrow ones, in im2col and in Winograd: forward, and backward (input and weight
//          gradients) — the measurements behind `--conv auto`'s rule (Engine/Winograd.swift)
//   direct the forward of the families' other convolution shapes (1×1, strided, depthwise) on
//          im2col + SGEMM (depthwise: its loop) and on oneDNN's direct convolution, alternating
//   ops    with --checkpoint: where predict's time goes, per layer (median over the runs) and
//          per kind of layer (Conv2D split into 1×1, 3×3 stride 1, strided and other)
//   sgemm  the very GEMM calls (M, N, K, count) that predict makes in its
//          convolutions, run through the same SGEMM on the same thread pool:
//          the ceiling xfer's conv base can reach with that SGEMM
//
//   xfer-bench [xfer|ops|direct|sgemm] [--batch 16] [--size 224] [--threads N] [--runs 5] [--warmup 1] [--conv auto|im2col|winograd]
//              [--checkpoint FILE]   (xfer mode: that model instead of VGG16, at its input size)
//              [--no-fold]           (keep BatchNormalization layers apart from their convolutions)
//              [--direct-pixels N]   (output pixels per oneDNN direct-convolution call at least)
//
// Prints one line of key=value figures: the median over the timed runs, GFLOP/s
// counted as 2·M·N·K over the convolutions, and the process's peak RSS.

import Foundation
import XferKit
#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var mode = "xfer"
    var batch = 16
    var size = 224
    var threads = ProcessInfo.processInfo.activeProcessorCount
    var runs = 5
    var warmup = 1
    var checkpoint: String?

    init(_ args: [String]) {
        var i = 0
        func value() -> Int {
            i += 1
            guard i < args.count, let v = Int(args[i]) else { fail("\(args[i - 1]) needs a number") }
            return v
        }
        while i < args.count {
            switch args[i] {
            case "xfer", "sgemm", "layers", "ops", "direct": mode = args[i]
            case "--batch": batch = value()
            case "--size": size = value()
            case "--threads": threads = value()
            case "--runs": runs = value()
            case "--warmup": warmup = value()
            case "--no-fold": Network.foldsForInference = false
            case "--direct-pixels": DirectConvolution.pixelsPerCall = value()
            case "--checkpoint":
                i += 1
                guard i < args.count else { fail("--checkpoint needs a file") }
                checkpoint = args[i]
            case "--conv":
                i += 1
                guard i < args.count, let path = ConvolutionPath(rawValue: args[i]) else { fail("--conv takes auto, im2col or winograd") }
                Convolution.path = path
            default: fail("unknown argument \(args[i])")
            }
            i += 1
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write("xfer-bench: \(message)\n".data(using: .utf8)!)
    exit(2)
}

/// Uniform in [-limit, limit), reproducible.
struct Noise {
    var state: UInt64 = 0x2545_F491_4F6C_DD1D
    mutating func next(_ limit: Float) -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * limit
    }
    mutating func values(_ count: Int, _ limit: Float) -> [Float] { (0..<count).map { _ in next(limit) } }
}

/// Keras `VGG16(include_top=False, weights=None, input_shape=(size, size, 3))`, Glorot-uniform kernels.
func vgg16ConvBase(size: Int) -> ModelSpec {
    var noise = Noise()
    var layers = [LayerSpec(name: "input_layer", className: "InputLayer", kind: .input)]
    var channels = 3
    let blocks = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    for (b, (filters, convs)) in blocks.enumerated() {
        for c in 1...convs {
            let fanIn = 9 * channels, fanOut = 9 * filters
            let limit = (6 / Float(fanIn + fanOut)).squareRoot()
            let kernel = WeightSpec(role: .kernel, shape: [3, 3, channels, filters],
                                    values: noise.values(fanIn * filters, limit))
            let bias = WeightSpec(role: .bias, shape: [filters], values: noise.values(filters, 0.01))
            layers.append(LayerSpec(name: "block\(b + 1)_conv\(c)", className: "Conv2D",
                                    kind: .conv2D(Conv2DConfig(filters: filters, kernelSize: (3, 3), padding: .same,
                                                               activation: .relu)),
                                    weights: [kernel, bias]))
            channels = filters
        }
        layers.append(LayerSpec(name: "block\(b + 1)_pool", className: "MaxPooling2D",
                                kind: .maxPooling2D(Pool2DConfig(poolSize: (2, 2)))))
    }
    return ModelSpec(name: "vgg16", className: "Functional", inputShape: [size, size, 3], layers: layers)
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

func peakRSSMegabytes() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024  // KiB
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1048576  // bytes
    #endif
}

/// Times `body` `runs` times after `warmup` untimed runs; the seconds of each timed run.
func time(runs: Int, warmup: Int, _ body: () -> Void) -> [Double] {
    for _ in 0..<warmup { body() }
    return (0..<runs).map { _ in
        let t0 = now()
        body()
        return now() - t0
    }
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
ThreadPool.shared.threadCount = options.threads

/// `layers`: per shape (side, in, out), the median forward and backward seconds in both cores.
func timeLayers() throws {
    let shapes = [(224, 3, 64), (224, 64, 64), (112, 128, 128), (56, 256, 256), (28, 512, 512), (14, 512, 512),
                  (56, 64, 64), (28, 128, 128), (14, 256, 256), (7, 512, 512), (56, 128, 32), (14, 128, 32),
                  (56, 16, 16), (56, 32, 32), (28, 32, 32), (14, 64, 64), (7, 64, 64)]
    print("side in out | fwd im2col ms | fwd winograd ms | fwd ratio | bwd im2col ms | bwd winograd ms | bwd ratio")
    for (side, c, o) in shapes {
        var noise = Noise(state: UInt64(side * 1000 + c))
        let config = Conv2DConfig(filters: o, kernelSize: (3, 3), padding: .same, activation: .relu)
        let layer = try Conv2DLayer(name: "c", config: config, inputShape: [side, side, c],
                                    kernel: noise.values(9 * c * o, (6 / Float(9 * (c + o))).squareRoot()),
                                    bias: noise.values(o, 0.01))
        layer.trainable = true
        let x = Tensor(shape: [options.batch, side, side, c], values: noise.values(options.batch * side * side * c, 1))
        let dy = Tensor(shape: [options.batch, side, side, o], values: noise.values(options.batch * side * side * o, 1))
        var figures: [(Double, Double)] = []
        for path in [ConvolutionPath.im2col, .winograd] {
            Convolution.path = path
            let context = ForwardContext(keepForBackward: true)
            let forward = median(time(runs: options.runs, warmup: options.warmup) { _ = layer.forward(x, context) })
            let backward = median(time(runs: options.runs, warmup: options.warmup) {
                _ = layer.backward(dy, context, needInputGradient: true)
            })
            figures.append((forward, backward))
        }
        print(String(format: "%d %d %d | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f", side, c, o,
                     figures[0].0 * 1e3, figures[1].0 * 1e3, figures[0].0 / figures[1].0,
                     figures[0].1 * 1e3, figures[1].1 * 1e3, figures[0].1 / figures[1].1))
    }
}
/// `direct`: per shape of the families' convolutions other than 3×3 stride 1, the median forward
/// (a pass that keeps nothing) on im2col + SGEMM (depthwise: its loop) and on oneDNN's direct
/// convolution, the two alternating run by run so that a loaded machine slows both alike.
func timeDirect() throws {
    // (side, in, out, kernel, stride, depthwise multiplier or 0)
    let shapes = [(56, 64, 256, 1, 1, 0), (56, 256, 64, 1, 1, 0), (28, 512, 128, 1, 1, 0), (14, 1024, 256, 1, 1, 0),
                  (7, 2048, 512, 1, 1, 0), (112, 16, 96, 1, 1, 0), (56, 144, 24, 1, 1, 0), (14, 384, 64, 1, 1, 0),
                  (56, 256, 512, 1, 2, 0), (28, 512, 1024, 1, 2, 0), (230, 3, 64, 7, 2, 0), (224, 3, 32, 3, 2, 0),
                  (7, 512, 512, 3, 1, 0), (112, 32, 32, 3, 1, 1), (113, 96, 96, 3, 2, 1), (56, 144, 144, 3, 1, 1),
                  (28, 192, 192, 3, 1, 1), (14, 576, 576, 3, 1, 1), (28, 240, 240, 5, 1, 1), (14, 480, 480, 5, 1, 1),
                  (7, 1152, 1152, 5, 1, 1), (28, 32, 64, 3, 1, 2)]
    print("side in out k stride dw | im2col ms | direct ms | ratio")
    for (side, c, o, k, s, m) in shapes {
        var noise = Noise(state: UInt64(side * 1000 + c))
        let x = Tensor(shape: [options.batch, side, side, c], values: noise.values(options.batch * side * side * c, 1))
        // One layer as a network (depthwise: a Conv2D with groups = channels, as ConvNeXt writes it).
        let filters = m > 0 ? c * m : o
        let kernel = WeightSpec(role: .kernel, shape: [k, k, m > 0 ? 1 : c, filters],
                                values: noise.values(k * k * (m > 0 ? 1 : c) * filters, (6 / Float(k * k * (c + filters))).squareRoot()))
        let bias = WeightSpec(role: .bias, shape: [filters], values: noise.values(filters, 0.01))
        let config = Conv2DConfig(filters: filters, kernelSize: (k, k), strides: (s, s), padding: s == 1 ? .same : .valid,
                                  activation: m > 0 ? .relu6 : .relu, groups: m > 0 ? c : 1)
        let spec = ModelSpec(name: "one", className: "Functional", inputShape: [side, side, c],
                             layers: [LayerSpec(name: "input_layer", className: "InputLayer", kind: .input),
                                      LayerSpec(name: "conv", className: "Conv2D", kind: .conv2D(config), weights: [kernel, bias])])
        let network = try Network(spec: spec)
        var times: [[Double]] = [[], []]
        for round in 0..<(options.runs + options.warmup) {
            for (p, path) in [ConvolutionPath.im2col, .auto].enumerated() {
                Convolution.path = path
                let t0 = now()
                _ = try network.predict(x, batchSize: options.batch)
                if round >= options.warmup { times[p].append(now() - t0) }
            }
        }
        let a = median(times[0]), b = median(times[1])
        print(String(format: "%d %d %d %d %d %d | %.2f | %.2f | %.2f", side, c, o, k, s, m, a * 1e3, b * 1e3, a / b))
    }
}
if options.mode == "direct" {
    try timeDirect()
    exit(0)
}
if options.mode == "layers" {
    try timeLayers()
    exit(0)
}

let spec = try options.checkpoint.map { try Checkpoint.load($0).model } ?? vgg16ConvBase(size: options.size)
let size = spec.inputShape[0]
let network = try Network(spec: spec)
let gemms = network.convolutionGEMMs(batch: options.batch)
// Direct-convolution FLOPs (2·M·N·K of the im2col GEMMs), whichever core runs them.
let flops = gemms.reduce(0.0) { $0 + 2 * Double($1.m) * Double($1.n) * Double($1.k) * Double($1.count) }

var seconds: [Double]
switch options.mode {
case "xfer":
    var noise = Noise(state: 7)
    let x = Tensor(shape: [options.batch, size, size, 3], values: noise.values(options.batch * size * size * 3, 1))
    var sink: Float = 0
    seconds = time(runs: options.runs, warmup: options.warmup) {
        let y = try! network.predict(x, batchSize: options.batch)
        sink += y.values[0]
    }
    if sink.isNaN { print("nan") }
case "ops":
    var noise = Noise(state: 7)
    let x = Tensor(shape: [options.batch, size, size, 3], values: noise.values(options.batch * size * size * 3, 1))
    for _ in 0..<options.warmup { _ = try network.predict(x, batchSize: options.batch) }
    var perRun: [[Double]] = []
    seconds = []
    for _ in 0..<options.runs {
        network.timesLayers = true
        let t0 = now()
        _ = try network.predict(x, batchSize: options.batch)
        seconds.append(now() - t0)
        perRun.append(network.layerSeconds.map(\.seconds))
    }
    network.timesLayers = false
    let nodes = network.graph.nodes
    let layerMedian = nodes.indices.map { i in median(perRun.map { $0[i] }) }
    /// The kind a node's time is summed under.
    func kind(_ node: GraphNode) -> String {
        guard case .op(let op) = node.layer.kind, let c = op as? Conv2DConfig else { return node.layer.className }
        if c.groups > 1 { return "Conv2D depthwise" }
        if c.kernelSize == (1, 1) { return c.strides == (1, 1) ? "Conv2D 1x1" : "Conv2D 1x1 strided" }
        if c.strides != (1, 1) { return "Conv2D \(c.kernelSize.h)x\(c.kernelSize.w) strided" }
        return c.kernelSize == (3, 3) ? "Conv2D 3x3 stride 1" : "Conv2D \(c.kernelSize.h)x\(c.kernelSize.w)"
    }
    var byKind: [String: (Double, Int)] = [:]
    for (i, node) in nodes.enumerated() {
        let k = kind(node)
        byKind[k, default: (0, 0)].0 += layerMedian[i]
        byKind[k, default: (0, 0)].1 += 1
    }
    let total = layerMedian.reduce(0, +)
    print("kind | layers | ms | share")
    for (k, v) in byKind.sorted(by: { $0.value.0 > $1.value.0 }) {
        print(String(format: "%@ | %d | %.1f | %.1f%%", k, v.1, v.0 * 1e3, v.0 / total * 100))
    }
    print("layer | kind | input | output | ms")
    for i in nodes.indices.sorted(by: { layerMedian[$0] > layerMedian[$1] }).prefix(40) {
        let n = nodes[i]
        print(String(format: "%@ | %@ | %@ | %@ | %.2f", n.path, kind(n), "\(n.inputShapes.first ?? [])", "\(n.outputShape)",
                     layerMedian[i] * 1e3))
    }
default:
    // Per thread: its own A and C, large enough for every shape; B shared, as in the engine.
    let threads = ThreadPool.shared.threadCount
    let maxA = gemms.map { $0.m * $0.k }.max()!, maxB = gemms.map { $0.k * $0.n }.max()!
    let maxC = gemms.map { $0.m * $0.n }.max()!
    var noise = Noise(state: 11)
    func buffer(_ count: Int, _ limit: Float) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
        for i in 0..<count { p[i] = noise.next(limit) }
        return p
    }
    let a = (0..<threads).map { _ in buffer(maxA, 1) }
    let b = buffer(maxB, 0.05)
    let c = (0..<threads).map { _ in buffer(maxC, 0) }
    seconds = time(runs: options.runs, warmup: options.warmup) {
        for g in gemms {
            parallelFor(g.count) { _, worker in
                GEMM.sgemm(m: g.m, n: g.n, k: g.k, a: a[worker], lda: g.k, b: b, ldb: g.n, c: c[worker], ldc: g.n)
            }
        }
    }
}

let med = median(seconds)
print(String(format: "mode=%@ batch=%d size=%d threads=%d runs=%d median_s=%.4f min_s=%.4f max_s=%.4f img_per_s=%.2f gflops=%.1f peak_rss_mb=%.0f workspace_mb=%.1f folded_bn=%ld folded_pad=%ld folded_add=%ld",
             options.mode, options.batch, size, options.threads, options.runs, med,
             seconds.min()!, seconds.max()!, Double(options.batch) / med, flops / med * 1e-9,
             peakRSSMegabytes(), Double(network.workspaceBytes) / 1048576, network.foldedBatchNormalizations, network.foldedPaddings,
             network.foldedResiduals))
