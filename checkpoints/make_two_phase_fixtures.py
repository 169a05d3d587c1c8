"""Writes checkpoints/two_phase/two_phase_k2.h5 and two_phase_k3.h5 (beside training/, which
make_training_fixtures.py rewrites as a whole): Keras's
transfer-learning guide done by hand, two fits, as `xfer finetune ... --then-unfreeze`
repeats it in one command.

The recipe (keras.io/guides/transfer_learning, "fine-tuning"), on the tiny BN VGG of
make_checkpoints.py (k2_vgg_bn.h5 with tf_keras, k3_bn.keras with Keras 3, no Dropout)
and the 10 samples of training/fit_plain.h5, batch 4, shuffle=False:

  the BatchNormalization layers are called with training=False (the guide's
  `base_model(inputs, training=False)`), so they stay in inference mode when unfrozen;
  phase 1: the base (every layer up to block3_pool) frozen, compile(OPT1), fit 2 epochs;
  phase 2: every layer from block3_conv1 on trainable (blocks 1-2 stay frozen),
  compile(OPT2) -- a fresh optimizer, its own learning rate -- fit 2 more epochs.

For two optimizer recipes (Adam 1e-2 then 1e-3, as the guide's Adam with a lower
rate; SGD momentum 0.9, 0.05 then 0.01) each file holds per recipe:
<recipe>/weights/<layer>/<role> (every weight after phase 2), <recipe>/history_loss and
<recipe>/history_accuracy (the 4 epochs, as each fit logs them), attribute xfer_args
(the command line that repeats it; DATA and the checkpoint relative to
checkpoints/fixtures) and attribute keras.

Run (a few seconds): "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_two_phase_fixtures.py
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_training_fixtures as mtf  # noqa: E402  (sets the TensorFlow environment first)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

CASES = {"two_phase_k2": ("tf_keras", "k2_vgg_bn.h5"), "two_phase_k3": ("keras3", "k3_bn.keras")}
RECIPES = {
    "adam": (("Adam", {"learning_rate": 0.01}), ("Adam", {"learning_rate": 0.001})),
    "sgd": (("SGD", {"learning_rate": 0.05, "momentum": 0.9}), ("SGD", {"learning_rate": 0.01, "momentum": 0.9})),
}
EPOCHS = (2, 2)
BATCH = 4
BASE_END = "block3_pool"
UNFREEZE = "block3"


def xfer_args(fname, recipe):
    (c1, k1), (c2, k2) = RECIPES[recipe]
    args = [fname, "--data", "../training/fit_plain.h5", "--keep-top", "--loss", "categorical_crossentropy",
            "--no-shuffle", "--batch-size", str(BATCH), "--epochs", str(EPOCHS[0]),
            "--optimizer", c1.lower(), "--lr", repr(k1["learning_rate"])]
    if "momentum" in k1:
        args += ["--momentum", repr(k1["momentum"])]
    args += ["--then-unfreeze", UNFREEZE, "--then-epochs", str(EPOCHS[1]), "--then-lr", repr(k2["learning_rate"])]
    assert c1 == c2 and k1.get("momentum") == k2.get("momentum")
    return args


def run(lib, fname, recipe, x, y):
    K = lib.K
    model = lib.load(fname)
    # The guide's base(inputs, training=False): each BatchNormalization layer called in
    # inference mode, the same layer objects (weights shared with `model`).
    # tf-keras honours it. Keras 3's fit passes training=True to every layer and overrides it
    # (keras-team/keras#20285), so there each BatchNormalization layer's own call is pinned to
    # inference mode instead, which is what the guide asks for.
    inputs = K.Input(tuple(int(d) for d in model.inputs[0].shape[1:]))
    t = inputs
    for layer in model.layers:
        if lib.is_input(layer):
            continue
        if isinstance(layer, K.layers.BatchNormalization):
            if lib.writer == "keras3":
                layer.call = (lambda call: lambda inputs, training=None, mask=None: call(inputs, training=False, mask=mask))(layer.call)
            t = layer(t, training=False)
        else:
            t = layer(t)
    m = K.Model(inputs, t)
    names = [l.name for l in model.layers if not lib.is_input(l)]
    base = set(names[:names.index(BASE_END) + 1])
    first = next(i for i, n in enumerate(names) if n == UNFREEZE or n.startswith(UNFREEZE + "_"))
    (c1, k1), (c2, k2) = RECIPES[recipe]

    for layer in model.layers:
        layer.trainable = layer.name not in base
    m.compile(optimizer=lib.optimizer(c1, k1), loss="categorical_crossentropy", metrics=["accuracy"])
    h1 = m.fit(x, y, batch_size=BATCH, epochs=EPOCHS[0], shuffle=False, verbose=0)
    stats = {(p, r): np.array(w) for p, r, w in lib.weight_table(model) if r.startswith("moving")}

    for layer in model.layers:
        layer.trainable = layer.name in names[first:]
    m.compile(optimizer=lib.optimizer(c2, k2), loss="categorical_crossentropy", metrics=["accuracy"])
    h2 = m.fit(x, y, batch_size=BATCH, epochs=EPOCHS[1], shuffle=False, verbose=0)
    weights = lib.weight_table(model)
    # Inference mode: the unfrozen BatchNormalization layers kept their moving statistics.
    for p, r, w in weights:
        if r.startswith("moving") and not np.array_equal(np.array(w), stats[(p, r)]):
            raise RuntimeError(f"{p}/{r} changed in phase 2")
    history = {k: h1.history[k] + h2.history[k] for k in ("loss", "accuracy")}
    return weights, history


def part(name):
    lib = mtf.Lib(name)
    with h5py.File(os.path.join(mtf.HERE, "training", "fit_plain.h5"), "r") as f:
        x = np.array(f["x"])
        labels = np.array(f["y"])
    for case, (writer, fname) in CASES.items():
        if writer != name:
            continue
        os.makedirs(os.path.join(mtf.HERE, "two_phase"), exist_ok=True)
        path = os.path.join(mtf.HERE, "two_phase", f"{case}.h5")
        w = mtf.Writer(path)
        w.f.attrs["source"] = fname
        w.f.attrs["keras"] = lib.version
        for recipe in RECIPES:
            weights, history = run(lib, fname, recipe, x, mtf.one_hot(labels, 5))
            g = w.f.create_group(recipe)
            g.attrs["xfer_args"] = json.dumps(xfer_args(fname, recipe))
            for p, r, v in weights:
                w.array(f"{recipe}/weights/{p}/{r}", np.asarray(v, dtype=np.float32))
            w.array(f"{recipe}/history_loss", np.array(history["loss"], np.float32))
            w.array(f"{recipe}/history_accuracy", np.array(history["accuracy"], np.float32))
            print(f"  {case}/{recipe}: loss {['%.6f' % l for l in history['loss']]}", flush=True)
        w.close()


def main():
    if len(sys.argv) > 1:
        part(sys.argv[1])
        return
    env = dict(os.environ, **mtf.ENV)
    for name in ("tf_keras", "keras3"):
        print(f"{name}:", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), name], check=True, env=env)


if __name__ == "__main__":
    main()
