// Every layer kind of the registry (Ops/Registry.swift) through checkOp (OpCheck.swift): one
// line per kind, with the kind's naive oracle where it has one. Piecewise-linear kinds
// (activations with kinks, max pooling) are checked on settings away from their kinks here;
// LayerGradientTests and BackwardTests cover the kinks themselves.

import XCTest
@testable import XferKit

final class OpTests: XCTestCase {
    /// Conv2D by the definition's loops (conv2DForwardNaive).
    let convOracle: OpOracle<Conv2DConfig> = { c, x, w, _ in
        conv2DForwardNaive(x[0], ConvGeometry(input: Array(x[0].shape.dropFirst()), c)!, kernel: w["kernel"]!, bias: w["bias"], c.activation).values
    }

    /// DepthwiseConv2D by the definition's loops (depthwiseForwardNaive), linear activation.
    let depthwiseOracle: OpOracle<DepthwiseConv2DConfig> = { c, x, w, _ in
        let d = DepthwiseGeometry(input: Array(x[0].shape.dropFirst()), kernelSize: c.kernelSize, strides: c.strides,
                                  padding: c.padding, dilation: c.dilation, multiplier: c.depthMultiplier)!
        return depthwiseForwardNaive(x[0], d, kernel: w["depthwise_kernel"]!, bias: w["bias"]).values
    }

    /// SeparableConv2D: the naive depthwise, then the naive 1×1 convolution with the bias.
    let separableOracle: OpOracle<SeparableConv2DConfig> = { c, x, w, _ in
        let d = DepthwiseGeometry(input: Array(x[0].shape.dropFirst()), kernelSize: c.kernelSize, strides: c.strides,
                                  padding: c.padding, dilation: c.dilation, multiplier: c.depthMultiplier)!
        let t = depthwiseForwardNaive(x[0], d, kernel: w["depthwise_kernel"]!, bias: nil)
        let pointwise = Conv2DConfig(filters: c.filters, kernelSize: (1, 1), activation: c.activation)
        return conv2DForwardNaive(t, ConvGeometry(input: Array(t.shape.dropFirst()), pointwise)!, kernel: w["pointwise_kernel"]!,
                                  bias: w["bias"], c.activation).values
    }

    /// Dense: y = act(x·W + b) on the last axis, summed in Double (linear activation only).
    let denseOracle: OpOracle<DenseConfig> = { _, x, w, out in
        let units = out.last!, fanIn = x[0].shape.last!, rows = x[0].count / fanIn
        return (0..<rows * units).map { i in
            let (row, u) = (i / units, i % units)
            var s = Double(w["bias"]?[u] ?? 0)
            for k in 0..<fanIn { s += Double(x[0].values[row * fanIn + k]) * Double(w["kernel"]![k * units + u]) }
            return Float(s)
        }
    }

    /// Elementwise merges by their naive broadcast (elementwiseMergeForwardNaive).
    func mergeOracle<M: ElementwiseMergeOp>(_ m: M.Type) -> OpOracle<MergeOp> {
        { _, x, _, out in elementwiseMergeForwardNaive(m, x, outputShape: out).values }
    }

    /// Concatenate element by element (concatenateNaive); Keras's axis counts the batch axis.
    let concatenateOracle: OpOracle<MergeOp> = { op, x, _, _ in
        guard case .concatenate(let axis) = op else { fatalError("not a concatenation") }
        return concatenateNaive(x, axis: axis < 0 ? x[0].rank + axis : axis).values
    }

    func testConv2D() throws { try checkOp(Conv2DConfig(filters: 3, kernelSize: (2, 3), strides: (1, 2), padding: .same, activation: .tanh), inputs: [[4, 5, 2]], output: [4, 3, 3], oracle: convOracle) }
    func testConv2DDilatedValidNoBias() throws { try checkOp(Conv2DConfig(filters: 2, kernelSize: (3, 3), padding: .valid, dilation: (2, 1), useBias: false), className: "Convolution2D", inputs: [[6, 4, 2]], output: [2, 2, 2], oracle: convOracle) }
    func testDepthwiseConv2D() throws { try checkOp(DepthwiseConv2DConfig(kernelSize: (3, 3), strides: (2, 2), padding: .same), inputs: [[5, 4, 3]], output: [3, 2, 3], oracle: depthwiseOracle) }
    func testDepthwiseConv2DMultiplierDilated() throws { try checkOp(DepthwiseConv2DConfig(kernelSize: (2, 3), padding: .valid, depthMultiplier: 2, dilation: (2, 1), useBias: false), inputs: [[5, 4, 2]], output: [3, 2, 4], oracle: depthwiseOracle) }
    func testSeparableConv2D() throws { try checkOp(SeparableConv2DConfig(filters: 3, kernelSize: (3, 3), strides: (1, 2), padding: .same, depthMultiplier: 2), className: "SeparableConvolution2D", inputs: [[4, 5, 2]], output: [4, 3, 3], oracle: separableOracle) }
    func testConv2DGroupsEqualChannels() throws { try checkOp(Conv2DConfig(filters: 6, kernelSize: (3, 3), padding: .same, groups: 3), inputs: [[4, 4, 3]], output: [4, 4, 6], oracle: { c, x, w, _ in
        let d = DepthwiseGeometry(input: Array(x[0].shape.dropFirst()), kernelSize: c.kernelSize, strides: c.strides, padding: c.padding, dilation: c.dilation, multiplier: 2)!
        return depthwiseForwardNaive(x[0], d, kernel: w["kernel"]!, bias: w["bias"]).values
    }) }
    /// Grouped Conv2D (1 < groups < channels) by the definition's loops (groupedConv2DForwardNaive).
    let groupedOracle: OpOracle<Conv2DConfig> = { c, x, w, _ in
        var one = c
        one.filters = c.filters / c.groups
        let shape = Array(x[0].shape.dropFirst())
        let g = ConvGeometry(input: [shape[0], shape[1], shape[2] / c.groups], one)!
        return groupedConv2DForwardNaive(x[0], g, groups: c.groups, kernel: w["kernel"]!, bias: w["bias"], c.activation).values
    }
    func testConv2DGrouped() throws { try checkOp(Conv2DConfig(filters: 6, kernelSize: (3, 3), strides: (1, 2), padding: .same, activation: .tanh, groups: 2), inputs: [[4, 5, 4]], output: [4, 3, 6], oracle: groupedOracle) }
    func testConv2DGroupedDilatedValidNoBias() throws { try checkOp(Conv2DConfig(filters: 4, kernelSize: (2, 3), padding: .valid, dilation: (2, 1), useBias: false, groups: 2), inputs: [[5, 4, 6]], output: [3, 2, 4], oracle: groupedOracle) }
    func testCropping2D() throws { try checkOp(Cropping2DConfig(top: 1, bottom: 0, left: 2, right: 1), inputs: [[4, 5, 2]], output: [3, 2, 2], oracle: { _, x, _, _ in
        var kept: [Float] = []
        for n in 0..<2 { for i in 1..<4 { for j in 2..<4 { for c in 0..<2 { kept.append(x[0].values[((n * 4 + i) * 5 + j) * 2 + c]) } } } }
        return kept
    }) }
    func testReshape() throws { try checkOp(ReshapeConfig(targetShape: [1, -1, 4]), inputs: [[2, 2, 2]], output: [1, 2, 4], oracle: { _, x, _, _ in x[0].values }) }
    func testNormalizationFromConfig() throws { try checkOp(NormalizationConfig(mean: [1, -2, 0.5], variance: [4, 0.25, 1e-16]), inputs: [[2, 3]], output: [2, 3], oracle: { op, x, _, _ in
        x[0].values.enumerated().map { i, v in (v - op.mean![i % 3]) / max(op.variance![i % 3].squareRoot(), 1e-7) }
    }) }
    func testNormalizationFromWeights() throws { try checkOp(NormalizationConfig(), inputs: [[3, 2]], output: [3, 2]) }
    func testTensorOp() throws { try checkOp(TensorOpConfig(function: .divide, constant: [127.5]), inputs: [[2, 3]], oracle: { _, x, _, _ in x[0].values.map { $0 / 127.5 } }) }
    func testTensorOpPerChannel() throws { try checkOp(TensorOpConfig(function: .add, constant: [-103.939, -116.779, -123.68]), inputs: [[2, 3]], oracle: { op, x, _, _ in x[0].values.enumerated().map { $1 + op.constant[$0 % 3] } }) }
    func testTensorOpReverse() throws { try checkOp(TensorOpConfig(function: .reverseChannels, constant: []), className: "SlicingOpLambda", inputs: [[2, 3]], oracle: { _, x, _, _ in
        stride(from: 0, to: x[0].count, by: 3).flatMap { i in [x[0].values[i + 2], x[0].values[i + 1], x[0].values[i]] }
    }) }
    func testCustomScaleLayer() throws { try checkOp(CustomScaleConfig(scale: 0.17), inputs: [[2, 2, 3], [2, 2, 3]], output: [2, 2, 3], oracle: { op, x, _, _ in zip(x[0].values, x[1].values).map { $0 + $1 * op.scale } }) }
    func testLayerNormalization() throws { try checkOp(LayerNormalizationConfig(epsilon: 1e-6), inputs: [[2, 5]], output: [2, 5], oracle: { op, x, w, _ in layerNormForwardNaive(x[0], gamma: w["gamma"], beta: w["beta"], epsilon: op.epsilon) }) }
    func testLayerNormalizationScaleOnly() throws { try checkOp(LayerNormalizationConfig(center: false), inputs: [[4]], oracle: { op, x, w, _ in layerNormForwardNaive(x[0], gamma: w["gamma"], beta: nil, epsilon: op.epsilon) }) }
    func testLayerScale() throws { try checkOp(LayerScaleConfig(initValues: 1e-6, projectionDim: 3), inputs: [[2, 3]], oracle: { _, x, w, _ in x[0].values.enumerated().map { $1 * w["gamma"]![$0 % 3] } }) }
    func testMaxPooling2D() throws { try checkOp(MaxPooling2DConfig(Pool2DConfig(poolSize: (2, 2), strides: (1, 2), padding: .same)), inputs: [[3, 4, 2]], output: [3, 2, 2]) }
    func testAveragePooling2D() throws { try checkOp(AveragePooling2DConfig(Pool2DConfig(poolSize: (3, 2), padding: .same)), className: "AvgPool2D", inputs: [[4, 5, 2]], output: [2, 3, 2]) }
    func testGlobalAveragePooling2D() throws { try checkOp(GlobalAveragePooling2DConfig(keepdims: true), inputs: [[3, 4, 2]], output: [1, 1, 2]) }
    func testGlobalMaxPooling2D() throws { try checkOp(GlobalMaxPooling2DConfig(keepdims: false), inputs: [[3, 3, 2]], output: [2]) }
    // The 1-D kinds on sequences (T, C); their Keras outputs: NonImageCLITests (seq_pool, seq).
    func testConv1D() throws { try checkOp(Conv1DConfig(filters: 3, kernelSize: 3, stride: 2, padding: .same, dilation: 1, activation: .tanh), inputs: [[7, 2]], output: [4, 3], oracle: { c, x, w, _ in
        let image = x[0].reshaped([x[0].shape[0], 1] + Array(x[0].shape.dropFirst()))
        return conv2DForwardNaive(image, ConvGeometry(input: Array(image.shape.dropFirst()), c.asConv2D)!, kernel: w["kernel"]!, bias: w["bias"], c.activation).values
    }) }
    func testConv1DDilatedValidNoBias() throws { try checkOp(Conv1DConfig(filters: 2, kernelSize: 2, padding: .valid, dilation: 2, useBias: false), className: "Convolution1D", inputs: [[6, 3]], output: [4, 2], oracle: { c, x, w, _ in
        let image = x[0].reshaped([x[0].shape[0], 1] + Array(x[0].shape.dropFirst()))
        return conv2DForwardNaive(image, ConvGeometry(input: Array(image.shape.dropFirst()), c.asConv2D)!, kernel: w["kernel"]!, bias: nil, .linear).values
    }) }
    func testGlobalAveragePooling1D() throws { try checkOp(GlobalAveragePooling1DConfig(keepdims: true), inputs: [[5, 3]], output: [1, 3], oracle: { _, x, _, _ in
        sequencePool(x[0], { $0.reduce(0, +) / Float($0.count) })
    }) }
    func testGlobalMaxPooling1D() throws { try checkOp(GlobalMaxPooling1DConfig(), className: "GlobalMaxPool1D", inputs: [[4, 2]], output: [2], oracle: { _, x, _, _ in
        sequencePool(x[0], { $0.max()! })
    }) }
    // Keras's outputs for these: OpParityTests (checkpoints/ops).
    func testPermute() throws { try checkOp(PermuteConfig(dims: [3, 1, 2]), inputs: [[2, 3, 4]], output: [4, 2, 3], oracle: { _, x, _, _ in
        var y: [Float] = []
        for n in 0..<2 { for c in 0..<4 { for h in 0..<2 { for w in 0..<3 { y.append(x[0].values[((n * 2 + h) * 3 + w) * 4 + c]) } } } }
        return y
    }) }
    func testPermuteSwap() throws { try checkOp(PermuteConfig(dims: [2, 1]), inputs: [[3, 2]], output: [2, 3], oracle: { _, x, _, _ in
        var y: [Float] = []
        for n in 0..<2 { for a in 0..<2 { for b in 0..<3 { y.append(x[0].values[(n * 3 + b) * 2 + a]) } } }
        return y
    }) }
    func testIdentity() throws { try checkOp(IdentityConfig(), inputs: [[2, 3]], output: [2, 3], oracle: { _, x, _, _ in x[0].values }) }
    func testRescalingPerChannel() throws {
        var op = RescalingConfig(scale: 1, offset: 0)
        op.channelScale = [0.5, -2, 4]; op.channelOffset = [1, 0, -3]
        try checkOp(op, inputs: [[2, 3]], oracle: { op, x, _, _ in x[0].values.enumerated().map { i, v in v * op.channelScale![i % 3] + op.channelOffset![i % 3] } })
    }
    func testDropoutNoiseShape() throws { try checkOp(DropoutConfig(rate: 0.3, noiseShape: [nil, 1, 1, 3]), inputs: [[2, 2, 3]], output: [2, 2, 3], oracle: { _, x, _, _ in x[0].values }) }
    func testSpatialDropout2D() throws { try checkOp(SpatialDropout2DConfig(rate: 0.2, seed: 5), inputs: [[2, 3, 2]], oracle: { _, x, _, _ in x[0].values }) }
    func testStochasticDepth() throws { try checkOp(StochasticDepthConfig(rate: 0.25), inputs: [[2, 2, 3]], oracle: { _, x, _, _ in x[0].values }) }
    func testTensorOpChannel() throws { try checkOp(TensorOpConfig(function: .channel, constant: [], index: -1), className: "SlicingOpLambda", inputs: [[2, 3]], output: [2], oracle: { _, x, _, _ in
        stride(from: 2, to: x[0].count, by: 3).map { x[0].values[$0] }
    }) }
    func testTensorOpStack() throws { try checkOp(TensorOpConfig(function: .stack, constant: []), inputs: [[2, 2], [2, 2], [2, 2]], output: [2, 2, 3], oracle: { _, x, _, _ in
        (0..<(x[0].count * 3)).map { i in x[i % 3].values[i / 3] }
    }) }
    func testTensorOpGeluApproximate() throws { try checkOp(TensorOpConfig(function: .gelu, constant: [], index: 1), inputs: [[2, 3]], oracle: { _, x, _, _ in
        x[0].values.map { v in Float(0.5 * Double(v) * (1 + tanh((2 / Double.pi).squareRoot() * (Double(v) + 0.044715 * pow(Double(v), 3))))) }
    }) }
    func testTensorOpGeluExact() throws { try checkOp(TensorOpConfig(function: .gelu, constant: []), inputs: [[4]], oracle: { _, x, _, _ in
        x[0].values.map { v in Float(0.5 * Double(v) * (1 + erf(Double(v) / 2.0.squareRoot()))) }
    }) }
    func testFlatten() throws { try checkOp(FlattenConfig(), inputs: [[2, 2, 3]], output: [12], oracle: { _, x, _, _ in x[0].values }) }
    func testDense() throws { try checkOp(DenseConfig(units: 3), inputs: [[5]], output: [3], oracle: denseOracle) }
    func testDenseOnImages() throws { try checkOp(DenseConfig(units: 2, useBias: false, activation: .sigmoid), inputs: [[2, 3, 4]], output: [2, 3, 2]) }
    func testDropout() throws { try checkOp(DropoutConfig(rate: 0.5, seed: 3), inputs: [[3, 4]], output: [3, 4], oracle: { _, x, _, _ in x[0].values }) }
    func testBatchNormalization() throws { try checkOp(BatchNormConfig(momentum: 0.9, epsilon: 1e-3), inputs: [[2, 3, 4]], output: [2, 3, 4]) }
    func testBatchNormalizationTraining() throws { try checkOp(BatchNormConfig(center: false), inputs: [[3]], batch: 4, training: true) }
    func testActivation() throws { try checkOp(ActivationConfig(.gelu), inputs: [[3, 4]], output: [3, 4]) }
    func testHardSigmoid() throws { try checkOp(ActivationConfig(.hardSigmoid), inputs: [[6]], scale: 5, signature: { x in x[0].values.map { $0 > -3 && $0 < 3 ? 1 : 0 } }) }
    func testHardSilu() throws { try checkOp(ActivationConfig(.hardSilu), inputs: [[6]], scale: 5, signature: { x in x[0].values.map { $0 > -3 && $0 < 3 ? 1 : 0 } }) }
    func testSoftmax() throws { try checkOp(ActivationConfig(.softmax), className: "Softmax", inputs: [[2, 5]], output: [2, 5]) }
    func testReLU() throws { try checkOp(ReLUConfig(maxValue: 6, negativeSlope: 0.1), inputs: [[3, 4]], scale: 3, signature: { x in x[0].values.map { Int32(($0 > 0 ? 1 : 0) + ($0 > 6 ? 2 : 0)) } }) }
    func testLeakyReLU() throws { try checkOp(ReLUConfig(negativeSlope: 0.2), className: "LeakyReLU", inputs: [[7]], signature: { x in x[0].values.map { $0 > 0 ? 1 : 0 } }) }
    func testRescaling() throws { try checkOp(RescalingConfig(scale: 1 / 127.5, offset: -1), inputs: [[2, 2, 3]], oracle: { op, x, _, _ in x[0].values.map { $0 * op.scale + op.offset } }) }
    func testZeroPadding2D() throws { try checkOp(ZeroPadding2DConfig(top: 1, bottom: 2, left: 0, right: 1), inputs: [[3, 2, 2]], output: [6, 3, 2]) }
    func testAdd() throws { try checkOp(MergeOp.add, inputs: [[2, 3, 4], [2, 3, 4], [1, 1, 4]], output: [2, 3, 4], oracle: mergeOracle(AddOp.self)) }
    func testSubtract() throws { try checkOp(MergeOp.subtract, inputs: [[2, 3], [3]], output: [2, 3], oracle: mergeOracle(SubtractOp.self)) }
    func testMultiply() throws { try checkOp(MergeOp.multiply, inputs: [[2, 2, 3], [1, 1, 3]], output: [2, 2, 3], oracle: mergeOracle(MultiplyOp.self)) }
    func testAverage() throws { try checkOp(MergeOp.average, inputs: [[4], [4]], output: [4], oracle: mergeOracle(AverageOp.self)) }
    func testMaximum() throws { try checkOp(MergeOp.maximum, inputs: [[2, 3], [2, 3]], output: [2, 3], oracle: mergeOracle(MaximumOp.self), signature: { x in zip(x[0].values, x[1].values).map { $0 >= $1 ? 1 : 0 } }) }
    func testMinimum() throws { try checkOp(MergeOp.minimum, inputs: [[3], [3]], output: [3], oracle: mergeOracle(MinimumOp.self), signature: { x in zip(x[0].values, x[1].values).map { $0 <= $1 ? 1 : 0 } }) }
    func testConcatenate() throws { try checkOp(MergeOp.concatenate(axis: -1), inputs: [[2, 2, 3], [2, 2, 1]], output: [2, 2, 4], oracle: concatenateOracle) }
    func testConcatenateRows() throws { try checkOp(MergeOp.concatenate(axis: 1), inputs: [[1, 3], [2, 3]], output: [3, 3], oracle: concatenateOracle) }

    /// The fast depthwise backward (per-sample runs, dKernel partials) against the loops of its definition.
    func testDepthwiseBackwardMatchesTheDefinition() {
        var rng = XferKit.SeededRandom(seed: 11)
        for (multiplier, strides, padding) in [(1, (1, 1), Padding.same), (3, (2, 2), .valid), (2, (2, 1), .same)] {
            let d = DepthwiseGeometry(input: [7, 6, 4], kernelSize: (3, 3), strides: strides, padding: padding,
                                      dilation: (1, 1), multiplier: multiplier)!
            let n = 3
            let x = Tensor(shape: [n, 7, 6, 4], values: (0..<(n * 7 * 6 * 4)).map { _ in rng.uniform(-1, 1) })
            let kernel = (0..<(9 * 4 * multiplier)).map { _ in rng.uniform(-1, 1) }
            let dz = Tensor(shape: [n, d.conv.oh, d.conv.ow, d.conv.o], values: (0..<(n * d.conv.oh * d.conv.ow * d.conv.o)).map { _ in rng.uniform(-1, 1) })
            let want = depthwiseBackwardNaive(x, d, kernel: kernel, dz: dz)
            var dk = [Float](repeating: 0, count: kernel.count)
            var dx = [Float](repeating: 0, count: x.count)
            x.values.withUnsafeBufferPointer { px in
                kernel.withUnsafeBufferPointer { pk in
                    dz.values.withUnsafeBufferPointer { pz in
                        dk.withUnsafeMutableBufferPointer { pdk in
                            dx.withUnsafeMutableBufferPointer { pdx in
                                depthwiseBackward(px.baseAddress!, batch: n, d, kernel: pk.baseAddress!, dz: pz.baseAddress!,
                                                  dKernel: pdk.baseAddress!, dx: pdx.baseAddress!)
                            }
                        }
                    }
                }
            }
            XCTAssertLessThan(zip(dk, want.dKernel).map { abs($0 - $1) }.max()!, 1e-4, "dKernel, multiplier \(multiplier)")
            XCTAssertLessThan(zip(dx, want.dx.values).map { abs($0 - $1) }.max()!, 1e-4, "dx, multiplier \(multiplier)")
        }
    }
    // The augmentation layers in inference mode: the identity, as Keras runs them outside
    // training (their training-mode transforms: AugmentationParityTests, against Keras).
    func testRandomFlip() throws { try checkOp(RandomFlipConfig(mode: .horizontal, seed: 3), inputs: [[3, 4, 2]], output: [3, 4, 2], oracle: { _, x, _, _ in x[0].values }) }
    func testRandomRotation() throws { try checkOp(RandomRotationConfig(lower: -0.2, upper: 0.1), inputs: [[3, 4, 2]], oracle: { _, x, _, _ in x[0].values }) }
    func testRandomZoom() throws { try checkOp(RandomZoomConfig(height: (-0.3, 0.2)), inputs: [[3, 4, 2]], oracle: { _, x, _, _ in x[0].values }) }
    func testRandomTranslation() throws { try checkOp(RandomTranslationConfig(height: (-0.1, 0.1), width: (0, 0.2)), inputs: [[3, 4, 2]], oracle: { _, x, _, _ in x[0].values }) }
    func testRandomContrast() throws { try checkOp(RandomContrastConfig(lower: 0, upper: 0.2), inputs: [[3, 4, 2]], oracle: { _, x, _, _ in x[0].values }) }
    func testRandomBrightness() throws { try checkOp(RandomBrightnessConfig(lower: -0.1, upper: 0.3, ranges: ChannelRanges(-1, 1)), inputs: [[3, 4, 2]], oracle: { _, x, _, _ in x[0].values }) }

    // Keras 3's RandomCrop at inference: the identity, at the crop's size and at another (the
    // image passes uncropped). tf-keras's crop and resize: RandomCropTests, against Keras and a naive oracle.
    func testRandomCrop() throws {
        try checkOp(RandomCropConfig(height: 3, width: 4, seed: 5, keras3: true), inputs: [[3, 4, 2]], output: [3, 4, 2], oracle: { _, x, _, _ in x[0].values })
        try checkOp(RandomCropConfig(height: 2, width: 2, keras3: true), inputs: [[3, 4, 2]], output: [3, 4, 2], oracle: { _, x, _, _ in x[0].values })
    }

    /// A kind added to the registry needs its line above.
    func testEveryRegisteredKindIsChecked() {
        let checked: [any LayerOp.Type] = [
            Conv2DConfig.self, DepthwiseConv2DConfig.self, SeparableConv2DConfig.self, MaxPooling2DConfig.self, AveragePooling2DConfig.self, GlobalAveragePooling2DConfig.self,
            GlobalMaxPooling2DConfig.self, FlattenConfig.self, DenseConfig.self, DropoutConfig.self, BatchNormConfig.self,
            ActivationConfig.self, ReLUConfig.self, RescalingConfig.self, ZeroPadding2DConfig.self, MergeOp.self,
            Cropping2DConfig.self, ReshapeConfig.self, NormalizationConfig.self, TensorOpConfig.self, CustomScaleConfig.self,
            LayerNormalizationConfig.self, LayerScaleConfig.self,
            Conv1DConfig.self, GlobalAveragePooling1DConfig.self, GlobalMaxPooling1DConfig.self,
            PermuteConfig.self, IdentityConfig.self, SpatialDropout2DConfig.self, StochasticDepthConfig.self,
            RandomFlipConfig.self, RandomRotationConfig.self, RandomZoomConfig.self, RandomTranslationConfig.self,
            RandomContrastConfig.self, RandomBrightnessConfig.self, RandomCropConfig.self,
        ]
        XCTAssertEqual(Set(checked.map { ObjectIdentifier($0) }), Set(layerOpTypes.map { ObjectIdentifier($0) }))
        XCTAssertEqual(supportedLayerClasses.count, Set(supportedLayerClasses).count)
    }
}

/// (N, T, C) → (N, C): `reduce` over the T values of each sample's channel.
private func sequencePool(_ x: Tensor, _ reduce: ([Float]) -> Float) -> [Float] {
    let (n, t, c) = (x.shape[0], x.shape[1], x.shape[2])
    var out: [Float] = []
    for b in 0..<n {
        for ch in 0..<c {
            var column: [Float] = []
            for step in 0..<t { column.append(x.values[(b * t + step) * c + ch]) }
            out.append(reduce(column))
        }
    }
    return out
}
