"""Checks xfer on the keras.applications families, built by Keras itself at full width.

For every family and writer (tf_keras `.h5` full model, Keras 3 `.keras`), with `weights=None`,
seeded weights, non-trivial BatchNormalization statistics, and a small input size Keras allows:
  - `xfer import --json` gives Keras's Total / Trainable / Non-trainable counts;
  - `xfer predict` on a seeded batch gives Keras's predictions within 1e-4;
  - `xfer finetune --keep-top --freeze-until BLOCK --dry-run` gives Keras's trainable count after
    the same freeze (every layer before the first layer named BLOCK or `BLOCK_...` frozen);
  - `xfer export --to .onnx`: onnx.checker accepts the file and onnxruntime predicts Keras's
    predictions within 1e-4 (`--no-onnx` skips it).
  - with --train (slow: a real training run per family), fine-tuning that Keras loads back:
    `xfer finetune --keep-top --freeze-until BLOCK` for two steps (one epoch of the two samples at
    batch size 1) writes the writer's format (`.h5` / `.keras`), Keras loads it, its frozen
    weights are the original ones, its trained ones moved, and Keras's predictions on the batch
    equal `xfer predict`'s on the same file within 1e-4 (`check_finetune_loads`).
The files are written to a temporary folder and removed: they are tens to hundreds of MB, so
they are made here, not committed. Prints one line per check; exit 1 if any failed.

`--size HxW` builds every family at that input size instead (any size Keras allows, e.g. a
non-square odd one, where `same` padding pads unevenly at every strided layer).

Usage: python check_families.py PATH/TO/xfer [--families A,B,...] [--writers tf_keras,keras] [--keep DIR] [--no-onnx] [--train] [--size HxW]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

TOLERANCE = 1e-4
CLASSES = 5
N = 2

# name: (constructor name, input side, block for --freeze-until, inputs in 0..255 (the model
# rescales them itself) rather than about unit scale)
FAMILIES = {
    "VGG16": ("VGG16", 32, "block5", False),
    "VGG19": ("VGG19", 32, "block5", False),
    "ResNet50": ("ResNet50", 64, "conv5_block1", False),
    "ResNet101": ("ResNet101", 64, "conv5_block1", False),
    "ResNet152": ("ResNet152", 64, "conv5_block1", False),
    "ResNet50V2": ("ResNet50V2", 64, "conv5_block1", False),
    "ResNet101V2": ("ResNet101V2", 64, "conv5_block1", False),
    "ResNet152V2": ("ResNet152V2", 64, "conv5_block1", False),
    "MobileNet": ("MobileNet", 64, "conv_dw_12", False),
    "MobileNetV2": ("MobileNetV2", 64, "block_13", False),
    "MobileNetV3Small": ("MobileNetV3Small", 64, "expanded_conv_6", True),
    "MobileNetV3Large": ("MobileNetV3Large", 64, "expanded_conv_10", True),
    "EfficientNetB0": ("EfficientNetB0", 64, "block6a", True),
    "EfficientNetB1": ("EfficientNetB1", 64, "block6a", True),
    "EfficientNetB2": ("EfficientNetB2", 64, "block6a", True),
    "EfficientNetB3": ("EfficientNetB3", 64, "block6a", True),
    "EfficientNetB4": ("EfficientNetB4", 64, "block6a", True),
    "EfficientNetB5": ("EfficientNetB5", 64, "block6a", True),
    "EfficientNetB6": ("EfficientNetB6", 64, "block6a", True),
    "EfficientNetB7": ("EfficientNetB7", 64, "block6a", True),
    "EfficientNetV2B0": ("EfficientNetV2B0", 64, "block6a", True),
    "EfficientNetV2B1": ("EfficientNetV2B1", 64, "block6a", True),
    "EfficientNetV2B2": ("EfficientNetV2B2", 64, "block6a", True),
    "EfficientNetV2B3": ("EfficientNetV2B3", 64, "block6a", True),
    "EfficientNetV2S": ("EfficientNetV2S", 64, "block6a", True),
    "InceptionV3": ("InceptionV3", 75, "mixed9", False),
    "InceptionResNetV2": ("InceptionResNetV2", 75, "block8_1", False),
    "DenseNet121": ("DenseNet121", 64, "conv5_block1", False),
    "DenseNet169": ("DenseNet169", 64, "conv5_block1", False),
    "DenseNet201": ("DenseNet201", 64, "conv5_block1", False),
    "Xception": ("Xception", 71, "block13", False),
    "NASNetMobile": ("NASNetMobile", 64, "normal_conv_1_12", False),
    "ConvNeXtTiny": ("ConvNeXtTiny", 64, "convnext_tiny_stage_3", True),
    "ConvNeXtSmall": ("ConvNeXtSmall", 64, "convnext_small_stage_3", True),
    # Grouped convolutions (group width 8); Y adds squeeze-excite. tf-keras only: Keras 3's
    # applications have no RegNet.
    "RegNetX002": ("RegNetX002", 64, "regnetx002_Stage_3_XBlock_0", True),
    "RegNetY002": ("RegNetY002", 64, "regnety002_Stage_3_YBlock_0", True),
}
# Families whose top is linear (tf-keras's RegNet ignores classifier_activation and outputs
# logits): fine-tuned with the cross-entropy from the logits.
LOGITS = {"RegNetX002", "RegNetY002"}

results = []


def result(ok, what, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}", flush=True)


def seeded(model, rng):
    """Non-trivial statistics for every normalisation, a calibrated classifier: at Keras's
    initial values (mean 0, variance 1) a wrong normalisation would go unseen."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            values = []
            for w in layer.weights:
                n = w.name.split("/")[-1].split(":")[0]
                shape = tuple(int(d) for d in w.shape)
                v = {"gamma": lambda: rng.uniform(0.6, 1.0, shape),
                     "beta": lambda: rng.normal(0.0, 0.1, shape),
                     "moving_mean": lambda: rng.normal(0.0, 0.2, shape),
                     "moving_variance": lambda: rng.uniform(1.0, 2.0, shape)}[n]()
                values.append(v.astype(np.float32))
            layer.set_weights(values)


def calibrate(model, x):
    """Shrinks the classifier's kernel when the softmax would saturate (a weak test)."""
    # The classifier: a Dense, or (MobileNet, MobileNetV3) a 1×1 Conv2D on a 1×1 map.
    last = [l for l in model.layers if type(l).__name__ in ("Dense", "Conv2D")][-1]
    kernel, bias = last.get_weights()
    sub = type(model)(model.inputs, last.input)
    f = np.asarray(sub(x, training=False), dtype=np.float64).reshape(len(x), -1)
    std = float(np.std(f @ kernel.reshape(f.shape[1], -1) + bias))
    if std > 3.0:
        last.set_weights([(kernel * (1.5 / std)).astype(np.float32), bias])


def count(weights):
    seen, total = set(), 0
    for w in weights:
        if id(w) in seen:
            continue
        seen.add(id(w))
        total += int(np.prod([int(d) for d in w.shape]))
    return total


def freeze_count(model, block):
    """Keras's trainable count after freezing every layer before the first named BLOCK(_...)."""
    first = next(i for i, l in enumerate(model.layers) if l.name == block or l.name.startswith((block + "_", block + "/")))
    saved = [l.trainable for l in model.layers]
    for l in model.layers[:first]:
        l.trainable = False
    n = count(model.trainable_weights)
    for l, t in zip(model.layers, saved):
        l.trainable = t
    return n


def run(xfer, *args):
    return subprocess.run([xfer, *args], capture_output=True, text=True)


def first_error(r):
    return (r.stderr.strip().splitlines() or ["(no stderr)"])[0][:300]


def check(xfer, family, writer, apps, tmp, size=None):
    ctor, side, block, raw = FAMILIES[family]
    height, width = size or (side, side)
    tag = f"{family} ({writer}{f', {height}x{width}' if size else ''})"
    kwargs = dict(weights=None, input_shape=(height, width, 3), classes=CLASSES)
    if not hasattr(apps, ctor):
        print(f"skip {tag}: this Keras's applications have no {ctor}", flush=True)
        return
    t0 = time.time()
    try:
        model = getattr(apps, ctor)(**kwargs)
    except Exception as e:  # noqa: BLE001 - a family this Keras cannot build at this size
        result(False, f"{tag} build", str(e).splitlines()[0][:200])
        return
    rng = np.random.default_rng(sum(family.encode()) + (7 if writer == "keras" else 0))
    seeded(model, rng)
    x = rng.uniform(0, 255, (N, height, width, 3)) if raw else rng.uniform(-1, 1, (N, height, width, 3))
    x = x.astype(np.float32)
    calibrate(model, x)
    ref = np.asarray(model(x, training=False), dtype=np.float32)
    path = os.path.join(tmp, f"{family}.{'h5' if writer == 'tf_keras' else 'keras'}")
    model.save(path)
    data = os.path.join(tmp, "x.h5")
    with h5py.File(data, "w") as f:
        f["x"] = x
        f["y"] = np.arange(N) % CLASSES
    total = count(model.weights)
    trainable = count(model.trainable_weights)
    frozen = freeze_count(model, block)
    build_s = time.time() - t0

    r = run(xfer, "import", path, "--json")
    if r.returncode != 0:
        result(False, f"{tag} import", first_error(r))
        return
    s = json.loads(r.stdout)
    got = (s["total_params"], s["trainable_params"], s["non_trainable_params"])
    want = (total, trainable, total - trainable)
    result(got == want, f"{tag} import counts", f"xfer {got}, Keras {want}")

    out = os.path.join(tmp, "pred.h5")
    t1 = time.time()
    r = run(xfer, "predict", path, "--data", data, "--output", out)
    if r.returncode != 0:
        result(False, f"{tag} predict", first_error(r))
    else:
        with h5py.File(out, "r") as f:
            pred = np.asarray(f[list(f.keys())[0]] if "predictions" not in f else f["predictions"])
        err = float(np.max(np.abs(pred.reshape(ref.shape) - ref)))
        result(err <= TOLERANCE, f"{tag} predict", f"max abs error {err:.2e} ({time.time() - t1:.1f} s)")

    if ONNX:
        check_onnx(xfer, tag, path, x, ref, tmp)

    r = run(xfer, "finetune", path, "--data", data, "--keep-top", "--freeze-until", block, "--dry-run",
            "--output", os.path.join(tmp, "out.h5"))
    m = re.search(r"^Trainable params: ([\d,]+)", r.stdout, re.M)
    if r.returncode != 0 or not m:
        result(False, f"{tag} --freeze-until {block}", first_error(r))
    else:
        n = int(m.group(1).replace(",", ""))
        result(n == frozen, f"{tag} --freeze-until {block}", f"xfer {n:,}, Keras {frozen:,} trainable")
    print(f"     ({build_s:.1f} s in Keras)", flush=True)
    if TRAIN:
        loss = ["--loss", "categorical_crossentropy", "--from-logits"] if family in LOGITS else []
        check_finetune_loads(xfer, tag, path, data, block, writer, model, x, tmp, loss)
    os.remove(path)


def check_onnx(xfer, tag, path, x, ref, tmp):
    """The family exported as ONNX: onnx.checker accepts it, onnxruntime predicts as Keras does."""
    import onnx
    import onnxruntime as ort
    out = os.path.join(tmp, "model.onnx")
    if os.path.exists(out):
        os.remove(out)
    r = run(xfer, "export", path, "--to", out)
    if r.returncode != 0:
        result(False, f"{tag} export .onnx", first_error(r))
        return
    try:
        onnx.checker.check_model(onnx.load(out))
        session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        pred = session.run(None, {session.get_inputs()[0].name: x})[0]
    except Exception as e:  # noqa: BLE001 - any failure of the file is the check's failure
        result(False, f"{tag} export .onnx", str(e).splitlines()[0][:200])
        return
    err = float(np.max(np.abs(pred.reshape(ref.shape) - ref)))
    result(err <= TOLERANCE, f"{tag} export .onnx", f"onnxruntime max abs error {err:.2e}")
    os.remove(out)


ONNX = True


TRAIN = False


def check_finetune_loads(xfer, tag, path, data, block, writer, model, x, tmp, loss=()):
    """`xfer finetune` for two steps (`loss`: its loss options), then Keras loads the output and
    predicts as `xfer predict`."""
    ext = ".h5" if writer == "tf_keras" else ".keras"
    out = os.path.join(tmp, "finetuned" + ext)
    t0 = time.time()
    r = run(xfer, "finetune", path, "--data", data, "--keep-top", "--freeze-until", block,
            "--epochs", "1", "--batch-size", "1", "--no-shuffle", "--optimizer", "sgd", "--lr", "0.01",
            *loss, "--output", out)
    if r.returncode != 0:
        result(False, f"{tag} finetune 2 steps", first_error(r))
        return
    train_s = time.time() - t0
    if writer == "tf_keras":
        import tf_keras as K
        from tf_keras.src.applications import convnext  # its LayerScale is not registered
        loaded = K.models.load_model(out, compile=False, custom_objects={"LayerScale": convnext.LayerScale})
    else:
        import keras as K
        loaded = K.saving.load_model(out, compile=False)
    first = next(i for i, l in enumerate(model.layers)
                 if l.name == block or l.name.startswith((block + "_", block + "/")))
    changed, trained_moved = [], False
    names = {l.name for l in loaded.layers}
    for i, a in enumerate(model.layers):
        if a.name not in names:
            continue
        b = loaded.get_layer(a.name)  # (by name: the output may list the layers in another order)
        for u, v in zip(a.get_weights(), b.get_weights()):
            same = np.array_equal(np.asarray(u), np.asarray(v))
            if i < first and not same:
                changed.append(a.name)
            trained_moved |= i >= first and not same
    # Keras 3 keeps ConvNeXt's `inputs + x` as operations, not layers; xfer writes them as Add
    # layers (the same function): extra layers are told, missing ones fail.
    missing = [l.name for l in model.layers if l.name not in names]
    extra = len(loaded.layers) - (len(model.layers) - len(missing))
    result(not missing and not changed and trained_moved,
           f"{tag} finetune output loads in Keras",
           f"{len(loaded.layers)} layers"
           + (f" (missing: {', '.join(missing[:3])})" if missing else "")
           + (f" ({extra} more than the original's)" if extra else "") + f", frozen weights {'CHANGED: ' + ', '.join(changed[:3]) if changed else 'kept'}, "
           f"trained ones {'moved' if trained_moved else 'UNCHANGED'} ({train_s:.1f} s)")
    ref = np.asarray(loaded(x, training=False), dtype=np.float32)
    pred_file = os.path.join(tmp, "pred-finetuned.h5")
    r = run(xfer, "predict", out, "--data", data, "--output", pred_file)
    if r.returncode != 0:
        result(False, f"{tag} predict on the finetuned file", first_error(r))
        return
    with h5py.File(pred_file, "r") as f:
        pred = np.asarray(f["predictions"])
    err = float(np.max(np.abs(pred.reshape(ref.shape) - ref)))
    result(err <= TOLERANCE, f"{tag} finetuned: Keras predicts as xfer", f"max abs error {err:.2e}")
    os.remove(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("xfer")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--writers", default="tf_keras,keras")
    p.add_argument("--keep")
    p.add_argument("--no-onnx", action="store_true")
    p.add_argument("--size", help="HxW: every family at this input size instead of its own (e.g. 97x131)")
    p.add_argument("--train", action="store_true",
                   help="also fine-tune two steps and have Keras load and predict the output (slow)")
    a = p.parse_args()
    global ONNX, TRAIN
    ONNX = not a.no_onnx
    TRAIN = a.train
    xfer = os.path.abspath(a.xfer)
    tmp = a.keep or tempfile.mkdtemp(prefix="xfer-families-")
    os.makedirs(tmp, exist_ok=True)
    import warnings
    warnings.filterwarnings("ignore")
    for writer in a.writers.split(","):
        if writer == "tf_keras":
            import tf_keras as K
        else:
            import keras as K
        for family in a.families.split(","):
            K.utils.set_random_seed(sum(family.encode()))
            check(xfer, family, writer, K.applications, tmp, tuple(map(int, a.size.split("x"))) if a.size else None)
            K.backend.clear_session()
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
