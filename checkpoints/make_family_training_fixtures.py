"""Writes checkpoints/training/families/: training references for the keras.applications families.

One miniature of each family's wiring, built by Keras 3 from the family's own constructor or
block functions, `weights=None`, seeded, at 32×32 and narrow widths so the files stay small:

  resnet        keras.src.applications.resnet.ResNet with stack_residual_blocks_v1 stacks
                (residual Add, conv shortcut and identity shortcut, conv biases before BN)
  mobilenetv2   MobileNetV2's stem and first five keras.src.applications.mobilenet_v2
                ._inverted_res_block calls at alpha=0.35, a narrow Conv_1 (depthwise, ReLU6, Add)
  mobilenetv3   keras.src.applications.mobilenet_v3.MobileNetV3 with three of its
                _inverted_res_block calls (hard_swish, SE with hard_sigmoid ops, a conv classifier)
  efficientnet  keras.src.applications.efficientnet.EfficientNet with two short stages of its
                `block` (squeeze-excite Multiply, swish, depthwise, Add, Rescaling+Normalization)
  densenet      DenseNet's stem and top around keras.src.applications.densenet's conv_block
                (growth rate 8) and transition_block (Concatenate, AveragePooling2D)
  convnext      keras.src.applications.convnext.ConvNeXt(depths=[1, 1, 1, 1], narrow
                projection_dims) (nested Sequential stem/downsampling, grouped Conv2D,
                LayerNormalization, gelu, LayerScale, the block's `+`)

Each model is saved with a partially frozen plan (its stem, and one BatchNormalization or
LayerNormalization inside the trainable part, trainable=False: a frozen BN runs in inference
mode while its neighbours use batch statistics). Per family two files:

  <family>.keras   the model as Keras saved it, its members deflated (what xfer loads)
  <family>.h5      /x, /y (one-hot) of a fixed batch; /forward/loss; /grads/<layer>/<role>: the
                   tf.GradientTape gradient of the loss for every trainable weight;
                   /steps/<opt>/<k>/loss of train_on_batch step k = 1, 2 (SGD with momentum and
                   Adam) and /steps/<opt>/2/weights/<layer>/<role> after the second step for
                   every weight that may change (trainable weights, moving statistics of the BNs
                   that train);
                   every other weight must stay as in <family>.keras.
                   Attributes: source, keras, trainable_weights, changing_weights, frozen_layers,
                   zero_gradient_weights (conv biases feeding a training BN: exact gradient 0).

Layer paths are `layer` or `outer/inner` for layers of a nested model; roles are xfer's
(DepthwiseConv2D's kernel is `depthwise_kernel`, LayerScale's weight `gamma`).

Run (about a minute):  .venv-keras/bin/python checkpoints/make_family_training_fixtures.py [--only resnet,...]
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_training_fixtures as T  # noqa: E402  (sets the deterministic TF environment)

import numpy as np  # noqa: E402

OUT = os.path.join(HERE, "training", "families")
SEED = 2468
N = 8
CLASSES = 5
SIDE = 32
OPTIMIZERS = [("sgd_momentum", "SGD", {"learning_rate": 0.05, "momentum": 0.9}),
              ("adam", "Adam", {"learning_rate": 0.001})]


def build_resnet(K):
    from keras.src.applications import resnet

    def stacks(x):
        x = resnet.stack_residual_blocks_v1(x, 8, 2, stride1=1, name="conv2")
        return resnet.stack_residual_blocks_v1(x, 16, 1, name="conv3")

    m = resnet.ResNet(stacks, False, True, weights=None, input_shape=(SIDE, SIDE, 3),
                      classes=CLASSES, name="resnet_mini")
    # the stem, and one BN in the middle of a trainable block (inference mode there)
    return m, ["conv1_conv", "conv1_bn", "conv2_block2_2_bn"], "unit"


def build_mobilenetv2(K):
    # keras.applications.MobileNetV2 itself (alpha=0.35, 32x32) is 2.2 MB, its 112 -> 1280
    # Conv_1 alone 0.6 MB per recorded copy: the miniature is MobileNetV2's stem, its first five
    # _inverted_res_block calls as MobileNetV2 makes them, and a narrow Conv_1.
    from keras.src.applications import mobilenet_v2 as mb
    L = K.layers
    alpha = 0.35
    inputs = L.Input((SIDE, SIDE, 3))
    x = L.Conv2D(mb._make_divisible(32 * alpha, 8), 3, strides=2, padding="same", use_bias=False,
                 name="Conv1")(inputs)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.999, name="bn_Conv1")(x)
    x = L.ReLU(6.0, name="Conv1_relu")(x)
    x = mb._inverted_res_block(x, filters=16, alpha=alpha, stride=1, expansion=1, block_id=0)
    x = mb._inverted_res_block(x, filters=24, alpha=alpha, stride=2, expansion=6, block_id=1)
    x = mb._inverted_res_block(x, filters=24, alpha=alpha, stride=1, expansion=6, block_id=2)
    x = mb._inverted_res_block(x, filters=32, alpha=alpha, stride=2, expansion=6, block_id=3)
    x = mb._inverted_res_block(x, filters=32, alpha=alpha, stride=1, expansion=6, block_id=4)
    x = L.Conv2D(64, 1, use_bias=False, name="Conv_1")(x)
    x = L.BatchNormalization(epsilon=1e-3, momentum=0.999, name="Conv_1_bn")(x)
    x = L.ReLU(6.0, name="out_relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(CLASSES, activation="softmax", name="predictions")(x)
    m = K.Model(inputs, x, name="mobilenetv2_mini")
    names = [l.name for l in m.layers]
    first = names.index("block_1_expand")
    # The stem and block 0 frozen, and one BN inside block 3 (inference mode among training ones).
    return m, names[1:first] + ["block_3_depthwise_BN"], "unit"


def build_mobilenetv3(K):
    # keras.src.applications.mobilenet_v3.MobileNetV3 with a three-block stack_fn of its
    # _inverted_res_block (SE with hard_sigmoid as ReLU6(x + 3) / 6 ops, hard_swish, Add), its
    # 1x1-conv classifier under Flatten and a softmax Activation.
    from keras.src.applications import mobilenet_v3 as mb

    def stacks(x, kernel, activation, se_ratio):
        x = mb._inverted_res_block(x, 1, 8, 3, 2, se_ratio, mb.relu, 0)
        x = mb._inverted_res_block(x, 3, 16, 3, 2, None, mb.relu, 1)
        return mb._inverted_res_block(x, 3, 16, kernel, 1, se_ratio, activation, 2)

    m = mb.MobileNetV3(stacks, 64, (SIDE, SIDE, 3), 1.0, "small", False, True, None, None,
                       CLASSES, None, 0.0, "softmax", True, name="mobilenetv3_mini")
    names = [l.name for l in m.layers]
    first = names.index("expanded_conv_depthwise_pad")
    return m, names[1:first] + ["expanded_conv_1_depthwise_bn"], "raw"


def build_efficientnet(K):
    from keras.src.applications import efficientnet

    blocks = [
        dict(kernel_size=3, repeats=1, filters_in=32, filters_out=16, expand_ratio=1,
             id_skip=True, strides=1, se_ratio=0.25),
        dict(kernel_size=3, repeats=2, filters_in=16, filters_out=24, expand_ratio=6,
             id_skip=True, strides=2, se_ratio=0.25),
    ]
    m = efficientnet.EfficientNet(0.25, 1.0, SIDE, dropout_rate=0.0, drop_connect_rate=0.0,
                                  blocks_args=blocks, weights=None, input_shape=(SIDE, SIDE, 3),
                                  classes=CLASSES, name="efficientnet_mini")
    names = [l.name for l in m.layers]
    first = names.index("block1a_dwconv")
    return m, names[1:first] + ["block2b_expand_bn"], "raw"


def build_densenet(K):
    # DenseNet's stem (narrower than its 64 filters) and two dense blocks of densenet.conv_block
    # at growth rate 8 (dense_block fixes 32) around a transition_block, then DenseNet's top.
    from keras.src.applications import densenet
    L = K.layers
    inputs = L.Input((SIDE, SIDE, 3))
    x = L.ZeroPadding2D(padding=((3, 3), (3, 3)))(inputs)
    x = L.Conv2D(16, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = L.BatchNormalization(epsilon=1.001e-5, name="conv1_bn")(x)
    x = L.Activation("relu", name="conv1_relu")(x)
    x = L.ZeroPadding2D(padding=((1, 1), (1, 1)))(x)
    x = L.MaxPooling2D(3, strides=2, name="pool1")(x)
    for i in range(2):
        x = densenet.conv_block(x, 8, name=f"conv2_block{i + 1}")
    x = densenet.transition_block(x, 0.5, name="pool2")
    for i in range(2):
        x = densenet.conv_block(x, 8, name=f"conv3_block{i + 1}")
    x = L.BatchNormalization(epsilon=1.001e-5, name="bn")(x)
    x = L.Activation("relu", name="relu")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dense(CLASSES, activation="softmax", name="predictions")(x)
    m = K.Model(inputs, x, name="densenet_mini")
    names = [l.name for l in m.layers]
    first = names.index("conv2_block1_0_bn")
    # The stem frozen, and the transition's BN (its input is the first block's concatenation).
    return m, names[1:first] + ["pool2_bn"], "unit"


def build_convnext(K):
    from keras.src.applications import convnext

    m = convnext.ConvNeXt([1, 1, 1, 1], [8, 16, 24, 32], weights=None,
                          input_shape=(SIDE, SIDE, 3), classes=CLASSES, name="convnext_mini")
    return m, ["convnext_mini_stem", "convnext_mini_stage_1_block_0_layernorm"], "raw"


FAMILIES = {
    "resnet": build_resnet,
    "mobilenetv2": build_mobilenetv2,
    "mobilenetv3": build_mobilenetv3,
    "efficientnet": build_efficientnet,
    "densenet": build_densenet,
    "convnext": build_convnext,
}


def role(layer, w, index):
    kind = type(layer).__name__
    if kind == "DepthwiseConv2D" and index == 0:
        return "depthwise_kernel"
    if kind == "LayerScale":
        return "gamma"
    return T.var_role(w)


def table(lib, model):
    rows = []
    for path, layer in lib.leaves(model):
        for i, w in enumerate(layer.weights):
            rows.append((path, role(layer, w, i), w))
    return rows


def seed_weights(lib, model, rng):
    """Non-trivial statistics and scales (at Keras's initial 1/0 a wrong normalisation would go
    unseen; LayerScale's 1e-6 would hide the block's branch)."""
    for path, layer in lib.leaves(model):
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            gamma, beta, mean, var = [np.asarray(v) for v in layer.get_weights()]
            layer.set_weights([rng.uniform(0.6, 1.2, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
        elif kind == "LayerNormalization":
            gamma, beta = layer.get_weights()
            layer.set_weights([rng.uniform(0.6, 1.2, gamma.shape), rng.normal(0, 0.1, beta.shape)])
        elif kind == "LayerScale":
            (gamma,) = layer.get_weights()
            layer.set_weights([rng.uniform(0.3, 1.0, gamma.shape)])
        elif kind == "Normalization" and layer.get_weights():
            mean, var, count = layer.get_weights()
            layer.set_weights([rng.normal(0.45, 0.05, mean.shape), rng.uniform(0.05, 0.08, var.shape), count])


def calibrate_bn(K, model, x, rng):
    """Moving statistics near the ones a calibration batch gives, layer by layer in inference
    mode: random ones would kill whole channels (every ReLU dead) in deep stacks, and a training
    BatchNormalization would then normalise a constant (pure rounding noise)."""
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        a = np.asarray(K.Model(model.inputs, layer.input)(x, training=False), np.float64)
        a = a.reshape(-1, a.shape[-1])
        gamma, beta, _, _ = layer.get_weights()
        var = a.var(0)
        layer.set_weights([gamma, beta, a.mean(0) + rng.normal(0, 0.1, var.shape) * np.sqrt(var),
                           var * rng.uniform(0.8, 1.25, var.shape)])


def calibrate(K, model, x):
    """Shrinks the classifier when the softmax would saturate (the loss would hide everything)."""
    # The classifier: a Dense, or (MobileNetV3) a 1x1 Conv2D on a 1x1 map.
    last = [l for l in model.layers if type(l).__name__ in ("Dense", "Conv2D")][-1]
    kernel, bias = last.get_weights()
    sub = K.Model(model.inputs, last.input)
    f = np.asarray(sub(x, training=False), dtype=np.float64).reshape(len(x), -1)
    std = float(np.std(f @ kernel.reshape(f.shape[1], -1) + bias))
    if std > 2.0:
        last.set_weights([(kernel * (1.5 / std)).astype(np.float32), bias])


def zero_gradient(lib, model, rows, x, y, grads):
    """Trainable biases and BN betas whose exact gradient is 0: every path from them reaches a
    BatchNormalization that trains through shift-preserving ops only (a 1x1 conv, an Add), so
    the BN removes any constant they add, and Keras's value is rounding noise. Found by adding
    0.25 ... 0.75 to the tensor's elements (not one constant: a softmax ignores a constant shift of
    its logits): the training-mode loss does not move (beyond float32 noise)."""
    loss_fn = lib.K.losses.CategoricalCrossentropy()
    snapshot = [np.array(v.numpy()) for v in model.weights]

    def loss():
        out = float(loss_fn(y, model(x, training=True)))
        for v, s in zip(model.weights, snapshot):  # training=True moved the moving statistics
            v.assign(s)
        return out

    base = loss()
    by_id = {id(v): (p, r) for p, r, v in rows}
    out = []
    for var, g in zip(model.trainable_weights, grads):
        p, r = by_id[id(var)]
        if r not in ("bias", "beta"):
            continue
        old = np.array(var.numpy())
        var.assign(old + np.linspace(0.25, 0.75, old.size, dtype=np.float32).reshape(old.shape))
        moved = abs(loss() - base)
        var.assign(old)
        if moved <= 1e-5 * max(1.0, abs(base)):
            if float(np.abs(np.asarray(g)).max()) > 1e-6:
                raise RuntimeError(f"{p}/{r}: a shift does not move the loss, yet its gradient is {np.abs(g).max()}")
            out.append(f"{p}/{r}")
    return out


def deflate(path):
    """Keras stores the archive's members uncompressed; deflated (which Keras and xfer read) the
    files are a third of the size. Fixed member dates keep reruns identical."""
    import io
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                       compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def write(lib, family):
    K = lib.K
    K.backend.clear_session()
    K.utils.set_random_seed(SEED)
    rng = T.rng_for("family-" + family)
    model, frozen, scale = FAMILIES[family](K)
    seed_weights(lib, model, rng)
    if scale == "raw":
        x = rng.uniform(0, 255, (N, SIDE, SIDE, 3)).astype(np.float32)
    else:
        x = rng.uniform(-1, 1, (N, SIDE, SIDE, 3)).astype(np.float32)
    labels = np.arange(N) % CLASSES
    rng.shuffle(labels)
    y = T.one_hot(labels, CLASSES)
    x_cal = x[::-1] * 0.9 + rng.normal(0, 0.1, x.shape).astype(np.float32) * x.std()
    calibrate_bn(K, model, x_cal, rng)
    calibrate(K, model, x)
    for name in frozen:
        model.get_layer(name).trainable = False
    os.makedirs(OUT, exist_ok=True)
    src = os.path.join(OUT, family + ".keras")
    model.save(src)
    deflate(src)

    def fresh():
        K.backend.clear_session()
        K.utils.set_random_seed(SEED)
        return K.saving.load_model(src, compile=False)

    model = fresh()
    rows = table(lib, model)
    trainable_ids = {id(v) for v in model.trainable_weights}
    training_bn = {p for p, layer in lib.leaves(model)
                   if type(layer).__name__ == "BatchNormalization" and layer.trainable}
    changing = [f"{p}/{r}" for p, r, v in rows
                if id(v) in trainable_ids or (p in training_bn and r.startswith("moving_"))]
    loss, y_train, _, grads = lib.forward(model, x, y)
    model = fresh()  # the forward pass in training mode moved the moving statistics
    rows = table(lib, model)
    trainable_ids = {id(v) for v in model.trainable_weights}
    noise = zero_gradient(lib, model, rows, x, y, grads)
    by_id = {id(v): (p, r) for p, r, v in rows}
    if not np.all(np.isfinite(y_train)):
        raise RuntimeError(f"{family}: non-finite outputs")

    path = os.path.join(OUT, family + ".h5")
    w = T.Writer(path)
    f = w.f
    f.attrs["source"] = family + ".keras"
    f.attrs["keras"] = lib.version
    f.attrs["trainable_weights"] = json.dumps([f"{p}/{r}" for p, r, v in rows if id(v) in trainable_ids])
    f.attrs["changing_weights"] = json.dumps(changing)
    f.attrs["frozen_layers"] = json.dumps(frozen)
    f.attrs["zero_gradient_weights"] = json.dumps(noise)
    w.array("x", x)
    w.array("y", y)
    w.array("forward/loss", np.float32(loss))
    for var, g in zip(model.trainable_weights, grads):
        p, r = by_id[id(var)]
        if g is None:
            raise RuntimeError(f"{family}: no gradient for {p}/{r}")
        w.array(f"grads/{p}/{r}", np.asarray(g, dtype=np.float32))
    losses = []
    for name, cls, kwargs in OPTIMIZERS:
        m = fresh()
        opt = lib.optimizer(cls, kwargs)
        m.compile(optimizer=opt, loss="categorical_crossentropy", jit_compile=False)
        g = f.require_group(f"steps/{name}")
        g.attrs["optimizer"] = cls
        g.attrs["config"] = T.to_json(opt.get_config())
        g.attrs["arguments"] = T.to_json(kwargs)
        for k in (1, 2):
            step_loss = float(m.train_on_batch(x, y))
            if k == 1 and abs(step_loss - loss) > 1e-5 * max(1.0, abs(loss)):
                raise RuntimeError(f"{family}/{name}: step loss {step_loss} != forward loss {loss}")
            w.array(f"steps/{name}/{k}/loss", np.float32(step_loss))
            values = {f"{p}/{r}": np.asarray(v.numpy(), np.float32) for p, r, v in table(lib, m)}
            if k == 2:  # (after step 1 only the loss: the files stay small)
                for key in changing:
                    w.array(f"steps/{name}/{k}/weights/{key}", values[key])
            losses.append(step_loss)
    w.close()
    n_train = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    print(f"  zero gradient: {noise}")
    print(f"  {family:13s} {os.path.getsize(src):>9,d} + {os.path.getsize(path):>9,d} bytes  "
          f"loss={loss:.5f} trainable={n_train:,} ({len(model.trainable_weights)} tensors) "
          f"steps={['%.4f' % l for l in losses]}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated subset of " + ",".join(FAMILIES))
    a = ap.parse_args()
    lib = T.Lib("keras3")
    for family in (a.only.split(",") if a.only else FAMILIES):
        write(lib, family)


if __name__ == "__main__":
    main()
