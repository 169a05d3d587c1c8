"""Writes the grouped-convolution reference data in checkpoints/grouped/.

Keras Conv2D with 1 < groups < input channels (RegNet's group convolutions), each case a small
model Input(9, 9, 8) -> ... -> Conv2D named `gconv` -> GlobalAveragePooling2D -> Dense(3, softmax) named `out`,
saved by tf-keras (`<case>_k2.h5`) and Keras 3 (`<case>_k3.keras`), seeded weights
(make_op_fixtures.seed_weights):

  s1_same     Conv2D(12, 3, groups=4, padding='same')
  s2_valid    Conv2D(12, 3, strides=2, groups=4, padding='valid')
  s2_same     Conv2D(12, 3, strides=2, groups=4, padding='same') (TensorFlow's uneven padding)
  dilated     Conv2D(12, 3, dilation_rate=2, groups=4, padding='same')
  nobias      Conv2D(12, (2, 3), groups=2, use_bias=False)
  relu        Conv2D(12, 3, groups=4, padding='same', activation='relu')
  pointwise   Conv2D(12, 1, groups=4) (no im2col)
  pad_bn      ZeroPadding2D(1) -> Conv2D(16, 3, strides=2, groups=2, use_bias=False)
              -> BatchNormalization -> ReLU (RegNet's wiring; xfer folds the padding and the BN)

  <case>_<k2|k3>_data.h5
    x, y                      a batch (N, 9, 9, 8) and one-hot labels (N, 3)
    keras/predict             model.predict(x)
    conv/x, conv/y            gconv's input and output (inference) on that batch
    conv/r                    a fixed random tensor of conv/y's shape
    conv/grads/{kernel,bias,input}
                              tf.GradientTape gradients of sum(gconv(conv/x) * r)
    forward/loss, grads/<layer>/<role>
                              the categorical cross-entropy of the whole model and its
                              gradients (make_training_fixtures.Lib.forward)
    steps/sgd_momentum/<k>/{loss,weights/<layer>/<role>}
                              after k = 1, 2 train_on_batch steps of SGD(0.05, momentum 0.9)
  expected.json               per model file: total / trainable / non-trainable counts (Keras's)

Run (under a minute): "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_grouped_conv_fixtures.py
The tf-keras and Keras 3 parts run in separate processes.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_env import ENV  # noqa: E402  (before TensorFlow: sets the environment)
import make_training_fixtures as training  # noqa: E402
from make_op_fixtures import seed_weights  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grouped")
SEED = 808
N = 3
SHAPE = (9, 9, 8)
CLASSES = 3
OPTIMIZER = next(o for o in training.OPTIMIZERS if o[0] == "sgd_momentum")

CASES = {
    "s1_same": dict(filters=12, kernel_size=3, groups=4, padding="same"),
    "s2_valid": dict(filters=12, kernel_size=3, strides=2, groups=4, padding="valid"),
    "s2_same": dict(filters=12, kernel_size=3, strides=2, groups=4, padding="same"),
    "dilated": dict(filters=12, kernel_size=3, dilation_rate=2, groups=4, padding="same"),
    "nobias": dict(filters=12, kernel_size=(2, 3), groups=2, use_bias=False),
    "relu": dict(filters=12, kernel_size=3, groups=4, padding="same", activation="relu"),
    "pointwise": dict(filters=12, kernel_size=1, groups=4),
    "pad_bn": dict(filters=16, kernel_size=3, strides=2, groups=2, use_bias=False),
}


def build(K, case):
    L = K.layers
    i = K.Input(SHAPE)
    t = L.ZeroPadding2D(1, name="pad")(i) if case == "pad_bn" else i
    t = L.Conv2D(name="gconv", **CASES[case])(t)
    if case == "pad_bn":
        t = L.BatchNormalization(name="bn")(t)
        t = L.ReLU(name="relu")(t)
    t = L.GlobalAveragePooling2D(name="gap")(t)
    return K.Model(i, L.Dense(CLASSES, activation="softmax", name="out")(t), name=case)


class GroupedLib(training.Lib):
    """make_training_fixtures' Keras side, its models read from grouped/."""

    def load(self, fname):
        path = os.path.join(HERE, fname)
        self.K.backend.clear_session()
        self.K.utils.set_random_seed(SEED)
        if self.writer == "tf_keras":
            return self.K.models.load_model(path, compile=False)
        return self.K.saving.load_model(path, compile=False)


def conv_gradients(lib, model, w, rng):
    """gconv alone on its input: output and the gradients of sum(output * r)."""
    tf = lib.tf
    conv = model.get_layer("gconv")
    x_in = w.f["x"][()]
    if "pad" in [layer.name for layer in model.layers]:
        x_in = np.asarray(model.get_layer("pad")(x_in), np.float32)
    x_t = tf.constant(x_in)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        y = conv(x_t)
        r = rng.normal(0, 1, tuple(y.shape)).astype(np.float32)
        loss = tf.reduce_sum(y * r)
    variables = [conv.kernel] + ([conv.bias] if conv.use_bias else [])
    grads = tape.gradient(loss, variables + [x_t])
    w.array("conv/x", x_in, dedupe=True)
    w.array("conv/y", np.asarray(y, np.float32))
    w.array("conv/r", r)
    w.array("conv/grads/kernel", np.asarray(grads[0], np.float32))
    if conv.use_bias:
        w.array("conv/grads/bias", np.asarray(grads[1], np.float32))
    w.array("conv/grads/input", np.asarray(grads[-1], np.float32))


def part(writer):
    lib = GroupedLib(writer)
    K = lib.K
    suffix, ext = ("k2", ".h5") if writer == "tf_keras" else ("k3", ".keras")
    expected = {}
    for case in CASES:
        K.backend.clear_session()
        K.utils.set_random_seed(SEED)
        model = build(K, case)
        seed_weights(model, np.random.default_rng(SEED + len(case)))
        fname = f"{case}_{suffix}{ext}"
        model.save(os.path.join(HERE, fname))
        expected[fname] = {
            "total_params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
            "non_trainable_params": int(sum(np.prod(v.shape) for v in model.non_trainable_weights)),
        }
        # The same batch and labels for both libraries.
        rng = np.random.default_rng(SEED)
        x = rng.normal(0, 1, (N,) + SHAPE).astype(np.float32)
        y = training.one_hot(rng.integers(0, CLASSES, N), CLASSES)
        model = lib.load(fname)
        data = os.path.join(HERE, f"{case}_{suffix}_data.h5")
        w = training.Writer(data)
        w.f.attrs["keras"] = lib.version
        w.array("x", x, dedupe=True)
        w.array("y", y)
        w.array("keras/predict", model.predict(x, verbose=0).astype(np.float32))
        conv_gradients(lib, model, w, rng)
        loss, _, _, grads = lib.forward(model, x, y)
        w.array("forward/loss", np.float32(loss))
        by_id = {id(v): (p, r) for p, r, v in lib.weight_table(model)}
        for var, g in zip(model.trainable_weights, grads):
            p, r = by_id[id(var)]
            w.array(f"grads/{p}/{r}", np.asarray(g, np.float32))
        name, cls, kwargs = OPTIMIZER
        config, results, _ = lib.train_steps(fname, False, x, y, cls, kwargs)
        g = w.f.require_group(f"steps/{name}")
        g.attrs["optimizer"] = cls
        g.attrs["config"] = training.to_json(config)
        for k, (step_loss, weights) in enumerate(results, start=1):
            w.array(f"steps/{name}/{k}/loss", np.float32(step_loss))
            for p, r, value in weights:
                w.array(f"steps/{name}/{k}/weights/{p}/{r}", value, dedupe=True)
        w.close()
        print(f"  {fname:20s} loss={loss:.5f} params={expected[fname]['total_params']}", flush=True)
    with open(os.path.join(HERE, f"expected_{suffix}.json"), "w") as f:
        json.dump(expected, f)


def main():
    if len(sys.argv) > 1:
        part(sys.argv[1])
        return
    os.makedirs(HERE, exist_ok=True)
    for writer in ("tf_keras", "keras3"):
        print(f"{writer}:", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), writer], check=True,
                       env=dict(os.environ, **ENV))
    expected = {}
    for suffix in ("k2", "k3"):
        p = os.path.join(HERE, f"expected_{suffix}.json")
        with open(p) as f:
            expected.update(json.load(f))
        os.remove(p)
    training.write_json(os.path.join(HERE, "expected.json"), dict(sorted(expected.items())))


if __name__ == "__main__":
    main()
