"""Checks xfer's inference of keras.applications architectures from weights-only files.

For every family and writer — tf-keras `save_weights("x.h5")` and Keras 3
`save_weights("x.weights.h5")` — with `weights=None`, seeded weights and non-trivial
BatchNormalization statistics, at a small input size (checkpoints/check_families.py's):
  notop   the base without its top;
  top     the model with its top and 5 classes;
  nested  a transfer model: Sequential([base, GlobalAveragePooling2D, Dense(16, relu), Dropout,
          Dense(5, softmax)]), and (tf-keras, Keras 3) the Functional form
          inputs -> base(training=False) -> GlobalAveragePooling2D -> Dense(5, softmax);
`xfer import --input-shape --json` must give Keras's Total / Trainable / Non-trainable counts and
say "inferred", and `xfer predict` Keras's predictions within 1e-4. The files go to a temporary
folder and are removed (they are large; nothing here is committed).

`--size HxW` reads the files at another input size, as people read the famous `*_notop.h5`
files written at 224: the weights are saved from the model built at the family's size, Keras
builds the same model anew at HxW and loads them, and xfer is given `--input-shape H,W,3`. The
sizes that reach each block then differ from those the weights were written at (odd ones
change EfficientNet's, MobileNet's and NASNet's `correct_pad` paddings). Modes notop and nested
(a top's Dense after Flatten fixes the size).

Usage: python check_weights_only.py PATH/TO/xfer [--families A,B,...] [--modes notop,top,nested]
                                    [--writers tf_keras,keras] [--size HxW]
Families are check_families.py's names, plus width variants written NAME@key=value;... (for
example MobileNetV2@alpha=0.35, MobileNetV3Small@alpha=0.75;minimalistic=True).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_families as cf  # noqa: E402  (its family table, seeding and calibration)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

CLASSES = 5
N = 2
results = []


def result(ok, what, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}", flush=True)


def parse(spec):
    name, _, rest = spec.partition("@")
    kwargs = {}
    for part in filter(None, rest.split(";")):
        k, v = part.split("=")
        kwargs[k] = {"True": True, "False": False}[v] if v in ("True", "False") else float(v)
    return name, kwargs


def seeded_all(model, rng):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            seeded_all(layer, rng)
    cf.seeded(model, rng)


def build(K, family, kwargs, mode, size):
    """The models of `mode` at input `size` (H, W, 3)."""
    ctor = getattr(K.applications, cf.FAMILIES[family][0])
    if mode == "top":
        return [("top", ctor(weights=None, include_top=True, classes=CLASSES, input_shape=size, **kwargs))]
    base = ctor(weights=None, include_top=False, input_shape=size, **kwargs)
    if mode == "notop":
        return [("notop", base)]
    L = K.layers
    seq = K.Sequential([K.Input(size), base, L.GlobalAveragePooling2D(), L.Dense(16, activation="relu"),
                        L.Dropout(0.2), L.Dense(CLASSES, activation="softmax")])
    base2 = ctor(weights=None, include_top=False, input_shape=size, **kwargs)
    inputs = K.Input(size)
    x = base2(inputs, training=False)
    x = L.GlobalAveragePooling2D()(x)
    fun = K.Model(inputs, L.Dense(CLASSES, activation="softmax")(x))
    return [("nested Sequential", seq), ("nested Functional", fun)]


def count(weights):
    return cf.count(weights)


def check(xfer, spec, writer, K, modes, tmp, size=None):
    family, kwargs = parse(spec)
    _, side, _, raw = cf.FAMILIES[family]
    written = (side, side, 3)
    read = size or written
    for mode in modes:
        try:
            models = build(K, family, kwargs, mode, written)
        except Exception as e:  # noqa: BLE001 - a variant this Keras cannot build
            result(False, f"{spec} {mode} ({writer}) build", str(e).splitlines()[0][:200])
            continue
        for k, (what, model) in enumerate(models):
            tag = f"{spec} {what} ({writer})" + (f" at {read[0]}x{read[1]}" if size else "")
            rng = np.random.default_rng(sum(spec.encode()) + len(what))
            seeded_all(model, rng)
            x = rng.uniform(0, 255, (N,) + read) if raw else rng.uniform(-1, 1, (N,) + read)
            x = x.astype(np.float32)
            if mode == "top":
                cf.calibrate(model, x)
            path = os.path.join(tmp, "w.h5" if writer == "tf_keras" else "w.weights.h5")
            model.save_weights(path)
            if size:
                # Keras's own reading at the other size: the same model built anew there (the
                # session cleared, so its layers get the same names) and the file loaded.
                K.backend.clear_session()
                model = build(K, family, kwargs, mode, read)[k][1]
                model.load_weights(path)
            ref = np.asarray(model(x, training=False), dtype=np.float32)
            data = os.path.join(tmp, "x.h5")
            with h5py.File(data, "w") as f:
                f["x"] = x
            total, trainable = count(model.weights), count(model.trainable_weights)
            shape = f"{read[0]},{read[1]},3"
            r = cf.run(xfer, "import", path, "--input-shape", shape, "--json")
            if r.returncode != 0:
                result(False, f"{tag} import", cf.first_error(r))
                continue
            s = json.loads(r.stdout)
            got = (s["total_params"], s["trainable_params"], s["non_trainable_params"])
            want = (total, trainable, total - trainable)
            said = (r.stderr.strip().splitlines() or [""])[0]
            said = said[said.find("inferred"):said.find(" from ")] if "inferred" in said else said
            result(got == want and s["architecture"] == "inferred", f"{tag} import counts",
                   f"xfer {got}, Keras {want}; {said}")
            out = os.path.join(tmp, "pred.h5")
            r = cf.run(xfer, "predict", path, "--input-shape", shape, "--data", data, "--output", out)
            if r.returncode != 0:
                result(False, f"{tag} predict", cf.first_error(r))
                continue
            with h5py.File(out, "r") as f:
                pred = np.asarray(f["predictions"])
            err = float(np.max(np.abs(pred.reshape(ref.shape) - ref)))
            result(err <= cf.TOLERANCE, f"{tag} predict", f"max abs error {err:.2e}")
            os.remove(path)
        K.backend.clear_session()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("xfer")
    p.add_argument("--families", default=",".join(cf.FAMILIES))
    p.add_argument("--modes", default="notop,top,nested")
    p.add_argument("--writers", default="tf_keras,keras")
    p.add_argument("--size", help="HxW: read the files at this input size (modes notop and nested)")
    p.add_argument("--writer-process", help=argparse.SUPPRESS)
    a = p.parse_args()
    size = None
    if a.size:
        try:
            h, w = (int(v) for v in a.size.lower().split("x"))
        except ValueError:
            p.error(f"--size takes HxW, two whole numbers (e.g. 75x97), not {a.size!r}")
        size = (h, w, 3)
        if "top" in a.modes.split(","):
            p.error("--size reads notop and nested files (a top's Flatten fixes the size): give --modes notop,nested")
    xfer = os.path.abspath(a.xfer)
    if not a.writer_process:
        # One process per writer: tf-keras and Keras 3 each set up their own Keras.
        failed = 0
        for writer in a.writers.split(","):
            r = subprocess.run([sys.executable, __file__, xfer, "--families", a.families, "--modes", a.modes,
                                *(["--size", a.size] if a.size else []), "--writer-process", writer])
            failed += r.returncode != 0
        sys.exit(1 if failed else 0)
    import warnings
    warnings.filterwarnings("ignore")
    if a.writer_process == "tf_keras":
        import tf_keras as K
    else:
        import keras as K
    tmp = tempfile.mkdtemp(prefix="xfer-weights-only-")
    try:
        for spec in a.families.split(","):
            K.utils.set_random_seed(sum(spec.encode()))
            check(xfer, spec, a.writer_process, K, a.modes.split(","), tmp, size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = results.count(False)
    print(f"{a.writer_process}: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
