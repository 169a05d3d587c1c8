// The modes of Keras's `imagenet_utils.preprocess_input`, applied to float32 RGB pixels in
// 0...255, channels last. Same float32 operations as Keras, so results agree to rounding.

/// How pixels are scaled before they enter the network (`--preprocess`).
///
/// ```swift
/// let photos = try DataSource(contentsOf: "checkpoints/fashion/test", preprocess: .tf)
/// ```
public enum PreprocessMode: String, CaseIterable, Sendable {
    /// Pixels stay in 0...255.
    case none
    /// VGG/ResNet50 (`vgg16.preprocess_input`): RGB → BGR, then subtract the ImageNet mean
    /// [103.939, 116.779, 123.68] (BGR order).
    case caffe
    /// Inception/MobileNet: x / 127.5 − 1, into −1...1.
    case tf
    /// DenseNet: x / 255, then subtract [0.485, 0.456, 0.406] and divide by [0.229, 0.224, 0.225].
    case torch

    /// Applies the mode in place to pixels laid out (..., 3) with RGB channels.
    ///
    /// ```swift
    /// var x: [Float] = [255, 128, 0]
    /// x.withUnsafeMutableBufferPointer { PreprocessMode.caffe.apply(to: $0) }
    /// // x == [0 - 103.939, 128 - 116.779, 255 - 123.68]
    /// ```
    package func apply(to x: UnsafeMutableBufferPointer<Float>) {
        apply(to: x, channels: 3)
    }

    /// Whether the mode works on `channels` channels: `caffe` and `torch` are per RGB channel
    /// (Keras fails on other counts), `none` and `tf` on any.
    package func accepts(channels: Int) -> Bool {
        channels == 3 || self == .none || self == .tf
    }

    /// Applies the mode in place to pixels laid out (..., channels); see ``accepts(channels:)``.
    package func apply(to x: UnsafeMutableBufferPointer<Float>, channels: Int) {
        precondition(accepts(channels: channels), "\(rawValue) needs 3 channels")
        precondition(x.count % channels == 0, "pixels must have \(channels) channels")
        switch self {
        case .none:
            return
        case .caffe:
            let mean: (Float, Float, Float) = (103.939, 116.779, 123.68)  // B, G, R
            for p in stride(from: 0, to: x.count, by: 3) {
                let r = x[p], b = x[p + 2]
                x[p] = b - mean.0
                x[p + 1] = x[p + 1] - mean.1
                x[p + 2] = r - mean.2
            }
        case .tf:
            for i in x.indices { x[i] = x[i] / 127.5 - 1 }
        case .torch:
            let mean: [Float] = [0.485, 0.456, 0.406]
            let std: [Float] = [0.229, 0.224, 0.225]
            for i in x.indices {
                let c = i % 3
                x[i] = (x[i] / 255 - mean[c]) / std[c]
            }
        }
    }
}
