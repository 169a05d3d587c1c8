"""Writes the test fixtures in checkpoints/fixtures/.

Every checkpoint is written by real Keras (tf_keras for Keras 2 files, keras
for Keras 3 files) and every expected number is computed by Keras objects:

  X                  the checkpoint
  X.expected.json    what Keras reports for it (params, layers, summary text)
  X.io.h5            x = a fixed input batch, y = model.predict(x)
  index.json         every fixture, with the arguments xfer needs to read it
                     and, for broken files, the error xfer must report

Run through make_checkpoints.sh, which sets up the environment. The Keras 2
and Keras 3 parts run in separate processes so the two libraries never share
global state (name counters, random seeds, TF settings).

  make_checkpoints.sh --only resnet,se   rewrites only those graph models
                                         (k2_X.h5, k3_X.keras, their
                                         expected/io files, their index.json
                                         entries) and leaves the rest alone
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile

# Must be set before TensorFlow is imported (the .sh sets them too).
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ["COLUMNS"] = "80"
os.environ["LINES"] = "24"

import h5py
import numpy as np

SEED = 1234
INPUT_SCALE = 50.0  # inputs look roughly like caffe-preprocessed images
N_IO = 3  # samples in every X.io.h5

# Tiny VGG16: same topology and layer names as keras.applications.VGG16.
VGG_BLOCKS = [(1, 2, 8), (2, 2, 16), (3, 3, 16), (4, 3, 32), (5, 3, 32)]
VGG_FC = 32
VGG_CLASSES = 5
VGG_INPUT = (32, 32, 3)
ZOO_INPUT = (19, 23, 3)
ZOO2_INPUT = (17, 17, 3)
VGG_ARGS = ["--input-shape", "32,32,3"]

INDEX = []  # filled by each part, merged by main()


# --------------------------------------------------------------------------
# Framework-neutral helpers
# --------------------------------------------------------------------------


def quiet(tf):
    """Keeps the run's output to the fixture list (Keras warns about the
    legacy .h5 format, retracing, uncompiled models...)."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def rng_for(name):
    """A numpy generator seeded from the fixture name (stable across runs)."""
    seed = SEED + sum((i + 1) * b for i, b in enumerate(name.encode()))
    return np.random.default_rng(seed)


def io_batch(shape):
    """The fixed input batch stored as `x` in every X.io.h5 of that shape."""
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((N_IO,) + tuple(shape)) * INPUT_SCALE).astype(
        np.float32
    )


def train_batch(shape, classes, n=8, seed=SEED + 1):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n,) + tuple(shape)) * INPUT_SCALE).astype(
        np.float32
    )
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    return x, y


def var_kind(w):
    """`kernel`, `bias`, `gamma`, ... from a TF (`a/b/kernel:0`) or Keras 3
    (`kernel`, `a/kernel`) variable name."""
    return w.name.split("/")[-1].split(":")[0]


def init_weights(model, rng, is_model):
    """Deterministic random weights for every layer, set from numpy.

    Kernels: Glorot uniform. Biases: small non-zero values, so that bias bugs
    show. BatchNormalization: non-trivial gamma/beta/moving stats.
    """

    def leaves(layers):
        for layer in layers:
            if is_model(layer):
                yield from leaves(layer.layers)
            else:
                yield layer

    for layer in leaves(model.layers):
        values = layer_values(layer, rng)
        if values:
            layer.set_weights(values)


def layer_values(layer, rng):
    """init_weights's values for one layer, drawn from `rng`."""
    values = []
    for w in layer.weights:
        shape = tuple(int(d) for d in w.shape)
        kind = var_kind(w)
        if kind in ("kernel", "depthwise_kernel"):
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in = shape[-2] * receptive
            fan_out = shape[-1] * receptive
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            v = rng.uniform(-limit, limit, shape)
        elif kind == "bias":
            v = rng.normal(0.0, 0.05, shape)
        elif kind == "gamma":
            v = rng.uniform(0.7, 1.3, shape)
        elif kind == "beta":
            v = rng.normal(0.0, 0.1, shape)
        elif kind == "moving_mean":
            v = rng.normal(0.0, 0.2, shape)
        elif kind == "moving_variance":
            v = rng.uniform(0.5, 1.5, shape)
        else:
            raise ValueError(f"no initialiser for {layer.name}/{w.name}")
        values.append(v.astype(np.float32))
    return values


def calibrate(model, model_cls, target_std=1.5, last=None):
    """Shrinks the final softmax layer's kernel (or `last`'s, the Dense layer
    that feeds a Softmax layer) when the logits for the io batch are so large
    that the softmax saturates (all outputs 0 or 1), which would make the
    predictions a weak test."""
    last = last or model.layers[-1]
    features = model_cls(model.inputs, last.input)
    f = np.asarray(features.predict(io_batch(model.inputs[0].shape[1:]),
                                    verbose=0), dtype=np.float64)
    kernel, bias = last.get_weights()
    std = float(np.std(f @ kernel + bias))
    if std > 2 * target_std:
        last.set_weights([(kernel * (target_std / std)).astype(np.float32), bias])


def count(weights):
    seen, total = set(), 0
    for w in weights:
        if id(w) in seen:
            continue
        seen.add(id(w))
        total += int(np.prod([int(d) for d in w.shape]))
    return total


def shape_list(shape):
    return [None if d is None else int(d) for d in shape]


def recorded_keras_version(path):
    """The Keras version the file itself records, or None."""
    if path.endswith(".keras"):
        with zipfile.ZipFile(path) as z:
            return json.loads(z.read("metadata.json"))["keras_version"]
    with h5py.File(path, "r") as f:
        for group in (f, f.get("model_weights")):
            if group is not None and "keras_version" in group.attrs:
                v = group.attrs["keras_version"]
                return v.decode() if isinstance(v, bytes) else str(v)
    return None


def write_io(out, fname, model, input_shape):
    x = io_batch(input_shape)
    y = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise RuntimeError(f"{fname}: non-finite predictions")
    with h5py.File(os.path.join(out, fname + ".io.h5"), "w") as f:
        f.create_dataset("x", data=x)
        f.create_dataset("y", data=y)
    return y


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def add_index(fname, xfer_args, expected=True, error=None):
    INDEX.append(
        {
            "name": os.path.splitext(fname)[0],
            "file": fname,
            "expected": fname + ".expected.json" if expected else None,
            "io": fname + ".io.h5" if expected else None,
            "xfer_args": xfer_args,
            "error": error,
        }
    )


class Describer:
    """Builds X.expected.json from Keras objects (tf_keras or keras 3)."""

    def __init__(self, writer, model_cls, input_layer_cls):
        self.writer = writer
        self.model_cls = model_cls
        self.input_layer_cls = input_layer_cls

    def is_model(self, layer):
        return isinstance(layer, self.model_cls)

    def output_shape(self, layer):
        if self.writer == "tf_keras":
            s = layer.output_shape
            if isinstance(s, list):  # an InputLayer reports [(None, ...)]
                (s,) = s
            return shape_list(s)
        out = layer.output
        if isinstance(out, (list, tuple)):
            (out,) = out
        return shape_list(out.shape)

    def rows(self, layers, parent):
        result = []
        for layer in layers:
            result.append(
                {
                    "name": layer.name,
                    "type": layer.__class__.__name__,
                    "output_shape": self.output_shape(layer),
                    "params": int(layer.count_params()),
                    "trainable_params": count(layer.trainable_weights),
                    "non_trainable_params": count(layer.non_trainable_weights),
                    "trainable": bool(layer.trainable),
                    "parent": parent,
                }
            )
            if self.is_model(layer):
                result.extend(self.rows(layer.layers, layer.name))
        return result

    def summary(self, model):
        pieces = []
        if self.writer == "tf_keras":
            model.summary(
                expand_nested=True,
                show_trainable=True,
                print_fn=lambda line, *a, **k: pieces.append(line + "\n"),
            )
        else:
            model.summary(
                expand_nested=True,
                show_trainable=True,
                print_fn=lambda text, *a, **k: pieces.append(text),
            )
        return "".join(pieces)

    def expected(self, out, fname, model, xfer_args):
        path = os.path.join(out, fname)
        input_shape = shape_list(model.inputs[0].shape)[1:]
        optimizer_params = None
        opt = getattr(model, "optimizer", None)
        if self.writer == "keras3" and opt is not None and opt.built:
            optimizer_params = count(opt.variables)
        doc = {
            "file": fname,
            "writer": self.writer,
            "keras_version": recorded_keras_version(path),
            "input_shape": input_shape,
            "total_params": count(model.weights),
            "trainable_params": count(model.trainable_weights),
            "non_trainable_params": count(model.non_trainable_weights),
            "optimizer_params": optimizer_params,
            "xfer_args": xfer_args,
            "layers": self.rows(model.layers, None),
            "summary": self.summary(model),
        }
        write_json(path + ".expected.json", doc)
        write_io(out, fname, model, input_shape)
        add_index(fname, xfer_args)
        size = os.path.getsize(path)
        print(f"  {fname:32s} {size:>9,d} bytes  params={doc['total_params']}")
        return doc


# --------------------------------------------------------------------------
# Graph models, written by both Keras versions: residual Add, Concatenate,
# squeeze-excite Multiply, the other merge layers, one layer called twice
# --------------------------------------------------------------------------

GRAPH_CLASSES = 5
RESNET_INPUT = (16, 16, 3)
INCEPTION_INPUT = (16, 16, 3)
SE_INPUT = (18, 18, 3)
MERGE_INPUT = (15, 17, 3)
SHARED_INPUT = (16, 16, 3)


def resnet_model(L, Model):
    """ResNet-style, layer names as in keras.applications.ResNet50: a
    conv-BN-ReLU stem, an identity block (conv2_block1) and a projection block
    (conv3_block1: 1x1 stride-2 conv + BN on the shortcut), Add then ReLU, GAP,
    softmax. The block convolutions before a BN have no bias, except the
    projection (a bias feeding a BN, as in ResNet50)."""
    inputs = L.Input(RESNET_INPUT, name="image")
    x = L.Conv2D(4, 3, padding="same", name="conv1_conv")(inputs)
    x = L.BatchNormalization(name="conv1_bn")(x)
    x = L.Activation("relu", name="conv1_relu")(x)
    x = L.MaxPooling2D(2, name="pool1_pool")(x)  # 8x8x4
    y = L.Conv2D(4, 3, padding="same", use_bias=False,
                 name="conv2_block1_1_conv")(x)
    y = L.BatchNormalization(name="conv2_block1_1_bn")(y)
    y = L.ReLU(name="conv2_block1_1_relu")(y)
    y = L.Conv2D(4, 3, padding="same", use_bias=False,
                 name="conv2_block1_2_conv")(y)
    y = L.BatchNormalization(name="conv2_block1_2_bn")(y)
    x = L.Add(name="conv2_block1_add")([x, y])  # identity shortcut
    x = L.Activation("relu", name="conv2_block1_out")(x)
    s = L.Conv2D(8, 1, strides=2, name="conv3_block1_0_conv")(x)  # 4x4x8
    s = L.BatchNormalization(name="conv3_block1_0_bn")(s)
    y = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False,
                 name="conv3_block1_1_conv")(x)
    y = L.BatchNormalization(name="conv3_block1_1_bn")(y)
    y = L.ReLU(name="conv3_block1_1_relu")(y)
    y = L.Conv2D(8, 3, padding="same", use_bias=False,
                 name="conv3_block1_2_conv")(y)
    y = L.BatchNormalization(name="conv3_block1_2_bn")(y)
    x = L.Add(name="conv3_block1_add")([s, y])  # projection shortcut
    x = L.Activation("relu", name="conv3_block1_out")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dense(GRAPH_CLASSES, activation="softmax", name="predictions")(x)
    return Model(inputs, x, name="resnet")


def inception_model(L, Model):
    """Inception-style: stem, block `mixed0` (1x1 | 1x1->3x3 | 3x3 average
    pool (stride 1, same: the border averages exclude the padding)->1x1,
    concatenated on the channels), block `mixed1` (a 1x1 conv and a (2,1)
    strided 3x3 conv of mixed0, of heights 8 and 4, concatenated on axis 1,
    the height), GAP, Dropout, softmax."""
    inputs = L.Input(INCEPTION_INPUT, name="image")
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = L.BatchNormalization(name="conv1_bn")(x)
    x = L.Activation("relu", name="conv1_relu")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)  # 8x8x8
    b1 = L.Conv2D(4, 1, activation="relu", name="mixed0_1x1")(x)
    b2 = L.Conv2D(4, 1, activation="relu", name="mixed0_3x3_reduce")(x)
    b2 = L.Conv2D(6, 3, padding="same", activation="relu", name="mixed0_3x3")(b2)
    b3 = L.AveragePooling2D(3, strides=1, padding="same", name="mixed0_pool")(x)
    b3 = L.Conv2D(3, 1, activation="relu", name="mixed0_pool_proj")(b3)
    x = L.Concatenate(axis=-1, name="mixed0")([b1, b2, b3])  # 8x8x13
    t = L.Conv2D(6, 1, activation="relu", name="mixed1_1x1")(x)  # 8x8x6
    u = L.Conv2D(6, 3, strides=(2, 1), padding="same", activation="relu",
                 name="mixed1_3x3_s2")(x)  # 4x8x6
    x = L.Concatenate(axis=1, name="mixed1")([t, u])  # 12x8x6
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    x = L.Dense(GRAPH_CLASSES, activation="softmax", name="predictions")(x)
    return Model(inputs, x, name="inception")


def se_model(L, Model):
    """Squeeze-excite: stem conv-BN-ReLU; GAP(keepdims) -> 1x1 conv relu ->
    1x1 conv sigmoid = a (1,1,8) gate; Multiply([features, gate]) broadcasts
    it over the 9x9 positions; a conv-BN-ReLU block, GAP, softmax."""
    inputs = L.Input(SE_INPUT, name="image")
    x = L.Conv2D(8, 3, strides=2, padding="same", name="stem_conv")(inputs)  # 9x9x8
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.Activation("relu", name="stem_relu")(x)
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(x)  # 1x1x8
    s = L.Conv2D(2, 1, activation="relu", name="se_reduce")(s)
    s = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(s)
    x = L.Multiply(name="se_excite")([x, s])
    x = L.Conv2D(12, 3, strides=2, name="block_conv")(x)  # 4x4x12
    x = L.BatchNormalization(name="block_bn")(x)
    x = L.Activation("relu", name="block_relu")(x)
    x = L.GlobalAveragePooling2D(name="avg_pool")(x)
    x = L.Dense(GRAPH_CLASSES, activation="softmax", name="predictions")(x)
    return Model(inputs, x, name="se")


def merge_zoo_model(L, Model):
    """Every other merge layer once, on three conv branches of a 15x17 input
    (a: linear, b: relu, c: tanh): Subtract(a, b), Average(a, b, c),
    Maximum(a-b, c), Minimum(avg, b), Add(max, min, a) (3 inputs); then
    MaxPooling2D, GAP and GMP concatenated (rank 2), softmax. Rescaling(1/32)
    first: trained from the raw batch, the first convolutions would otherwise
    take steps far larger than their weights."""
    inputs = L.Input(MERGE_INPUT, name="image")
    r = L.Rescaling(1 / 32, name="rescaling")(inputs)
    a = L.Conv2D(6, 3, padding="same", name="conv_a")(r)
    b = L.Conv2D(6, 3, padding="same", activation="relu", name="conv_b")(r)
    c = L.Conv2D(6, 1, activation="tanh", name="conv_c")(r)
    sub = L.Subtract(name="subtract")([a, b])
    avg = L.Average(name="average")([a, b, c])
    mx = L.Maximum(name="maximum")([sub, c])
    mn = L.Minimum(name="minimum")([avg, b])
    x = L.Add(name="add3")([mx, mn, a])
    x = L.MaxPooling2D(2, name="pool")(x)  # 7x8x6
    gap = L.GlobalAveragePooling2D(name="gap")(x)
    gmp = L.GlobalMaxPooling2D(name="gmp")(x)
    x = L.Concatenate(name="pool_concat")([gap, gmp])  # 12
    x = L.Dense(GRAPH_CLASSES, activation="softmax", name="predictions")(x)
    return Model(inputs, x, name="merge_zoo")


def shared_model(L, Model):
    """One Conv2D object (`shared_conv`, 3 -> 3 channels) called twice: on
    the (rescaled) input, then on a 1x1 conv of it; Add; conv, GAP, softmax.
    Keras stores its weights once; both calls use them. Rescaling(1/32)
    first, as in merge_zoo_model."""
    inputs = L.Input(SHARED_INPUT, name="image")
    r = L.Rescaling(1 / 32, name="rescaling")(inputs)
    shared = L.Conv2D(3, 3, padding="same", activation="relu", name="shared_conv")
    branch = L.Conv2D(3, 1, name="branch_conv")(r)
    x = L.Add(name="add")([shared(r), shared(branch)])
    x = L.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)  # 7x7x8
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(GRAPH_CLASSES, activation="softmax", name="predictions")(x)
    return Model(inputs, x, name="shared")


# name -> (builder, layers saved with trainable=False). Each frozen set is
# closed upstream (every layer feeding a frozen layer is frozen) and is a
# prefix of model.layers (the same in tf_keras and Keras 3), what
# `--freeze-until` of its first trainable layer would freeze. The training
# cases of make_training_fixtures.py train the rest. Its frontier (the frozen
# tensors that trainable layers, or merges after them, read):
#   resnet:    pool1_pool (-> conv2_block1_add, the identity shortcut) and
#              conv2_block1_1_relu (-> conv2_block1_2_conv); frozen BNs
#              conv1_bn, conv2_block1_1_bn feed them.
#   inception: pool1 (-> mixed0_1x1), mixed0_3x3_reduce (-> mixed0_3x3) and
#              mixed0_pool (-> mixed0_pool_proj); frozen BN conv1_bn.
#   se:        stem_relu (-> se_excite, the Multiply's features) and
#              se_reduce (-> se_expand, the gate); frozen BN stem_bn.
GRAPH_MODELS = {
    "resnet": (resnet_model, ["conv1_conv", "conv1_bn", "conv1_relu",
                              "pool1_pool", "conv2_block1_1_conv",
                              "conv2_block1_1_bn", "conv2_block1_1_relu"]),
    "inception": (inception_model, ["conv1", "conv1_bn", "conv1_relu", "pool1",
                                    "mixed0_3x3_reduce", "mixed0_pool"]),
    "se": (se_model, ["stem_conv", "stem_bn", "stem_relu", "se_squeeze",
                      "se_reduce"]),
    "merge_zoo": (merge_zoo_model, []),
    "shared": (shared_model, []),
}
ONLY = None  # --only: the graph models to (re)write, None = everything


def graph_file(writer, name):
    return f"k2_{name}.h5" if writer == "tf_keras" else f"k3_{name}.keras"


def init_graph(model, name):
    """init_weights's values, each layer's drawn from a generator seeded by
    the model and layer names: the same weights whatever order the Keras
    version lists the layers in."""
    for layer in model.layers:
        values = layer_values(layer, rng_for(f"{name}/{layer.name}"))
        if values:
            layer.set_weights(values)


def scale_graph(tf, model, model_cls, head, target=1.0, head_target=1.5):
    """Scales every Conv2D/Dense kernel, in graph order, so that its
    pre-activation (of its first call) on the io batch has standard deviation
    `target` (`head_target` for `head`, the softmax): no saturated sigmoid
    gate or softmax, no exploding sums. The factors are rounded to 2
    significant digits, so the tf_keras and Keras 3 twins get the same
    weights."""
    x = io_batch(model.inputs[0].shape[1:])
    for layer in model.layers:
        kind = layer.__class__.__name__
        if kind not in ("Conv2D", "Dense"):
            continue
        inp = model_cls(model.inputs, layer.input)(x, training=False)
        kernel, *rest = layer.get_weights()
        if kind == "Conv2D":
            z = layer.convolution_op(tf.constant(inp), tf.constant(kernel))
        else:
            z = tf.matmul(inp, kernel)
        z = np.asarray(z, dtype=np.float64)
        if rest:
            z = z + rest[0]
        goal = head_target if layer is head else target
        factor = float(f"{goal / float(np.std(z)):.2g}")
        layer.set_weights([(kernel * factor).astype(np.float32)] + rest)


def graph_fixtures(writer, L, model_cls, tf, fresh, save_and_check):
    for name, (build, frozen) in GRAPH_MODELS.items():
        if ONLY is not None and name not in ONLY:
            continue
        fresh(name)
        model = build(L, model_cls)
        init_graph(model, name)
        scale_graph(tf, model, model_cls, model.get_layer("predictions"))
        layers = [l.name for l in model.layers
                  if l.__class__.__name__ != "InputLayer"]
        if layers[:len(frozen)] != frozen:
            raise RuntimeError(f"{name}: {frozen} is not a prefix of {layers}")
        for layer_name in frozen:
            model.get_layer(layer_name).trainable = False
        save_and_check(model, graph_file(writer, name))


# --------------------------------------------------------------------------
# Keras 2 (tf_keras)
# --------------------------------------------------------------------------


def part_tf_keras(out):
    import tensorflow as tf
    import tf_keras
    from tf_keras import layers as L

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    quiet(tf)
    MODEL = tf_keras.Model
    D = Describer("tf_keras", tf_keras.Model, L.InputLayer)

    def fresh(name):
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(SEED)
        return rng_for(name)

    def vgg_layers(include_top):
        result = []
        for block, n, width in VGG_BLOCKS:
            for i in range(1, n + 1):
                result.append(
                    L.Conv2D(width, 3, padding="same", activation="relu",
                             name=f"block{block}_conv{i}")
                )
            result.append(L.MaxPooling2D(2, strides=2, name=f"block{block}_pool"))
        if include_top:
            result += [
                L.Flatten(name="flatten"),
                L.Dense(VGG_FC, activation="relu", name="fc1"),
                L.Dense(VGG_FC, activation="relu", name="fc2"),
                L.Dense(VGG_CLASSES, activation="softmax", name="predictions"),
            ]
        return result

    def vgg_functional(include_top, input_name="input_1"):
        inputs = L.Input(VGG_INPUT, name=input_name)
        x = inputs
        for layer in vgg_layers(include_top):
            x = layer(x)
        return tf_keras.Model(inputs, x, name="vgg16")

    def bn_layers(blocks=3, widths=(8, 16, 16)):
        result = []
        for b in range(1, blocks + 1):
            for i in (1, 2):
                result += [
                    L.Conv2D(widths[b - 1], 3, padding="same",
                             name=f"block{b}_conv{i}"),
                    L.BatchNormalization(name=f"block{b}_bn{i}"),
                    L.Activation("relu", name=f"block{b}_relu{i}"),
                ]
            result.append(L.MaxPooling2D(2, strides=2, name=f"block{b}_pool"))
        return result

    def zoo_model():
        inputs = L.Input(ZOO_INPUT)
        x = L.ZeroPadding2D(((1, 2), (0, 1)))(inputs)
        x = L.Conv2D(8, 5, strides=2, padding="same")(x)
        x = L.ReLU(max_value=6.0)(x)
        x = L.Conv2D(8, 3, dilation_rate=2, padding="valid", activation="tanh")(x)
        x = L.AveragePooling2D(3, strides=2, padding="same")(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("sigmoid")(x)
        x = L.Conv2D(12, 1)(x)
        x = L.MaxPooling2D(2, padding="same")(x)
        x = L.GlobalMaxPooling2D()(x)
        x = L.Dense(6, activation="relu")(x)
        x = L.Dense(3, activation="softmax")(x)
        return tf_keras.Model(inputs, x)

    def save_and_check(model, fname, xfer_args=(), weights_only=False):
        path = os.path.join(out, fname)
        if weights_only:
            model.save_weights(path)
            loaded = model
        else:
            model.save(path)
            loaded = tf_keras.models.load_model(path)
            x = io_batch(model.inputs[0].shape[1:])
            a = model.predict(x, verbose=0)
            b = loaded.predict(x, verbose=0)
            if not np.array_equal(a, b):
                raise RuntimeError(f"{fname}: reloaded model disagrees")
        return D.expected(out, fname, loaded, list(xfer_args))

    if ONLY is not None:  # --only: those graph models, nothing else
        graph_fixtures("tf_keras", L, MODEL, tf, fresh, save_and_check)
        return

    # k2_vgg_full.h5 (the bundled default) and its weights-only twin.
    rng = fresh("k2_vgg_full")
    vgg = vgg_functional(include_top=True)
    init_weights(vgg, rng, D.is_model)
    calibrate(vgg, MODEL)
    save_and_check(vgg, "k2_vgg_full.h5")
    save_and_check(vgg, "k2_vgg_weights.h5", VGG_ARGS, weights_only=True)

    # k2_vgg_notop_weights.h5: like vgg16_..._notop.h5.
    rng = fresh("k2_vgg_notop_weights")
    base = vgg_functional(include_top=False)
    init_weights(base, rng, D.is_model)
    save_and_check(base, "k2_vgg_notop_weights.h5", VGG_ARGS, weights_only=True)

    # k2_vgg_seq_compiled.h5: Sequential, SGD(momentum) state after one step.
    rng = fresh("k2_vgg_seq_compiled")
    seq = tf_keras.Sequential([L.Input(VGG_INPUT)] + vgg_layers(True), name="vgg16")
    init_weights(seq, rng, D.is_model)
    calibrate(seq, MODEL)
    seq.compile(optimizer=tf_keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
                loss="categorical_crossentropy", metrics=["accuracy"])
    seq.train_on_batch(*train_batch(VGG_INPUT, VGG_CLASSES))
    save_and_check(seq, "k2_vgg_seq_compiled.h5")

    # k2_vgg_bn.h5: conv -> BN -> relu blocks, trained 3 steps.
    rng = fresh("k2_vgg_bn")
    bn = tf_keras.Sequential(
        [L.Input(VGG_INPUT)] + bn_layers()
        + [L.Flatten(name="flatten"),
           L.Dense(VGG_FC, activation="relu", name="fc1"),
           L.Dense(VGG_CLASSES, activation="softmax", name="predictions")],
        name="vgg_bn")
    init_weights(bn, rng, D.is_model)
    calibrate(bn, MODEL)
    bn.compile(optimizer=tf_keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
               loss="categorical_crossentropy", metrics=["accuracy"])
    for step in range(3):
        bn.train_on_batch(*train_batch(VGG_INPUT, VGG_CLASSES, seed=SEED + 10 + step))
    save_and_check(bn, "k2_vgg_bn.h5")

    # k2_transfer_nested.h5 / k2_transfer_block5.h5 (DLWP recipes).
    for fname, recipe in (("k2_transfer_nested.h5", "frozen"),
                          ("k2_transfer_block5.h5", "block5")):
        rng = fresh(fname)
        base = vgg_functional(include_top=False)
        model = tf_keras.Sequential(
            [base, L.Flatten(name="flatten"),
             L.Dense(16, activation="relu", name="fc"),
             L.Dropout(0.5, name="dropout"),
             L.Dense(3, activation="softmax", name="predictions")],
            name="transfer")
        init_weights(model, rng, D.is_model)
        calibrate(model, MODEL)
        if recipe == "frozen":
            base.trainable = False
        else:
            base.trainable = True
            trainable = False
            for layer in base.layers:
                if layer.name == "block5_conv1":
                    trainable = True
                layer.trainable = trainable
        save_and_check(model, fname)

    # k2_transfer_functional_bn.h5 (keras.io recipe, BN base called with
    # training=False).
    rng = fresh("k2_transfer_functional_bn")
    base_in = L.Input(VGG_INPUT, name="input_1")
    x = base_in
    for layer in bn_layers():
        x = layer(x)
    base = tf_keras.Model(base_in, x, name="base")
    base.trainable = False
    inputs = L.Input(VGG_INPUT, name="input_2")
    x = base(inputs, training=False)
    x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    x = L.Dense(4, activation="softmax", name="predictions")(x)
    model = tf_keras.Model(inputs, x, name="transfer")
    init_weights(model, rng, D.is_model)
    calibrate(model, MODEL)
    save_and_check(model, "k2_transfer_functional_bn.h5")

    # k2_zoo.h5, k2_zoo_weights.h5 + k2_zoo.json.
    rng = fresh("k2_zoo")
    zoo = zoo_model()
    init_weights(zoo, rng, D.is_model)
    calibrate(zoo, MODEL)
    save_and_check(zoo, "k2_zoo.h5")
    with open(os.path.join(out, "k2_zoo.json"), "w") as f:
        f.write(zoo.to_json())
    save_and_check(zoo, "k2_zoo_weights.h5", ["--config", "k2_zoo.json"],
                   weights_only=True)

    # k2_zoo2.h5.
    rng = fresh("k2_zoo2")
    zoo2 = tf_keras.Sequential([
        L.Input(ZOO2_INPUT),
        L.Conv2D(8, 3, strides=2, padding="valid"),
        L.Activation("elu"),
        L.Conv2D(16, 3, padding="same"),
        L.ReLU(negative_slope=0.1),
        L.GlobalAveragePooling2D(),
        L.Dropout(0.3),
        L.Dense(4, activation="softmax"),
    ])
    init_weights(zoo2, rng, D.is_model)
    calibrate(zoo2, MODEL)
    save_and_check(zoo2, "k2_zoo2.h5")

    # k2_bn_after_dense.h5: a head with BatchNormalization after Dense; tf_keras
    # records its axis as [1] (the last axis of a 2-D input).
    rng = fresh("k2_bn_after_dense")
    bnd = tf_keras.Sequential([
        L.Input(ZOO2_INPUT),
        L.Conv2D(4, 3, activation="relu", name="conv"),
        L.Flatten(name="flatten"),
        L.Dense(8, name="fc"),
        L.BatchNormalization(name="fc_bn"),
        L.Activation("relu", name="fc_relu"),
        L.Dense(2, activation="softmax", name="predictions"),
    ], name="bn_after_dense")
    init_weights(bnd, rng, D.is_model)
    calibrate(bnd, MODEL)
    save_and_check(bnd, "k2_bn_after_dense.h5")

    # k2_leaky_softmax.h5: LeakyReLU and a Softmax layer as the output.
    rng = fresh("k2_leaky_softmax")
    leaky = tf_keras.Sequential([
        L.Input(ZOO2_INPUT),
        L.Conv2D(8, 3, name="conv"),
        L.LeakyReLU(alpha=0.2, name="leaky"),
        L.MaxPooling2D(2, name="pool"),
        L.Flatten(name="flatten"),
        L.Dense(3, name="logits"),
        L.Softmax(name="softmax"),
    ], name="leaky_softmax")
    init_weights(leaky, rng, D.is_model)
    calibrate(leaky, MODEL, last=leaky.get_layer("logits"))
    save_and_check(leaky, "k2_leaky_softmax.h5")

    # k2_rescaling.h5: Rescaling in front of the convolutions, as Keras's
    # transfer-learning guides put it.
    rng = fresh("k2_rescaling")
    inputs = L.Input(ZOO2_INPUT, name="image")
    x = L.Rescaling(1 / 127.5, offset=-1, name="rescaling")(inputs)
    x = L.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(3, activation="softmax", name="predictions")(x)
    resc = tf_keras.Model(inputs, x, name="rescaled")
    init_weights(resc, rng, D.is_model)
    calibrate(resc, MODEL)
    save_and_check(resc, "k2_rescaling.h5")

    # unsupported_layer.h5: a Conv2DTranspose between two convs.
    rng = fresh("unsupported_layer")
    bad = tf_keras.Sequential([
        L.Input(VGG_INPUT),
        L.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1"),
        L.Conv2DTranspose(8, 3, padding="same", name="block1_upconv"),
        L.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv2"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(2, activation="softmax", name="predictions"),
    ], name="unsupported")
    init_weights(bad, rng, D.is_model)
    bad.save(os.path.join(out, "unsupported_layer.h5"))
    add_index("unsupported_layer.h5", [], expected=False,
              error={"exit": 3, "mentions": ["block1_upconv", "Conv2DTranspose"]})
    print("  unsupported_layer.h5")

    # k2_resnet.h5, k2_inception.h5, k2_se.h5, k2_merge_zoo.h5, k2_shared.h5.
    graph_fixtures("tf_keras", L, MODEL, tf, fresh, save_and_check)


# --------------------------------------------------------------------------
# Keras 3
# --------------------------------------------------------------------------


def part_keras3(out):
    import keras
    import tensorflow as tf
    from keras import layers as L

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    quiet(tf)
    MODEL = keras.Model
    D = Describer("keras3", keras.Model, L.InputLayer)

    def fresh(name):
        keras.backend.clear_session()
        keras.utils.set_random_seed(SEED)
        return rng_for(name)

    def vgg_layers(include_top):
        result = []
        for block, n, width in VGG_BLOCKS:
            for i in range(1, n + 1):
                result.append(
                    L.Conv2D(width, 3, padding="same", activation="relu",
                             name=f"block{block}_conv{i}")
                )
            result.append(L.MaxPooling2D(2, strides=2, name=f"block{block}_pool"))
        if include_top:
            result += [
                L.Flatten(name="flatten"),
                L.Dense(VGG_FC, activation="relu", name="fc1"),
                L.Dense(VGG_FC, activation="relu", name="fc2"),
                L.Dense(VGG_CLASSES, activation="softmax", name="predictions"),
            ]
        return result

    def save_and_check(model, fname, xfer_args=(), weights_only=False):
        path = os.path.join(out, fname)
        if weights_only:
            model.save_weights(path)
            loaded = model
        else:
            model.save(path)
            loaded = keras.saving.load_model(path)
            x = io_batch(model.inputs[0].shape[1:])
            a = model.predict(x, verbose=0)
            b = loaded.predict(x, verbose=0)
            if not np.array_equal(a, b):
                raise RuntimeError(f"{fname}: reloaded model disagrees")
        return D.expected(out, fname, loaded, list(xfer_args))

    if ONLY is not None:  # --only: those graph models, nothing else
        graph_fixtures("keras3", L, MODEL, tf, fresh, save_and_check)
        return

    # k3_vgg.keras, k3_vgg.weights.h5, k3_vgg_legacy.h5: one model, 3 formats.
    rng = fresh("k2_vgg_full")  # same weights as k2_vgg_full.h5
    vgg = keras.Sequential([keras.Input(VGG_INPUT)] + vgg_layers(True), name="vgg16")
    init_weights(vgg, rng, D.is_model)
    calibrate(vgg, MODEL)
    save_and_check(vgg, "k3_vgg.keras")
    save_and_check(vgg, "k3_vgg.weights.h5", ["--config", "k3_vgg.keras"],
                   weights_only=True)
    save_and_check(vgg, "k3_vgg_legacy.h5")

    # k3_bn.keras: conv -> BN -> relu blocks, trained 3 steps.
    rng = fresh("k3_bn")
    seq = [keras.Input(VGG_INPUT)]
    for b, width in ((1, 8), (2, 16), (3, 16)):
        for i in (1, 2):
            seq += [L.Conv2D(width, 3, padding="same", name=f"block{b}_conv{i}"),
                    L.BatchNormalization(name=f"block{b}_bn{i}"),
                    L.Activation("relu", name=f"block{b}_relu{i}")]
        seq.append(L.MaxPooling2D(2, strides=2, name=f"block{b}_pool"))
    seq += [L.Flatten(name="flatten"),
            L.Dense(VGG_FC, activation="relu", name="fc1"),
            L.Dense(VGG_CLASSES, activation="softmax", name="predictions")]
    bn = keras.Sequential(seq, name="vgg_bn")
    init_weights(bn, rng, D.is_model)
    calibrate(bn, MODEL)
    bn.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
               loss="categorical_crossentropy", metrics=["accuracy"])
    for step in range(3):
        bn.train_on_batch(*train_batch(VGG_INPUT, VGG_CLASSES, seed=SEED + 10 + step))
    save_and_check(bn, "k3_bn.keras")

    # k3_transfer_nested.keras: frozen base called with training=False, Adam
    # state after one step.
    rng = fresh("k3_transfer_nested")
    base_in = keras.Input(VGG_INPUT, name="input_layer")
    x = base_in
    for layer in vgg_layers(False):
        x = layer(x)
    base = keras.Model(base_in, x, name="vgg16")
    base.trainable = False
    inputs = keras.Input(VGG_INPUT, name="input_layer_1")
    x = base(inputs, training=False)
    x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = L.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, x, name="transfer")
    init_weights(model, rng, D.is_model)
    calibrate(model, MODEL)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(*train_batch(VGG_INPUT, 3))
    save_and_check(model, "k3_transfer_nested.keras")

    # k3_frozen_then_one.keras: `base.trainable = False`, then one inner layer made
    # trainable again. Keras 3 keeps the flag on each variable, so the outer model
    # trains block5_conv3 although the nested model's own flag is False.
    rng = fresh("k3_frozen_then_one")
    base_in = keras.Input(VGG_INPUT, name="input_layer")
    x = base_in
    for layer in vgg_layers(False):
        x = layer(x)
    base = keras.Model(base_in, x, name="vgg16")
    base.trainable = False
    base.get_layer("block5_conv3").trainable = True
    inputs = keras.Input(VGG_INPUT, name="input_layer_1")
    x = base(inputs)
    x = L.GlobalMaxPooling2D(name="global_max_pooling2d")(x)
    x = L.Dense(3, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, x, name="transfer")
    init_weights(model, rng, D.is_model)
    calibrate(model, MODEL)
    save_and_check(model, "k3_frozen_then_one.keras")

    # k3_open_input.keras: Input((None, None, 3)), a size the model leaves open;
    # xfer reads it with --input-shape. The expected numbers come from the same
    # model built at that size (same weights), as Keras runs it there.
    rng = fresh("k3_open_input")

    def open_input_model(shape):
        inp = keras.Input(shape, name="input_layer")
        x = L.Conv2D(8, 3, activation="relu", name="conv1")(inp)
        x = L.MaxPooling2D(2, name="pool")(x)
        x = L.Conv2D(8, 3, activation="relu", name="conv2")(x)
        x = L.GlobalAveragePooling2D(name="gap")(x)
        x = L.Dense(3, activation="softmax", name="predictions")(x)
        return keras.Model(inp, x, name="open_input")

    model = open_input_model((None, None, 3))
    init_weights(model, rng, D.is_model)
    twin = open_input_model((24, 20, 3))
    twin.set_weights(model.get_weights())
    calibrate(twin, MODEL)
    model.set_weights(twin.get_weights())
    model.save(os.path.join(out, "k3_open_input.keras"))
    D.expected(out, "k3_open_input.keras", twin, ["--input-shape", "24,20,3"])

    # k3_leaky_softmax.keras: the same in Keras 3 (LeakyReLU's `negative_slope`).
    rng = fresh("k2_leaky_softmax")  # same weights as k2_leaky_softmax.h5
    leaky = keras.Sequential([
        keras.Input(ZOO2_INPUT),
        L.Conv2D(8, 3, name="conv"),
        L.LeakyReLU(negative_slope=0.2, name="leaky"),
        L.MaxPooling2D(2, name="pool"),
        L.Flatten(name="flatten"),
        L.Dense(3, name="logits"),
        L.Softmax(name="softmax"),
    ], name="leaky_softmax")
    init_weights(leaky, rng, D.is_model)
    calibrate(leaky, MODEL, last=leaky.get_layer("logits"))
    save_and_check(leaky, "k3_leaky_softmax.keras")

    # k3_rescaling.keras: the same in Keras 3.
    rng = fresh("k2_rescaling")  # same weights as k2_rescaling.h5
    inputs = keras.Input(ZOO2_INPUT, name="image")
    x = L.Rescaling(1 / 127.5, offset=-1, name="rescaling")(inputs)
    x = L.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(3, activation="softmax", name="predictions")(x)
    resc = keras.Model(inputs, x, name="rescaled")
    init_weights(resc, rng, D.is_model)
    calibrate(resc, MODEL)
    save_and_check(resc, "k3_rescaling.keras")

    # k3_zoo.keras: the k2_zoo model in Keras 3.
    rng = fresh("k2_zoo")  # same weights as k2_zoo.h5
    inputs = keras.Input(ZOO_INPUT)
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(inputs)
    x = L.Conv2D(8, 5, strides=2, padding="same")(x)
    x = L.ReLU(max_value=6.0)(x)
    x = L.Conv2D(8, 3, dilation_rate=2, padding="valid", activation="tanh")(x)
    x = L.AveragePooling2D(3, strides=2, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("sigmoid")(x)
    x = L.Conv2D(12, 1)(x)
    x = L.MaxPooling2D(2, padding="same")(x)
    x = L.GlobalMaxPooling2D()(x)
    x = L.Dense(6, activation="relu")(x)
    x = L.Dense(3, activation="softmax")(x)
    zoo = keras.Model(inputs, x)
    init_weights(zoo, rng, D.is_model)
    calibrate(zoo, MODEL)
    save_and_check(zoo, "k3_zoo.keras")

    # k3_resnet.keras, ... : the graph models (same weights as the k2_ files).
    graph_fixtures("keras3", L, MODEL, tf, fresh, save_and_check)


# --------------------------------------------------------------------------
# Files that xfer must reject (h5py only)
# --------------------------------------------------------------------------


def part_broken(out):
    rng = np.random.default_rng(SEED + 99)
    with h5py.File(os.path.join(out, "not_keras.h5"), "w") as f:
        f.create_dataset("data", data=rng.standard_normal((4, 5)).astype(np.float32))
    add_index("not_keras.h5", [], expected=False,
              error={"exit": 3, "mentions": ["not_keras.h5"]})
    print("  not_keras.h5")

    # Damage a real Keras file: block2_conv1's kernel gets a wrong shape.
    src = os.path.join(out, "k2_vgg_full.h5")
    dst = os.path.join(out, "damaged_wrong_shape.h5")
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        group = f["model_weights/block2_conv1"]
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in group.attrs["weight_names"]]
        kernel = next(n for n in names if "kernel" in n)
        old_shape, dtype = group[kernel].shape, group[kernel].dtype
        shape = old_shape[:-1] + (old_shape[-1] + 3,)
        data = rng.standard_normal(shape).astype(dtype)
        del group[kernel]
        group.create_dataset(kernel, data=data)
    add_index("damaged_wrong_shape.h5", [], expected=False,
              error={"exit": 3, "mentions": ["block2_conv1"]})
    print(f"  damaged_wrong_shape.h5 ({kernel}: {old_shape} -> {shape})")


# --------------------------------------------------------------------------


BROKEN = ("not_keras", "damaged_wrong_shape")  # part_broken's fixtures


def merge_index(index, new):
    """`index` with the entries of `new`: one of the same name is replaced in
    place; a new one goes after the last entry of its writer's part (k3_*:
    Keras 3; the broken files last; the rest: tf_keras), where a full run
    puts it."""

    def part_of(entry):
        if entry["name"] in BROKEN:
            return 2
        return 1 if entry["name"].startswith("k3_") else 0

    index = list(index)
    for entry in new:
        names = [e["name"] for e in index]
        if entry["name"] in names:
            index[names.index(entry["name"])] = entry
            continue
        at = max((i + 1 for i, e in enumerate(index)
                  if part_of(e) <= part_of(entry)), default=0)
        index.insert(at, entry)
    return index


def main():
    global ONLY
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    ap.add_argument("--part", choices=["tf_keras", "keras3"])
    ap.add_argument("--only", metavar="NAME[,NAME...]",
                    help="(re)write only these graph models' files ("
                         + ", ".join(GRAPH_MODELS) + "), both Keras versions, "
                         "and their index.json entries; every other file is "
                         "left as it is")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if args.only is not None:
        ONLY = args.only.split(",")
        unknown = sorted(set(ONLY) - set(GRAPH_MODELS))
        if unknown:
            ap.error(f"--only: not a graph model: {', '.join(unknown)} "
                     f"(known: {', '.join(GRAPH_MODELS)})")

    if args.part:
        {"tf_keras": part_tf_keras, "keras3": part_keras3}[args.part](out)
        write_json(os.path.join(out, f".index-{args.part}.json"), INDEX)
        return

    if ONLY is None:
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.makedirs(out)
    elif not os.path.isfile(os.path.join(out, "index.json")):
        ap.error(f"--only needs the other fixtures: no index.json in {out}")
    index = []
    for part in ("tf_keras", "keras3"):
        print(f"{part}:", flush=True)
        extra = [] if ONLY is None else ["--only", ",".join(ONLY)]
        subprocess.run([sys.executable, os.path.abspath(__file__),
                        "--out", out, "--part", part] + extra, check=True)
        part_index = os.path.join(out, f".index-{part}.json")
        with open(part_index) as f:
            index += json.load(f)
        os.remove(part_index)
    if ONLY is None:
        print("broken files:")
        part_broken(out)
        index += INDEX
    else:
        with open(os.path.join(out, "index.json")) as f:
            index = merge_index(json.load(f), index)
    write_json(os.path.join(out, "index.json"), index)
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"{len(index)} fixtures, {len(os.listdir(out))} files, "
          f"{total:,} bytes in {out}")


if __name__ == "__main__":
    main()
