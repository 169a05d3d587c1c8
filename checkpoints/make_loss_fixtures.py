"""Writes the loss and metric reference data in checkpoints/losses/.

For each loss xfer trains with, Keras builds a small compiled model
(input 6x6x2, Conv2D `conv1` 3 filters 3x3 relu, MaxPooling2D, Flatten, one
Dense head; seeded weights) and a small data set, then records:

  <case>.h5 / <case>.keras   the compiled model before training (tf_keras
                             .h5 with `training_config`; Keras 3 .keras with
                             `compile_config`): xfer takes its loss from it
  <case>_data.h5             x, y, [sample_weight] (xfer's DATA), and what Keras computed:
                             fit/weights/<layer>/<role> after one epoch of
                             model.fit(x, y, batch_size=4, shuffle=False),
                             with class_weight where the case has one
  expected.json              per case: the xfer command line that repeats
                             the fit, Keras's logged epoch loss and metric,
                             model.evaluate(x, y) of the untrained model
                             with the metrics xfer evaluate prints, and, for
                             classifiers, the per-class (multi-label: per-label)
                             precision/recall/F1 and the confusion matrix
                             (Keras metrics)

Run (about a minute on one CPU core):

  "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_loss_fixtures.py

The tf_keras and Keras 3 parts run in separate processes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

from fixture_env import ENV  # noqa: E402  (before TensorFlow: sets the environment)

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 1234
N = 10
BATCH = 4
SHAPE = (6, 6, 2)

# case -> spec. loss: (Keras loss class, kwargs); y: how the targets look;
# units/activation: the Dense head; optimizer: (class, kwargs, xfer flags);
# class_weight: dict or "balanced" (sklearn's n / (classes * count)), given
# to xfer as --class-weight; sample_weight: the data file holds `sample_weight`
# and fit gets it.
CASES = {
    "bce_sigmoid": dict(lib="tf_keras", units=1, activation="sigmoid",
                        loss=("BinaryCrossentropy", {}), y="binary",
                        optimizer=("SGD", {"learning_rate": 0.1})),
    "bce_logits_smooth": dict(lib="tf_keras", units=1, activation=None,
                              loss=("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}),
                              y="binary", optimizer=("Adam", {"learning_rate": 0.01})),
    "bce_balanced": dict(lib="tf_keras", units=1, activation="sigmoid",
                         loss=("BinaryCrossentropy", {}), y="binary_skewed",
                         optimizer=("SGD", {"learning_rate": 0.1}), class_weight="balanced"),
    "multilabel": dict(lib="tf_keras", units=3, activation="sigmoid",
                       loss=("BinaryCrossentropy", {}), y="multi_hot",
                       optimizer=("SGD", {"learning_rate": 0.1, "momentum": 0.9})),
    "cce_smooth": dict(lib="tf_keras", units=3, activation="softmax",
                       loss=("CategoricalCrossentropy", {"label_smoothing": 0.1}), y="one_hot",
                       optimizer=("SGD", {"learning_rate": 0.1})),
    "scce_logits": dict(lib="tf_keras", units=3, activation=None,
                        loss=("SparseCategoricalCrossentropy", {"from_logits": True}), y="sparse",
                        optimizer=("Adam", {"learning_rate": 0.01})),
    "scce_class_weight": dict(lib="tf_keras", units=3, activation="softmax",
                              loss=("SparseCategoricalCrossentropy", {}), y="sparse",
                              optimizer=("SGD", {"learning_rate": 0.1}),
                              class_weight={0: 1.0, 1: 2.0, 2: 0.5}),
    "mse": dict(lib="tf_keras", units=1, activation=None,
                loss=("MeanSquaredError", {}), y="regression",
                optimizer=("SGD", {"learning_rate": 0.01})),
    "mae": dict(lib="tf_keras", units=2, activation=None,
                loss=("MeanAbsoluteError", {}), y="regression",
                optimizer=("Adam", {"learning_rate": 0.01})),
    "huber": dict(lib="tf_keras", units=1, activation=None,
                  loss=("Huber", {"delta": 0.5}), y="regression",
                  optimizer=("SGD", {"learning_rate": 0.02, "momentum": 0.9})),
    # sample_weight in the DATA file (fit(sample_weight=...)), times class_weight.
    "bce_sample_weight": dict(lib="tf_keras", units=1, activation="sigmoid",
                              loss=("BinaryCrossentropy", {}), y="binary",
                              optimizer=("SGD", {"learning_rate": 0.1}), class_weight={0: 1.0, 1: 2.0},
                              sample_weight=True),
    "mse_sample_weight": dict(lib="tf_keras", units=1, activation=None,
                              loss=("MeanSquaredError", {}), y="regression",
                              optimizer=("SGD", {"learning_rate": 0.01}), sample_weight=True),
    "bce_k3": dict(lib="keras3", units=1, activation="sigmoid",
                   loss=("BinaryCrossentropy", {}), y="binary",
                   optimizer=("Adam", {"learning_rate": 0.01})),
    "mse_k3": dict(lib="keras3", units=1, activation=None,
                   loss=("MeanSquaredError", {}), y="regression",
                   optimizer=("SGD", {"learning_rate": 0.01})),
}


def rng_for(name):
    return np.random.default_rng(SEED + sum((i + 1) * b for i, b in enumerate(name.encode())))


def make_data(name, spec):
    rng = rng_for(name)
    x = rng.standard_normal((N,) + SHAPE).astype(np.float32)
    kind, units = spec["y"], spec["units"]
    if kind == "binary":
        y = np.array([0, 1] * (N // 2), np.int32)
        rng.shuffle(y)
    elif kind == "binary_skewed":
        y = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], np.int32)
    elif kind == "multi_hot":
        y = (rng.random((N, units)) < 0.4).astype(np.float32)
        y[0] = [1, 0, 1]
        y[1] = [0, 0, 0]
    elif kind == "one_hot":
        labels = np.arange(N) % units
        rng.shuffle(labels)
        y = np.eye(units, dtype=np.float32)[labels]
    elif kind == "sparse":
        y = (np.arange(N) % units).astype(np.int32)
        rng.shuffle(y)
    elif kind == "regression":
        y = (rng.standard_normal((N, units)) * 0.8 + 0.3).astype(np.float32)
    else:
        raise ValueError(kind)
    return x, y


def class_ids(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return np.round(y.reshape(-1)).astype(np.int64)


def class_weight_of(spec, y):
    cw = spec.get("class_weight")
    if cw == "balanced":
        ids = class_ids(y)
        classes = max(2, int(ids.max()) + 1)
        counts = np.bincount(ids, minlength=classes)
        return {c: float(N / (classes * counts[c])) for c in range(classes)}
    return cw


class Lib:
    def __init__(self, writer):
        import logging
        import warnings

        import tensorflow as tf

        warnings.filterwarnings("ignore")
        tf.get_logger().setLevel(logging.ERROR)
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf = tf
        self.writer = writer
        if writer == "tf_keras":
            import tf_keras as K
        else:
            import keras as K
        self.K = K
        self.version = f"{writer} {K.__version__}"

    def build(self, name, spec):
        K = self.K
        K.backend.clear_session()
        K.utils.set_random_seed(SEED)
        rng = rng_for(name + "/weights")
        inputs = K.Input(SHAPE, name="input")
        t = K.layers.Conv2D(3, 3, activation="relu", name="conv1")(inputs)
        t = K.layers.MaxPooling2D(2, name="pool1")(t)
        t = K.layers.Flatten(name="flatten")(t)
        t = K.layers.Dense(spec["units"], activation=spec["activation"], name="head")(t)
        model = K.Model(inputs, t, name=name)
        for layer in model.layers:
            if layer.weights:
                layer.set_weights([(rng.standard_normal(w.shape) * 0.3).astype(np.float32)
                                   for w in layer.get_weights()])
        return model

    def loss(self, spec):
        cls, kwargs = spec["loss"]
        return getattr(self.K.losses, cls)(**kwargs)

    def optimizer(self, spec):
        cls, kwargs = spec["optimizer"]
        return getattr(self.K.optimizers, cls)(**kwargs)

    def main_metric_name(self, spec):
        """The metric xfer logs per epoch: Keras's `accuracy` (binary
        accuracy for one sigmoid unit), `binary_accuracy` for multi-label
        heads (Keras would resolve "accuracy" to the categorical one there),
        `mae` for regression."""
        return {"regression": "mae", "multi_hot": "binary_accuracy"}.get(spec["y"], "accuracy")

    def main_metric(self, spec):
        K = self.K
        name = self.main_metric_name(spec)
        if spec["y"] == "multi_hot":
            return K.metrics.BinaryAccuracy(name=name)
        if spec["activation"] is None and spec["y"] in ("binary", "binary_skewed"):
            # A logit > 0 is a probability > 0.5.
            return K.metrics.BinaryAccuracy(name=name, threshold=0.0)
        return name

    def eval_metrics(self, spec):
        K = self.K
        kind = spec["y"]
        if kind == "regression":
            return ["mae", "mse", K.metrics.RootMeanSquaredError(name="root_mean_squared_error")]
        logits = spec["activation"] is None
        if kind == "multi_hot":
            return [K.metrics.BinaryAccuracy(name="binary_accuracy"), K.metrics.AUC(name="auc"),
                    K.metrics.Precision(name="precision"), K.metrics.Recall(name="recall")]
        if kind in ("binary", "binary_skewed"):
            if logits:
                # On logits, 0 is the probabilities' 0.5.
                return [K.metrics.BinaryAccuracy(name="accuracy", threshold=0.0),
                        K.metrics.AUC(name="auc", from_logits=True),
                        K.metrics.Precision(name="precision", thresholds=0.0),
                        K.metrics.Recall(name="recall", thresholds=0.0)]
            return ["accuracy", K.metrics.AUC(name="auc"), K.metrics.Precision(name="precision"),
                    K.metrics.Recall(name="recall")]
        top = (K.metrics.SparseTopKCategoricalAccuracy if kind == "sparse"
               else K.metrics.TopKCategoricalAccuracy)(k=2, name="top_2_accuracy")
        return ["accuracy", top]

    def load(self, path):
        if self.writer == "tf_keras":
            return self.K.models.load_model(path)
        return self.K.saving.load_model(path)

    def weight_table(self, model):
        rows = []
        for layer in model.layers:
            for w in layer.weights:
                role = w.name.split("/")[-1].split(":")[0]
                rows.append((layer.name, role, np.asarray(w.numpy(), np.float32)))
        return rows


def per_label(lib, model, x, y):
    """Multi-label: per label, Keras's Precision(class_id=j), Recall(class_id=j)
    and F1Score(average=None, threshold=0.5) at the default threshold 0.5."""
    K = lib.K
    p = np.asarray(model.predict(x, batch_size=BATCH, verbose=0), np.float32)
    rows = []
    for j in range(p.shape[1]):
        prec, rec = K.metrics.Precision(class_id=j), K.metrics.Recall(class_id=j)
        prec.update_state(y, p)
        rec.update_state(y, p)
        rows.append({"precision": float(prec.result()), "recall": float(rec.result()), "support": int(y[:, j].sum())})
    f1 = K.metrics.F1Score(average=None, threshold=0.5)
    f1.update_state(y, p)
    for j, v in enumerate(np.asarray(f1.result())):
        rows[j]["f1"] = float(v)
    return rows


def per_class(lib, model, x, y, spec):
    """Per-class precision/recall/F1 and the confusion matrix, by Keras's
    metrics on the predicted class (argmax; for one sigmoid unit, > 0.5)."""
    K = lib.K
    p = np.asarray(model.predict(x, batch_size=BATCH, verbose=0), np.float32)
    if spec["activation"] is None:
        p = np.asarray(lib.tf.nn.softmax(p) if spec["units"] > 1 else lib.tf.sigmoid(p))
    if spec["units"] == 1:
        p = np.concatenate([1 - p, p], axis=1)
    classes = p.shape[1]
    truth = np.eye(classes, dtype=np.float32)[class_ids(y)]
    rows = []
    for c in range(classes):
        prec = K.metrics.Precision(class_id=c, top_k=1)
        rec = K.metrics.Recall(class_id=c, top_k=1)
        prec.update_state(truth, p)
        rec.update_state(truth, p)
        rows.append({"precision": float(prec.result()), "recall": float(rec.result())})
    f1 = K.metrics.F1Score(average=None)
    predicted = np.eye(classes, dtype=np.float32)[p.argmax(axis=1)]
    f1.update_state(truth, predicted)
    for c, v in enumerate(np.asarray(f1.result())):
        rows[c]["f1"] = float(v)
        rows[c]["support"] = int(truth[:, c].sum())
    confusion = np.asarray(lib.tf.math.confusion_matrix(truth.argmax(1), p.argmax(1), num_classes=classes))
    return rows, confusion.tolist()


def write_case(lib, out, name, spec):
    K = lib.K
    ext = ".h5" if lib.writer == "tf_keras" else ".keras"
    model_file = name + ext
    data_file = name + "_data.h5"
    x, y = make_data(name, spec)
    model = lib.build(name, spec)
    model.compile(optimizer=lib.optimizer(spec), loss=lib.loss(spec), metrics=[lib.main_metric(spec)])
    model.save(os.path.join(out, model_file))

    # evaluate: the untrained model with xfer's metrics.
    ev = lib.load(os.path.join(out, model_file))
    ev.compile(loss=lib.loss(spec), metrics=lib.eval_metrics(spec))
    evaluate = {k: float(v) for k, v in ev.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True).items()}
    classes, confusion = None, None
    if spec["y"] == "multi_hot":
        classes = per_label(lib, ev, x, y)
    elif spec["y"] != "regression":
        classes, confusion = per_class(lib, ev, x, y, spec)

    # One epoch of fit, as xfer finetune --keep-top --no-shuffle repeats it.
    fit = lib.load(os.path.join(out, model_file))
    fit.compile(optimizer=lib.optimizer(spec), loss=lib.loss(spec), metrics=[lib.main_metric(spec)])
    cw = class_weight_of(spec, y)
    sw = None
    if spec.get("sample_weight"):
        sw = (rng_for(name + "/sample_weight").random(N) * 2).astype(np.float32)
        sw[0] = 0.0  # a sample that does not count
    if sw is not None and cw is not None:
        # tf_keras multiplies the two (data_adapter.py::_make_class_weight_map_fn), but its
        # reshape of a (None,) sample_weight fails in fit: give fit that product itself.
        hist = fit.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                       sample_weight=sw * np.array([cw[c] for c in class_ids(y)], np.float32))
    else:
        hist = fit.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, class_weight=cw, sample_weight=sw)
    weights = lib.weight_table(fit)

    cls, kwargs = spec["optimizer"]
    args = [model_file, "--data", data_file, "--keep-top", "--freeze-until", "conv1", "--no-shuffle",
            "--batch-size", str(BATCH), "--epochs", "1", "--optimizer", cls.lower(),
            "--lr", str(kwargs["learning_rate"])]
    if kwargs.get("momentum"):
        args += ["--momentum", str(kwargs["momentum"])]
    if spec.get("class_weight") == "balanced":
        args += ["--class-weight", "balanced"]
    elif spec.get("class_weight"):
        args += ["--class-weight", json.dumps({str(k): v for k, v in spec["class_weight"].items()})]

    with h5py.File(os.path.join(out, data_file), "w") as f:
        f.attrs["model"] = model_file
        f.attrs["keras"] = lib.version
        f.create_dataset("x", data=x)
        f.create_dataset("y", data=y)
        if sw is not None:
            f.create_dataset("sample_weight", data=sw)
        for layer, role, v in weights:
            f.create_dataset(f"fit/weights/{layer}/{role}", data=v)
    main = lib.main_metric_name(spec)
    entry = {
        "model": model_file,
        "data": data_file,
        "keras": lib.version,
        "loss": spec["loss"][0],
        "loss_config": spec["loss"][1],
        "xfer_args": args,
        "class_weight": None if cw is None else {str(k): v for k, v in cw.items()},
        "history": {"loss": float(hist.history["loss"][0]), "metric": main,
                    "value": float(hist.history[main][0])},
        "evaluate": evaluate,
    }
    if classes is not None:
        entry["per_class"] = classes
    if confusion is not None:
        entry["confusion"] = confusion
    print(f"  {name:18s} loss {entry['history']['loss']:.6f} {main} {entry['history']['value']:.4f}  "
          f"evaluate {json.dumps(evaluate)}", flush=True)
    return entry


def part(writer, out):
    lib = Lib(writer)
    result = {}
    for name, spec in CASES.items():
        if spec["lib"] == writer:
            result[name] = write_case(lib, out, name, spec)
    with open(os.path.join(out, f".part-{writer}.json"), "w") as f:
        json.dump(result, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "losses"))
    ap.add_argument("--part", choices=["tf_keras", "keras3"])
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if args.part:
        part(args.part, out)
        return
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    env = dict(os.environ, **ENV)
    expected = {}
    for name in ("tf_keras", "keras3"):
        print(f"{name}:", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--out", out, "--part", name],
                       check=True, env=env)
        partial = os.path.join(out, f".part-{name}.json")
        with open(partial) as f:
            expected.update(json.load(f))
        os.remove(partial)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({k: expected[k] for k in CASES}, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"{len(os.listdir(out))} files, {total:,} bytes in {out}")


if __name__ == "__main__":
    main()
