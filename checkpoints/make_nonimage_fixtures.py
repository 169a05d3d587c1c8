"""Writes the non-image reference data in checkpoints/nonimage/.

Models whose input is a feature vector (F,) or a sequence (T, F), each saved by
tf-keras (`<case>_k2.h5`) and Keras 3 (`<case>_k3.keras`), seeded weights and
moving statistics, and what Keras computes with them:

  issue       Sequential([Dense(10, trainable=False, input_shape=(100,)),
              BatchNormalization()]) (the example of the issue): counts, predict
  mlp         (8,) -> Dense(16, relu) -> BatchNormalization -> Dense(3, softmax)
  seq         (6, 4) -> Dense(8, relu) on the last axis -> BatchNormalization
              -> GlobalAveragePooling1D -> Dense(3, softmax)
  seq_pool    (6, 4) -> Conv1D(5, 3, relu) -> GlobalMaxPooling1D -> Dense(3, softmax)
              (inference only)
  seq_conv    (6, 4) -> Conv1D(6, 3, same, relu) -> BatchNormalization(scale=False) -> Flatten
              -> Dense(5, relu) -> BatchNormalization(center=False) -> Dense(3, softmax)

  <case>_data.h5   x (N, F) or (N, T, F) float32, y (N) int labels, and
                   keras/predict (N, units): model.predict(x)
                   keras/evaluate_loss, keras/evaluate_accuracy, keras/evaluate_top2:
                     model.evaluate with sparse_categorical_crossentropy
                   fit/weights/<layer>/<role>: every weight after
                     model.fit(x, y, batch_size=4, epochs=2, shuffle=False) with SGD
                     (lr 0.1, momentum 0.9) (mlp, seq, seq_conv)
                   fit/history_loss
                   attribute xfer_args (JSON): the finetune command that repeats the fit
  expected.json    per file: total / trainable / non-trainable counts (Keras's)

Run (a few seconds): "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_nonimage_fixtures.py
The tf-keras and Keras 3 parts run in separate processes.
"""

import json
import os
import subprocess
import sys

from fixture_env import ENV  # noqa: E402  (before TensorFlow: sets the environment)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nonimage")
SEED = 1234
N = 12
BATCH = 4
EPOCHS = 2
LR = 0.1
MOMENTUM = 0.9
TRAINED = {"mlp": "d1", "seq": "d1", "seq_conv": "conv1"}  # case -> its first layer (--freeze-until)


def build(K, case):
    L = K.layers
    if case == "issue":
        return K.Sequential([K.Input((100,)), L.Dense(10, trainable=False, name="dense"),
                             L.BatchNormalization(name="batch_normalization")], name="issue")
    if case == "mlp":
        i = K.Input((8,), name="features")
        t = L.Dense(16, activation="relu", name="d1")(i)
        t = L.BatchNormalization(name="bn1")(t)
        return K.Model(i, L.Dense(3, activation="softmax", name="out")(t), name="mlp")
    if case == "seq":
        i = K.Input((6, 4), name="series")
        t = L.Dense(8, activation="relu", name="d1")(i)
        t = L.BatchNormalization(name="bn1")(t)
        t = L.GlobalAveragePooling1D(name="gap")(t)
        return K.Model(i, L.Dense(3, activation="softmax", name="out")(t), name="seq")
    if case == "seq_pool":
        i = K.Input((6, 4), name="series")
        t = L.Conv1D(5, 3, activation="relu", name="conv1")(i)
        t = L.GlobalMaxPooling1D(name="gmp")(t)
        return K.Model(i, L.Dense(3, activation="softmax", name="out")(t), name="seq_pool")
    if case == "seq_conv":
        i = K.Input((6, 4), name="series")
        t = L.Conv1D(6, 3, padding="same", activation="relu", name="conv1")(i)
        t = L.BatchNormalization(scale=False, name="bn1")(t)
        t = L.Flatten(name="flat")(t)
        t = L.Dense(5, activation="relu", name="d2")(t)
        t = L.BatchNormalization(center=False, name="bn2")(t)
        return K.Model(i, L.Dense(3, activation="softmax", name="out")(t), name="seq_conv")
    raise KeyError(case)


def seed_weights(model, rng):
    """Seeded weights, BatchNormalization statistics away from 0/1 so inference uses them."""
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if layer.__class__.__name__ == "BatchNormalization":
            c = ws[0].shape[0]
            values = {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.uniform(-0.3, 0.3, c),
                      "moving_mean": rng.uniform(-0.5, 0.5, c), "moving_variance": rng.uniform(0.5, 2.0, c)}
            ws = [values[role(w)] for w in layer.weights]
        else:
            ws = [rng.normal(0, 0.4, w.shape) for w in ws]
        layer.set_weights([np.asarray(w, np.float32) for w in ws])


def role(w):
    name = w.path if hasattr(w, "path") else w.name
    return name.split("/")[-1].split(":")[0]


def data(case, rng):
    shape = {"issue": (100,), "mlp": (8,), "seq": (6, 4), "seq_pool": (6, 4), "seq_conv": (6, 4)}[case]
    x = rng.normal(0, 1, (N,) + shape).astype(np.float32)
    y = (np.arange(N) % 3).astype(np.int64)
    return x, y


def part(lib):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if lib == "tf_keras":
        import tf_keras as K
        suffix, ext = "k2", ".h5"
    else:
        import keras as K
        suffix, ext = "k3", ".keras"
    expected = {}
    for case in ("issue", "mlp", "seq", "seq_pool", "seq_conv"):
        K.backend.clear_session()
        K.utils.set_random_seed(SEED)
        rng = np.random.default_rng(SEED + len(case))
        model = build(K, case)
        seed_weights(model, rng)
        x, y = data(case, np.random.default_rng(SEED))
        fname = f"{case}_{suffix}{ext}"
        model.save(os.path.join(HERE, fname))
        expected[fname] = {
            "total_params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "non_trainable_params": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
        }
        with h5py.File(os.path.join(HERE, f"{case}_{suffix}_data.h5"), "w") as f:
            f["x"] = x
            f["y"] = y
            f["keras/predict"] = model.predict(x, verbose=0).astype(np.float32)
            if case == "issue":
                continue
            model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy", K.metrics.SparseTopKCategoricalAccuracy(k=2)])
            loss, acc, top2 = model.evaluate(x, y, batch_size=BATCH, verbose=0)
            f["keras/evaluate_loss"] = np.float32(loss)
            f["keras/evaluate_accuracy"] = np.float32(acc)
            f["keras/evaluate_top2"] = np.float32(top2)
            if case not in TRAINED:
                continue
            model.compile(optimizer=K.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            h = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0)
            f["fit/history_loss"] = np.array(h.history["loss"], np.float32)
            for layer in model.layers:
                for w in layer.weights:
                    f[f"fit/weights/{layer.name}/{role(w)}"] = np.asarray(w.numpy(), np.float32)
            f.attrs["xfer_args"] = json.dumps([
                fname, "--data", f"{case}_{suffix}_data.h5", "--keep-top", "--freeze-until", TRAINED[case],
                "--loss", "sparse_categorical_crossentropy", "--no-shuffle", "--batch-size", str(BATCH),
                "--epochs", str(EPOCHS), "--optimizer", "sgd", "--lr", repr(LR), "--momentum", repr(MOMENTUM)])
            print(f"  {fname}: loss {['%.6f' % l for l in h.history['loss']]}", flush=True)
    with open(os.path.join(HERE, f"expected_{suffix}.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


def main():
    if len(sys.argv) > 1:
        part(sys.argv[1])
        return
    os.makedirs(HERE, exist_ok=True)
    for lib in ("tf_keras", "keras3"):
        print(f"{lib}:", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), lib], check=True, env=dict(os.environ, **ENV))
    expected = {}
    for suffix in ("k2", "k3"):
        p = os.path.join(HERE, f"expected_{suffix}.json")
        with open(p) as f:
            expected.update(json.load(f))
        os.remove(p)
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
