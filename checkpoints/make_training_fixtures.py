"""Writes the training reference data in checkpoints/training/.

Every number is computed by Keras/TensorFlow, starting from fixtures that
make_checkpoints.py wrote (each loaded with the Keras that wrote it):

  <case>.h5            one batch, Keras's forward pass, loss, gradients and
                       the weights after two train_on_batch steps for five
                       optimizer configurations
  fit_plain.h5         a small dataset (usable as xfer's DATA) and the weights
                       after model.fit(..., batch_size=4, epochs=2)
  freeze_counts.json   parameter counts of the models xfer's freeze plans
                       describe, built and counted by Keras

Run (about two minutes on one CPU core), after make_checkpoints.sh:

  "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_training_fixtures.py

  ... make_training_fixtures.py --only resnet_k2,resnet_k3   rewrites only
  those cases (and leaves every other file in training/ alone)

The tf_keras (Keras 2) and keras (Keras 3) parts run in separate processes.
See checkpoints/README.md for the layout of the files.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

from fixture_env import ENV  # noqa: E402  (before TensorFlow: sets the environment)

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")

SEED = 4321
INPUT_SCALE = 20.0  # inputs look roughly like preprocessed images
N_BATCH = 6  # samples in the batch of every <case>.h5
N_FIT = 10  # samples in fit_plain.h5

# case -> (writer, fixture file, zero the Dropout rates?)
CASES = {
    "plain": ("tf_keras", "k2_vgg_full.h5", False),
    "bn_k2": ("tf_keras", "k2_vgg_bn.h5", False),
    "nested": ("tf_keras", "k2_transfer_functional_bn.h5", True),
    "nested_block5": ("tf_keras", "k2_transfer_block5.h5", True),
    "bn_k3": ("keras3", "k3_bn.keras", False),
    # base frozen, then block5_conv3 unfrozen: Keras 3 trains it and the head
    "frozen_then_one": ("keras3", "k3_frozen_then_one.keras", False),
    # Graph models, each saved with a frozen prefix (GRAPH_MODELS in
    # make_checkpoints.py); the trainable part reads several frozen tensors:
    #   resnet: pool1_pool (the identity shortcut, straight into the Add) and
    #     conv2_block1_1_relu (-> conv2_block1_2_conv); frozen BNs conv1_bn,
    #     conv2_block1_1_bn (inference mode) before them; trainable BNs
    #     (batch statistics) in both blocks, the projection's conv bias
    #     feeding one (zero_gradient_weights).
    #   inception: pool1 (-> mixed0_1x1), mixed0_3x3_reduce (-> mixed0_3x3),
    #     mixed0_pool (-> mixed0_pool_proj); frozen BN conv1_bn; Dropout 0.
    #   se: stem_relu (the Multiply's features) and se_reduce (-> se_expand,
    #     the gate); frozen BN stem_bn; trainable block_bn after the Multiply.
    "resnet_k2": ("tf_keras", "k2_resnet.h5", False),
    "inception_k2": ("tf_keras", "k2_inception.h5", True),
    "se_k2": ("tf_keras", "k2_se.h5", False),
    "resnet_k3": ("keras3", "k3_resnet.keras", False),
    "inception_k3": ("keras3", "k3_inception.keras", True),
    "se_k3": ("keras3", "k3_se.keras", False),
    # Everything trainable: gradients through Subtract/Average/Maximum/
    # Minimum/3-input Add; one Conv2D called twice (its gradient is the sum
    # over both calls).
    "merge_zoo_k2": ("tf_keras", "k2_merge_zoo.h5", False),
    "shared_k2": ("tf_keras", "k2_shared.h5", False),
    "merge_zoo_k3": ("keras3", "k3_merge_zoo.keras", False),
    "shared_k3": ("keras3", "k3_shared.keras", False),
}
# The tf_keras and Keras 3 twins of a graph model have the same weights and
# train on the same batch (seeded by the model's name, not the case's), so
# their forward passes and gradients agree across the two Keras versions.
GRAPH = ("resnet", "inception", "se", "merge_zoo", "shared")
BATCH_NAME = {f"{m}_{k}": m for m in GRAPH for k in ("k2", "k3")}
assert set(BATCH_NAME) <= set(CASES)

# name -> (optimizer class name, constructor arguments)
OPTIMIZERS = [
    ("sgd", "SGD", {"learning_rate": 0.1}),
    ("sgd_momentum", "SGD", {"learning_rate": 0.05, "momentum": 0.9}),
    ("sgd_nesterov", "SGD", {"learning_rate": 0.05, "momentum": 0.9,
                             "nesterov": True}),
    ("adam", "Adam", {"learning_rate": 0.01}),
    ("rmsprop", "RMSprop", {"learning_rate": 0.01}),
]
STEPS = 2

FIT_ARGS = {"batch_size": 4, "epochs": 2, "shuffle": False}
FIT_OPTIMIZER = ("SGD", {"learning_rate": 0.05, "momentum": 0.9})
FIT_XFER_ARGS = ["k2_vgg_full.h5", "--data", "fit_plain.h5", "--keep-top",
                 "--no-shuffle", "--batch-size", "4", "--epochs", "2",
                 "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9"]

# Freeze plans: (id, checkpoint, xfer args, classes or None = the model's own).
FREEZE_CASES = [
    ("a", "k2_vgg_full.h5", [], 3),
    ("b", "k2_vgg_full.h5", ["--freeze-until", "block5"], 3),
    ("c", "k2_vgg_full.h5", ["--keep-top", "--freeze-until", "block4"], None),
    ("d", "k2_vgg_full.h5", ["--freeze-until", "block3", "--head",
                             "flatten,dense:64:relu"], 4),
    ("e", "k2_vgg_bn.h5", ["--freeze-until", "block2"], 3),
    ("f", "k2_transfer_nested.h5", ["--freeze-until", "block5"], 3),
    ("g", "k2_transfer_nested.h5", ["--keep-top"], None),
    ("h", "k3_bn.keras", ["--freeze-until", "block3"], 2),
]
DEFAULT_HEAD = "flatten,dense:256:relu,dropout:0.5"


# --------------------------------------------------------------------------
# Framework-neutral helpers
# --------------------------------------------------------------------------


def rng_for(name):
    """A numpy generator seeded from a name (stable across runs)."""
    seed = SEED + sum((i + 1) * b for i, b in enumerate(name.encode()))
    return np.random.default_rng(seed)


def make_batch(name, shape, classes, n):
    rng = rng_for(name)
    x = (rng.standard_normal((n,) + tuple(shape)) * INPUT_SCALE).astype(np.float32)
    labels = rng.integers(0, classes, n)
    return x, labels


def one_hot(labels, classes):
    return np.eye(classes, dtype=np.float32)[labels]


def var_role(w):
    """`kernel`, `bias`, `gamma`, ... from a TF (`a/b/kernel:0`) or Keras 3
    (`kernel`) variable name."""
    return w.name.split("/")[-1].split(":")[0]


def to_json(obj):
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        return str(o)

    return json.dumps(obj, sort_keys=True, default=default)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")


def quiet(tf):
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


class Writer:
    """An HDF5 file in which bit-identical weight arrays are stored once:
    later occurrences are hard links to the first one (transparent to any
    reader that opens datasets by path)."""

    def __init__(self, path):
        self.f = h5py.File(path, "w")
        self.seen = {}

    def array(self, path, value, dedupe=False):
        value = np.asarray(value)
        if value.ndim:  # (np.ascontiguousarray would make a scalar 1-D)
            value = np.ascontiguousarray(value)
        if dedupe:
            key = (value.dtype.str, value.shape,
                   hashlib.sha256(value.tobytes()).hexdigest())
            if key in self.seen:
                self.f[path] = self.f[self.seen[key]]
                return
            self.seen[key] = path
        self.f.create_dataset(path, data=value)

    def close(self):
        self.f.close()


# --------------------------------------------------------------------------
# The Keras side, parameterised by the library (tf_keras or keras 3)
# --------------------------------------------------------------------------


class Lib:
    def __init__(self, writer):
        import tensorflow as tf

        quiet(tf)
        self.tf = tf
        self.writer = writer
        if writer == "tf_keras":
            import tf_keras as K

            self.version = f"tf_keras {K.__version__}"
        else:
            import keras as K

            self.version = f"keras {K.__version__}"
        self.K = K

    # ---- models ----------------------------------------------------------

    def is_model(self, layer):
        return isinstance(layer, self.K.Model)

    def is_input(self, layer):
        return isinstance(layer, self.K.layers.InputLayer)

    def load(self, fname):
        path = os.path.join(FIXTURES, fname)
        self.K.backend.clear_session()
        self.K.utils.set_random_seed(SEED)
        if self.writer == "tf_keras":
            return self.K.models.load_model(path, compile=False)
        return self.K.saving.load_model(path, compile=False)

    def leaves(self, model, prefix=""):
        """(layer path, layer) for every non-model layer, nested ones as
        `outer/inner`, in model order."""
        for layer in model.layers:
            path = prefix + layer.name
            if self.is_model(layer):
                yield from self.leaves(layer, path + "/")
            else:
                yield path, layer

    def weight_table(self, model):
        """[(layer path, role, variable)] in model order."""
        rows = []
        for path, layer in self.leaves(model):
            for w in layer.weights:
                rows.append((path, var_role(w), w))
        return rows

    def trainable_layers(self, model):
        ids = {id(w) for w in model.trainable_weights}
        result = []
        for path, role, w in self.weight_table(model):
            if id(w) in ids and path not in result:
                result.append(path)
        return result

    def zero_gradient_weights(self, model):
        """Biases of a Conv2D/Dense followed directly by a BatchNormalization
        that runs in training mode: their exact gradient is 0 (BN removes the
        batch mean), so Keras's value is rounding noise."""
        graph = self.graph(model)
        if graph is not None:
            result = []
            for a in model.layers:
                readers = graph["readers"][a.name]
                if (a.__class__.__name__ in ("Conv2D", "Dense") and a.trainable
                        and getattr(a, "use_bias", False)
                        and graph["calls"][a.name] == 1 and len(readers) == 1):
                    b = model.get_layer(readers[0])
                    if (b.__class__.__name__ == "BatchNormalization"
                            and b.trainable and graph["calls"][b.name] == 1):
                        result.append(f"{a.name}/bias")
            return result
        leaves = list(self.leaves(model))
        result = []
        for (p, a), (_, b) in zip(leaves, leaves[1:]):
            if (a.__class__.__name__ in ("Conv2D", "Dense") and a.trainable
                    and getattr(a, "use_bias", False)
                    and b.__class__.__name__ == "BatchNormalization"
                    and b.trainable):
                result.append(f"{p}/bias")
        return result

    def graph(self, model):
        """For a Functional model without nested models, from its config:
        `calls` (layer -> times called) and `readers` (layer -> the layers
        reading its outputs, once per use); None for other models (chains)."""
        if any(self.is_model(l) for l in model.layers):
            return None
        layers = model.get_config().get("layers", [])
        if not layers or any("inbound_nodes" not in l for l in layers):
            return None

        def sources(obj):
            # tf_keras: [name, node, tensor, kwargs]; Keras 3: a
            # __keras_tensor__ whose config has keras_history [name, node, tensor]
            if isinstance(obj, dict):
                if "keras_history" in obj:
                    yield obj["keras_history"][0]
                    return
                for v in obj.values():
                    yield from sources(v)
            elif isinstance(obj, (list, tuple)):
                if (len(obj) >= 3 and isinstance(obj[0], str)
                        and isinstance(obj[1], int) and isinstance(obj[2], int)):
                    yield obj[0]
                    return
                for v in obj:
                    yield from sources(v)

        calls = {l["config"]["name"]: 0 for l in layers}
        readers = {name: [] for name in calls}
        for l in layers:
            name = l["config"]["name"]
            for node in l["inbound_nodes"]:
                calls[name] += 1
                for src in sources(node):
                    readers[src].append(name)
        return {"calls": calls, "readers": readers}

    def zero_dropout(self, model):
        """The same model with every Dropout rate set to 0, rebuilt from its
        edited config; weights and trainable flags carried over."""

        def edit(cfg):
            if isinstance(cfg, dict):
                if cfg.get("class_name") == "Dropout":
                    cfg["config"]["rate"] = 0.0
                for v in cfg.values():
                    edit(v)
            elif isinstance(cfg, list):
                for v in cfg:
                    edit(v)

        config = model.get_config()
        edit(config)
        new = model.__class__.from_config(config)
        old_leaves = dict(self.leaves(model))
        new_leaves = dict(self.leaves(new))
        assert list(old_leaves) == list(new_leaves), "layers differ"
        for path, layer in new_leaves.items():
            old = old_leaves[path]
            layer.trainable = old.trainable
            if old.weights:
                layer.set_weights(old.get_weights())
        for path, layer in new_leaves.items():
            if layer.__class__.__name__ == "Dropout":
                assert layer.rate == 0.0
        assert self.trainable_layers(new) == self.trainable_layers(model)
        assert [(p, r, tuple(w.shape)) for p, r, w in self.weight_table(new)] == \
            [(p, r, tuple(w.shape)) for p, r, w in self.weight_table(model)]
        return new

    def load_case(self, fname, zero_dropout):
        model = self.load(fname)
        if zero_dropout:
            model = self.zero_dropout(model)
        return model

    def optimizer(self, cls, kwargs):
        return getattr(self.K.optimizers, cls)(**kwargs)

    # ---- numbers ---------------------------------------------------------

    def forward(self, model, x, y):
        """Loss (as fit computes it, from the softmax logits), training and
        inference outputs, gradients w.r.t. model.trainable_weights."""
        tf = self.tf
        y_infer = np.asarray(model(x, training=False))
        loss_fn = self.K.losses.CategoricalCrossentropy()
        with tf.GradientTape() as tape:
            y_pred = model(x, training=True)
            # fit's loss uses the logits the Keras softmax attaches
            assert hasattr(y_pred, "_keras_logits"), "no logits on the output"
            loss = loss_fn(y, y_pred)
        grads = tape.gradient(loss, model.trainable_weights)
        # The same loss straight from the logits, in float64.
        z = np.asarray(y_pred._keras_logits, dtype=np.float64)
        zmax = z.max(axis=1, keepdims=True)
        lse = (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)))[:, 0]
        ref = float(np.mean(lse - (y * z).sum(axis=1)))
        assert abs(float(loss) - ref) <= 1e-5 * max(1.0, abs(ref)), (float(loss), ref)
        return float(loss), np.asarray(y_pred), y_infer, grads

    def train_steps(self, fname, zero_dropout, x, y, cls, kwargs):
        model = self.load_case(fname, zero_dropout)
        opt = self.optimizer(cls, kwargs)
        model.compile(optimizer=opt, loss="categorical_crossentropy")
        config = opt.get_config()
        results = []
        for _ in range(STEPS):
            loss = model.train_on_batch(x, y)
            if isinstance(loss, (list, tuple)):
                (loss,) = loss
            weights = [(p, r, np.asarray(w.numpy() if hasattr(w, "numpy")
                                          else w, dtype=np.float32))
                       for p, r, w in self.weight_table(model)]
            results.append((float(loss), weights))
        return config, results, model


# --------------------------------------------------------------------------
# <case>.h5
# --------------------------------------------------------------------------


def write_case(lib, out, case):
    writer, fname, zero_dropout = CASES[case]
    assert writer == lib.writer
    model = lib.load_case(fname, zero_dropout)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    x, labels = make_batch(BATCH_NAME.get(case, case), shape, classes, N_BATCH)
    y = one_hot(labels, classes)
    table = lib.weight_table(model)
    trainable = lib.trainable_layers(model)

    loss, y_train, y_infer, grads = lib.forward(model, x, y)
    if not (np.all(np.isfinite(y_train)) and np.all(np.isfinite(y_infer))):
        raise RuntimeError(f"{case}: non-finite outputs")

    path = os.path.join(out, case + ".h5")
    w = Writer(path)
    f = w.f
    f.attrs["source"] = fname
    f.attrs["keras"] = lib.version
    f.attrs["dropout_zeroed"] = bool(zero_dropout)
    f.attrs["trainable_layers"] = json.dumps(trainable)
    f.attrs["weights"] = json.dumps([f"{p}/{r}" for p, r, _ in table])
    f.attrs["trainable_weights"] = json.dumps(
        [f"{p}/{r}" for p, r, v in table
         if id(v) in {id(t) for t in model.trainable_weights}])
    noise = lib.zero_gradient_weights(model)
    f.attrs["zero_gradient_weights"] = json.dumps(noise)
    w.array("x", x)
    w.array("y", y)
    w.array("forward/loss", np.float32(loss))
    w.array("forward/y_train", y_train.astype(np.float32))
    w.array("forward/y_infer", y_infer.astype(np.float32))

    by_id = {id(v): (p, r) for p, r, v in table}
    for var, g in zip(model.trainable_weights, grads):
        p, r = by_id[id(var)]
        if g is None:
            raise RuntimeError(f"{case}: no gradient for {p}/{r}")
        if f"{p}/{r}" in noise and float(np.abs(g).max()) > 1e-6:
            raise RuntimeError(f"{case}: {p}/{r} should have a zero gradient")
        w.array(f"grads/{p}/{r}", np.asarray(g, dtype=np.float32))

    step_losses = {}
    # Every optimizer on the small `nested` case; the larger cases record the two most used,
    # which keeps the committed files small.
    chosen = OPTIMIZERS if case == "nested" else [o for o in OPTIMIZERS if o[0] in ("sgd_momentum", "adam")]
    for name, cls, kwargs in chosen:
        config, results, _ = lib.train_steps(fname, zero_dropout, x, y, cls, kwargs)
        g = f.require_group(f"steps/{name}")
        g.attrs["optimizer"] = cls
        g.attrs["config"] = to_json(config)
        g.attrs["arguments"] = to_json(kwargs)
        for k, (step_loss, weights) in enumerate(results, start=1):
            w.array(f"steps/{name}/{k}/loss", np.float32(step_loss))
            for p, r, value in weights:
                w.array(f"steps/{name}/{k}/weights/{p}/{r}", value, dedupe=True)
        step_losses[name] = [l for l, _ in results]
        # train_on_batch reports the loss of the forward pass before the update
        if abs(results[0][0] - loss) > 1e-5 * max(1.0, abs(loss)):
            raise RuntimeError(f"{case}/{name}: step 1 loss {results[0][0]} "
                               f"!= forward loss {loss}")
    w.close()
    print(f"  {case + '.h5':22s} {os.path.getsize(path):>9,d} bytes  "
          f"loss={loss:.6f}  p=[{y_train.min():.3g}, {y_train.max():.3g}]  "
          f"trainable={len(trainable)} layers  "
          + " ".join(f"{n}:{l[1]:.4f}" for n, l in step_losses.items()),
          flush=True)


# --------------------------------------------------------------------------
# fit_plain.h5
# --------------------------------------------------------------------------


def write_fit(lib, out):
    fname = "k2_vgg_full.h5"
    model = lib.load(fname)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    classes = int(model.outputs[0].shape[-1])
    x, labels = make_batch("fit_plain", shape, classes, N_FIT)
    y = one_hot(labels, classes)

    model.compile(optimizer=lib.optimizer(*FIT_OPTIMIZER),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    running = []

    class Batches(lib.K.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            running.append([])

        def on_train_batch_end(self, batch, logs=None):
            running[-1].append(float(logs["loss"]))

    hist = model.fit(x, y, verbose=0, callbacks=[Batches()], **FIT_ARGS)
    weights = lib.weight_table(model)

    # The same training as separate train_on_batch calls: the per-batch
    # losses, and a check that fit does nothing else.
    again = lib.load(fname)
    again.compile(optimizer=lib.optimizer(*FIT_OPTIMIZER),
                  loss="categorical_crossentropy")
    bs = FIT_ARGS["batch_size"]
    batch_loss = []
    for _ in range(FIT_ARGS["epochs"]):
        batch_loss.append([float(again.train_on_batch(x[i:i + bs], y[i:i + bs]))
                           for i in range(0, N_FIT, bs)])
    for (p, r, a), (_, _, b) in zip(weights, lib.weight_table(again)):
        if not np.allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6):
            raise RuntimeError(f"fit and train_on_batch disagree on {p}/{r}")
    sizes = np.array([min(bs, N_FIT - i) for i in range(0, N_FIT, bs)], np.float64)
    for e, losses in enumerate(batch_loss):
        mean = float(np.dot(sizes, losses) / sizes.sum())
        if abs(mean - hist.history["loss"][e]) > 1e-5:
            raise RuntimeError(f"epoch {e + 1}: history loss "
                               f"{hist.history['loss'][e]} != weighted mean {mean}")

    path = os.path.join(out, "fit_plain.h5")
    w = Writer(path)
    f = w.f
    f.attrs["source"] = fname
    f.attrs["keras"] = lib.version
    f.attrs["xfer_args"] = json.dumps(FIT_XFER_ARGS)
    f.attrs["fit"] = to_json(FIT_ARGS)
    f.attrs["optimizer"] = FIT_OPTIMIZER[0]
    f.attrs["optimizer_config"] = to_json(model.optimizer.get_config())
    f.attrs["weights"] = json.dumps([f"{p}/{r}" for p, r, _ in weights])
    w.array("x", x)
    w.array("y", labels.astype(np.int32))
    for p, r, v in weights:
        w.array(f"fit/weights/{p}/{r}", np.asarray(v, dtype=np.float32))
    w.array("fit/history_loss", np.array(hist.history["loss"], np.float32))
    w.array("fit/history_accuracy", np.array(hist.history["accuracy"], np.float32))
    w.array("fit/batch_loss", np.array(batch_loss, np.float32))
    w.array("fit/batch_running_loss", np.array(running, np.float32))
    w.close()
    print(f"  {'fit_plain.h5':22s} {os.path.getsize(path):>9,d} bytes  "
          f"history loss={hist.history['loss']}", flush=True)


# --------------------------------------------------------------------------
# freeze_counts.json
# --------------------------------------------------------------------------


def parse_head(spec, K):
    layers = []
    for item in spec.split(","):
        parts = item.split(":")
        kind = parts[0]
        if kind == "flatten":
            layers.append(K.layers.Flatten())
        elif kind == "dense":
            act = parts[2] if len(parts) > 2 else None
            layers.append(K.layers.Dense(int(parts[1]), activation=act))
        elif kind == "dropout":
            layers.append(K.layers.Dropout(float(parts[1])))
        else:
            raise ValueError(item)
    return layers


def freeze_case(lib, fname, args, classes):
    K = lib.K
    opts = {"keep_top": "--keep-top" in args, "freeze_until": None,
            "head": DEFAULT_HEAD}
    for i, a in enumerate(args):
        if a == "--freeze-until":
            opts["freeze_until"] = args[i + 1]
        if a == "--head":
            opts["head"] = args[i + 1]
    model = lib.load(fname)
    if classes is None:
        classes = int(model.outputs[0].shape[-1])

    # The base: a nested model if there is one, else every layer up to and
    # including the last Conv2D/pooling layer.
    nested = [l for l in model.layers if lib.is_model(l)]
    if nested:
        (base,) = nested
        cut = model.layers.index(base)
        base_leaves = [l for l in base.layers]
    else:
        kinds = ("Conv2D", "MaxPooling2D", "AveragePooling2D")
        cut = max(i for i, l in enumerate(model.layers)
                  if l.__class__.__name__ in kinds)
        base_leaves = model.layers[:cut + 1]

    # Freeze plan (Keras terms: layer.trainable).
    for l in model.layers:
        if not lib.is_input(l):
            l.trainable = True
    for l in base_leaves:
        if not lib.is_input(l):
            l.trainable = True
    name = opts["freeze_until"]
    if name is None:
        frozen = [l for l in base_leaves]
        if nested:
            base.trainable = False  # the Keras recipe for a frozen base
    else:
        idx = next(i for i, l in enumerate(base_leaves)
                   if l.name == name or l.name.startswith(name + "_"))
        frozen = base_leaves[:idx]
    for l in frozen:
        if not lib.is_input(l):
            l.trainable = False

    if opts["keep_top"]:
        built = model
    else:
        K.backend.clear_session()  # head layers get Keras's default names
        head = parse_head(opts["head"], K) + [
            K.layers.Dense(classes, activation="softmax")]
        input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        if nested and isinstance(model, K.Sequential):
            built = K.Sequential([K.Input(input_shape), base] + head,
                                 name=model.name)
        elif nested:
            inputs = K.Input(input_shape)
            t = base(inputs)
            for l in head:
                t = l(t)
            built = K.Model(inputs, t, name=model.name)
        elif isinstance(model, K.Sequential):
            built = K.Sequential([K.Input(input_shape)]
                                 + list(model.layers[:cut + 1]) + head,
                                 name=model.name)
        else:
            t = model.layers[cut].output
            for l in head:
                t = l(t)
            built = K.Model(model.inputs, t, name=model.name)

    def count(weights):
        return int(sum(int(np.prod([int(d) for d in w.shape])) for w in weights))

    def rows(layers, parent):
        result = []
        for l in layers:
            result.append({
                "name": l.name,
                "type": l.__class__.__name__,
                "parent": parent,
                "trainable": bool(l.trainable),
                "params": int(l.count_params()) if l.weights else 0,
                "trainable_params": count(l.trainable_weights),
                "non_trainable_params": count(l.non_trainable_weights),
            })
            if lib.is_model(l):
                result.extend(rows(l.layers, l.name))
        return result

    total = int(built.count_params())
    trainable = count(built.trainable_weights)
    non_trainable = count(built.non_trainable_weights)
    assert total == trainable + non_trainable
    return {
        "checkpoint": fname,
        "args": list(args),
        "classes": classes,
        "keras": lib.version,
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "layers": rows(built.layers, None),
    }


# --------------------------------------------------------------------------


def part(writer, out, only=None):
    lib = Lib(writer)
    for case, (w, _, _) in CASES.items():
        if w == writer and (only is None or case in only):
            write_case(lib, out, case)
    if only is not None:
        return
    if writer == "tf_keras":
        write_fit(lib, out)
    counts = {}
    for cid, fname, args, classes in FREEZE_CASES:
        is_k3 = fname.endswith(".keras")
        if is_k3 == (writer == "keras3"):
            counts[cid] = freeze_case(lib, fname, args, classes)
            c = counts[cid]
            print(f"  freeze ({cid}) {fname} {' '.join(args)}: total "
                  f"{c['total_params']} trainable {c['trainable_params']} "
                  f"non-trainable {c['non_trainable_params']}", flush=True)
    write_json(os.path.join(out, f".freeze-{writer}.json"), counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "training"))
    ap.add_argument("--part", choices=["tf_keras", "keras3"])
    ap.add_argument("--optimizers", default=",".join(n for n, _, _ in OPTIMIZERS),
                    help="comma-separated subset of the optimizer configs to "
                         "record in steps/ (default: all; smaller files)")
    ap.add_argument("--only", metavar="CASE[,CASE...]",
                    help="(re)write only these <case>.h5 files; fit_plain.h5, "
                         "freeze_counts.json and the other cases are left as "
                         "they are")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    wanted = args.optimizers.split(",")
    unknown = set(wanted) - {n for n, _, _ in OPTIMIZERS}
    if unknown:
        ap.error(f"unknown optimizer configs: {sorted(unknown)}")
    OPTIMIZERS[:] = [o for o in OPTIMIZERS if o[0] in wanted]
    only = None if args.only is None else args.only.split(",")
    if only is not None and set(only) - set(CASES):
        ap.error(f"--only: unknown cases {sorted(set(only) - set(CASES))} "
                 f"(known: {', '.join(CASES)})")
    if args.part:
        part(args.part, out, only)
        return

    env = dict(os.environ, **ENV)
    if only is not None:
        os.makedirs(out, exist_ok=True)
        for name in ("tf_keras", "keras3"):
            if any(CASES[c][0] == name for c in only):
                print(f"{name}:", flush=True)
                subprocess.run([sys.executable, os.path.abspath(__file__),
                                "--out", out, "--part", name, "--optimizers",
                                args.optimizers, "--only", ",".join(only)],
                               check=True, env=env)
        return

    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    counts = {}
    for name in ("tf_keras", "keras3"):
        print(f"{name}:", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--out", out,
                        "--part", name, "--optimizers", args.optimizers],
                       check=True, env=env)
        partial = os.path.join(out, f".freeze-{name}.json")
        with open(partial) as f:
            counts.update(json.load(f))
        os.remove(partial)
    write_json(os.path.join(out, "freeze_counts.json"),
               [dict(id=cid, **counts[cid]) for cid, *_ in FREEZE_CASES])
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"{len(os.listdir(out))} files, {total:,} bytes in {out}")


if __name__ == "__main__":
    main()
