// The one list of layer kinds xfer runs (besides InputLayer and nested models). The parser
// finds a layer's op here by its Keras class name; `supportedLayerClasses` (the error hint,
// `xfer import --help`) is read from it. A new kind is its op's file plus one line here.

/// Every layer kind, in the order `xfer import --help` lists them.
let layerOpTypes: [any LayerOp.Type] = [
    Conv2DConfig.self,
    DepthwiseConv2DConfig.self,
    SeparableConv2DConfig.self,
    MaxPooling2DConfig.self,
    AveragePooling2DConfig.self,
    GlobalAveragePooling2DConfig.self,
    GlobalMaxPooling2DConfig.self,
    Conv1DConfig.self,
    GlobalAveragePooling1DConfig.self,
    GlobalMaxPooling1DConfig.self,
    FlattenConfig.self,
    DenseConfig.self,
    DropoutConfig.self,
    SpatialDropout2DConfig.self,
    BatchNormConfig.self,
    ActivationConfig.self,
    ReLUConfig.self,
    RescalingConfig.self,
    ZeroPadding2DConfig.self,
    Cropping2DConfig.self,
    ReshapeConfig.self,
    PermuteConfig.self,
    IdentityConfig.self,
    NormalizationConfig.self,
    TensorOpConfig.self,
    CustomScaleConfig.self,
    LayerNormalizationConfig.self,
    LayerScaleConfig.self,
    StochasticDepthConfig.self,
    RandomFlipConfig.self,
    RandomRotationConfig.self,
    RandomZoomConfig.self,
    RandomTranslationConfig.self,
    RandomContrastConfig.self,
    RandomBrightnessConfig.self,
    RandomCropConfig.self,
    MergeOp.self,
]

/// The op type of each Keras class name it reads (aliases included).
let layerOpsByClassName: [String: any LayerOp.Type] = {
    var byName: [String: any LayerOp.Type] = [:]
    for t in layerOpTypes {
        for n in t.kerasClassNames + t.kerasAliases {
            precondition(byName[n] == nil, "two layer ops read the Keras class \(n)")
            byName[n] = t
        }
    }
    return byName
}()

/// The Keras layer classes xfer reads (besides Sequential/Functional models of them).
package let supportedLayerClasses = ["InputLayer"] + layerOpTypes.flatMap { $0.kerasClassNames }
