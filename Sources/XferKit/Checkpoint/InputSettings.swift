// What a model's image inputs need, and why (docs/CONTRACT.md, "What travels with the model"):
// the `preprocess_input` mode and the color mode its images are read with.
//
//   preprocessing  --preprocess; else the mode recorded with the model (xfer's outputs carry it);
//                  else `none` when the model's first layer already scales its inputs (Rescaling,
//                  Normalization: Keras 3 models built with preprocessing layers); else `none`
//                  for grayscale or rgba images (caffe and torch are per RGB channel); else `caffe`
//                  (VGG's, the ImageNet convention of keras.applications' VGG/ResNet50).
//   color mode     --color-mode; else the one recorded; else what the model's input channels take
//                  (1 grayscale, 3 rgb, 4 rgba).
//
// The CLI prints the result with its reason, so the mode used is never a silent guess.

/// The preprocessing and color mode for a model's image inputs, each with where it came from.
package struct InputSettings: Sendable, Equatable {
    package var preprocess: PreprocessMode
    package var preprocessReason: String
    package var colorMode: ColorMode
    package var colorModeReason: String

    /// Chooses both for `checkpoint` (see the file header); `preprocess` and `colorMode` are the
    /// command line's, nil when not given.
    package init(for checkpoint: Checkpoint, preprocess: PreprocessMode?, colorMode: ColorMode?) {
        let model = checkpoint.model
        let channels = model.inputShape.count == 3 ? model.inputShape[2] : 3
        if let colorMode {
            self.colorMode = colorMode; colorModeReason = "--color-mode"
        } else if let recorded = checkpoint.colorMode {
            self.colorMode = recorded; colorModeReason = "recorded with the model"
        } else if let mode = ColorMode(channels: channels) {
            self.colorMode = mode; colorModeReason = "the model takes \(channels) channel\(channels == 1 ? "" : "s")"
        } else {
            self.colorMode = .rgb; colorModeReason = "the default"
        }
        if let preprocess {
            self.preprocess = preprocess; preprocessReason = "--preprocess"
        } else if let recorded = checkpoint.preprocess {
            self.preprocess = recorded; preprocessReason = "recorded with the model"
        } else if let first = Self.firstScalingLayer(model) {
            self.preprocess = .none
            preprocessReason = "the model's first layer '\(first.name)' is a \(first.className): it scales its inputs itself"
        } else if self.colorMode != .rgb {
            self.preprocess = .none
            preprocessReason = "the images are \(self.colorMode.rawValue), and caffe and torch work on RGB only; --preprocess tf to scale to -1..1"
        } else {
            self.preprocess = .caffe
            preprocessReason = "the default, VGG's: the model records no mode and its first layer does not rescale; --preprocess to choose"
        }
    }

    /// The model's first layer after its input (inside a nested base too), when it rescales or
    /// normalises pixels.
    static func firstScalingLayer(_ model: ModelSpec) -> LayerSpec? {
        let first = model.flattenedLayers().map(\.layer).first { layer in
            if case .input = layer.kind { return false }
            return true
        }
        guard let first, ["Rescaling", "Normalization"].contains(first.className) else { return nil }
        return first
    }

    /// `Images: rgb (the model takes 3 channels); preprocessing: none (...)`, the line the CLI prints.
    package var line: String {
        "Images: \(colorMode.rawValue) (\(colorModeReason)); preprocessing: \(preprocess.rawValue) (\(preprocessReason))"
    }
}
