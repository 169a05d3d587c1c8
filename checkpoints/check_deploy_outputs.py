"""Checks the files people deploy: Keras 3 loads each .keras / .weights.h5 xfer writes, and
onnxruntime runs each .onnx, and all predict what `xfer predict` predicts (within 1e-4).

For every loadable fixture (fixtures/index.json, ops/, nonimage/, grouped/, crop/) and the Fashion model:
  xfer export FIXTURE --to OUT.keras / OUT.weights.h5 / OUT.onnx, and xfer predict on its inputs;
  - keras.models.load_model(OUT.keras) predicts as xfer does;
  - OUT.weights.h5: the same architecture, built anew from the .keras configuration (fresh
    weights), and the fixture itself as Keras 3 loads it (where Keras 3 opens the fixture: it
    cannot open some Keras 2 files, which xfer's .keras then brings to it), takes it with
    model.load_weights and predicts as xfer does;
  - the .keras trains as many parameters as Keras counted for the fixture (expected.json);
  - onnx.checker.check_model(OUT.onnx, full_check=True) accepts it and onnxruntime predicts as xfer does.
Then models `xfer finetune --output X.keras` wrote (and their export to .onnx): the same checks.
Usage: python check_deploy_outputs.py PATH/TO/xfer
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Keras 3 fixtures were saved compiled; their optimizer state is not in xfer's weights, by design.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
# Keras 3 reading tf-keras's LeakyReLU config (the Keras 2 fixtures themselves, not xfer's files).
warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import keras  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "fixtures")
xfer = os.path.abspath(sys.argv[1])
TOLERANCE = 1e-4

passed = 0
failures = 0


def result(ok, what, detail=""):
    global passed, failures
    passed += ok
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {what}{': ' + detail if detail else ''}")


def run(*args, cwd=fixtures):
    return subprocess.run([xfer, *args], cwd=cwd, capture_output=True, text=True)


def xfer_predict(model, data, extra, tmp, cwd=fixtures):
    out = os.path.join(tmp, "pred.h5")
    r = run("predict", model, "--data", data, *extra, "--output", out, cwd=cwd)
    if r.returncode != 0:
        return None, r.stderr.strip()
    with h5py.File(out, "r") as f:
        return f["predictions"][()], ""


def compare(what, got, want):
    got = np.asarray(got).reshape(want.shape)
    err = float(np.max(np.abs(got - want)))
    result(err <= TOLERANCE, what, f"max abs error {err:.2e}")


def check_outputs(label, source, args, x_file, tmp, cwd=fixtures, keras_original=None, trainable=None,
                  formats=(".keras", ".weights.h5", ".onnx")):
    """Exports `source` to each format, and checks each in its runtime against `xfer predict`."""
    mine, err = xfer_predict(source, x_file, args, tmp, cwd=cwd)
    if mine is None:
        result(False, f"{label}: xfer predict", err)
        return
    with h5py.File(x_file, "r") as f:
        x = f["x"][()]
    base = os.path.join(tmp, label.replace("/", "_").replace(" ", "_"))
    original = None
    if keras_original:
        try:
            original = keras.models.load_model(keras_original, compile=False)
        except Exception as e:  # noqa: BLE001 - Keras 3 cannot open every Keras 2 file; xfer's .keras is the way there
            print(f"note {label}: Keras 3 does not open the fixture itself ({str(e).splitlines()[0][:70]}); checked via xfer's outputs only")
    for ext in formats:
        out = base + ext
        r = run("export", source, *args, "--to", out, cwd=cwd)
        if r.returncode != 0:
            result(False, f"{label} -> {ext}", f"xfer export exited {r.returncode}: {r.stderr.strip()}")
            continue
        try:
            if ext == ".keras":
                model = keras.models.load_model(out)
                compare(f"{label} -> .keras: Keras 3 load_model predicts as xfer predict", model.predict(x, verbose=0), mine)
                if trainable is not None:
                    got = int(sum(np.prod(w.shape) for w in model.trainable_weights))
                    result(got == trainable, f"{label} -> .keras: the same weights train as in the fixture",
                           f"{got:,} trainable params, Keras counted {trainable:,}")
            elif ext == ".weights.h5":
                with zipfile.ZipFile(base + ".keras") as z:
                    fresh = keras.models.model_from_json(z.read("config.json").decode())
                fresh.load_weights(out)
                compare(f"{label} -> .weights.h5: load_weights on the architecture built anew", fresh.predict(x, verbose=0), mine)
                if original is not None:
                    original.load_weights(out)
                    compare(f"{label} -> .weights.h5: load_weights on the fixture as Keras loads it", original.predict(x, verbose=0), mine)
            else:
                proto = onnx.load(out)
                onnx.checker.check_model(proto, full_check=True)
                session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
                got = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
                compare(f"{label} -> .onnx: onnx.checker accepts it, onnxruntime predicts as xfer predict", got, mine)
        except Exception as e:  # noqa: BLE001
            result(False, f"{label} -> {ext}", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


with tempfile.TemporaryDirectory() as tmp:
    for entry in json.load(open(os.path.join(fixtures, "index.json"))):
        if entry["error"] or not entry["io"]:
            continue
        # Weights-only fixtures carry no architecture of their own for Keras to load.
        original = None if "weights" in entry["file"] else os.path.join(fixtures, entry["file"])
        expected = json.load(open(os.path.join(fixtures, entry["expected"]))) if entry.get("expected") else {}
        check_outputs(entry["file"], entry["file"], entry["xfer_args"], os.path.join(fixtures, entry["io"]), tmp,
                      keras_original=original, trainable=expected.get("trainable_params"))

    # The layer-kind fixtures (checkpoints/ops: Permute, per-channel Rescaling, the caffe
    # preprocess_input ops, gelu, StochasticDepth, ...) and the non-image models
    # (checkpoints/nonimage: vectors, and sequences through Conv1D, BatchNormalization and the
    # 1-D global poolings) and the grouped convolutions (checkpoints/grouped), on their own
    # inputs, in every format.
    for folder in ("ops", "nonimage", "grouped"):
        for name in sorted(os.listdir(os.path.join(here, folder))):
            stem, ext = os.path.splitext(name)
            if ext not in (".h5", ".keras") or stem.endswith("_data"):
                continue
            path = os.path.join(here, folder, name)
            data = os.path.join(here, folder, stem + "_data.h5")
            if not os.path.exists(data):
                continue
            check_outputs(f"{folder}/{name}", path, ["--preprocess", "none"], data, tmp, keras_original=path)

    # RandomCrop (checkpoints/crop): Keras 3's models in every format; tf-keras's in every format
    # where the crop is the identity, else in ONNX only (its smart_resize has no Keras 3 meaning:
    # xfer refuses to write it as .keras).
    for name in sorted(os.listdir(os.path.join(here, "crop"))):
        stem, ext = os.path.splitext(name)
        data = os.path.join(here, "crop", stem + "_data.h5")
        if ext not in (".h5", ".keras") or not os.path.exists(data):
            continue
        formats = (".onnx",) if stem in ("crop_k2", "crop_k2_small") else (".keras", ".weights.h5", ".onnx")
        path = os.path.join(here, "crop", name)
        check_outputs(f"crop/{name}", path, ["--preprocess", "none"], data, tmp,
                      keras_original=path if ext == ".keras" else None, formats=formats)

    # The Fashion model (checkpoints/fashion), on seeded inputs of its shape.
    fashion = os.path.join(here, "fashion", "fashion_vgg.h5")
    shape = json.load(open(os.path.join(here, "fashion", "fashion_vgg.json")))["architecture"].get("input_shape")
    if not shape:
        with h5py.File(fashion, "r") as f:
            config = json.loads(f.attrs["model_config"])
        shape = config["config"]["layers"][0]["config"]["batch_input_shape"][1:]
    x = np.random.default_rng(0).normal(0, 60, size=(6, *shape)).astype(np.float32)
    x_file = os.path.join(tmp, "fashion_x.h5")
    with h5py.File(x_file, "w") as f:
        f["x"] = x
    check_outputs("fashion_vgg.h5", fashion, [], x_file, tmp, keras_original=fashion)

    # The Fashion model fine-tuned as the README's job does it (a few images of each class, one
    # epoch), written as .keras: its archive and its export, on the same inputs.
    subset = os.path.join(tmp, "fashion_subset")
    train = os.path.join(here, "fashion", "train")
    for cls in sorted(os.listdir(train)):
        os.makedirs(os.path.join(subset, cls))
        for name in sorted(os.listdir(os.path.join(train, cls)))[:8]:
            os.symlink(os.path.join(train, cls, name), os.path.join(subset, cls, name))
    tuned = os.path.join(tmp, "fashion-finetuned.keras")
    r = run("finetune", fashion, "--data", subset, "--freeze-until", "block3", "--head", "flatten,dense:16:relu,dropout:0.5",
            "--epochs", "1", "--batch-size", "8", "--optimizer", "sgd", "--lr", "0.01", "--momentum", "0.9", "--output", tuned)
    if r.returncode != 0:
        result(False, "finetune fashion_vgg.h5 --output .keras", r.stderr.strip())
    else:
        check_outputs("finetune fashion_vgg.h5", tuned, [], x_file, tmp, keras_original=tuned)

    # Layer settings the fixtures do not reach (every activation, ReLU's threshold and slope,
    # Dense on an image, softmax over an image's channels, kept dimensions), built here by
    # Keras 3 with seeded weights: Keras's own predictions are the reference too.
    L = keras.layers
    keras.utils.set_random_seed(7)
    i = keras.Input((6, 6, 3))
    y = L.Conv2D(4, 3, padding="same", activation="elu")(i)
    y = L.Conv2D(4, 1, activation="selu")(y)
    y = L.Activation("softplus")(y)
    y = L.Activation("softsign")(y)
    y = L.Conv2D(4, 1, activation="silu")(y)
    y = L.Conv2D(4, 3, strides=2, padding="same", activation="gelu")(y)
    y = L.Activation("relu6")(y)
    y = L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.05)(y)
    y = L.Flatten()(y)
    y = L.Dense(5, activation="tanh")(y)
    activations = keras.Model(i, L.Dense(3, activation="sigmoid")(y), name="activations")
    i = keras.Input((5, 5, 2))
    y = L.Dense(3, activation="relu")(i)
    y = L.Conv2D(4, 3, activation="softmax")(y)
    y = L.GlobalAveragePooling2D(keepdims=True)(y)
    y = L.Dense(4)(y)
    y = L.Flatten()(y)
    layouts = keras.Model(i, L.Dense(2, activation="softmax")(y), name="layouts")
    for model in (activations, layouts):
        path = os.path.join(tmp, model.name + "-by-keras.keras")
        model.save(path)
        x = np.random.default_rng(1).normal(0, 2, size=(8, *model.input_shape[1:])).astype(np.float32)
        x_file = os.path.join(tmp, model.name + "_x.h5")
        with h5py.File(x_file, "w") as f:
            f["x"] = x
        mine, err = xfer_predict(path, x_file, [], tmp)
        if mine is None:
            result(False, f"{model.name}: xfer predict", err)
            continue
        want = model.predict(x, verbose=0)
        print(f"     {model.name}: predictions range {want.min():.3f}..{want.max():.3f}")
        compare(f"{model.name} (built by Keras 3): xfer predict as Keras predicts", mine, want)
        check_outputs(model.name, path, [], x_file, tmp, keras_original=path)

    # Models `xfer finetune` wrote as .keras: the Keras 3 archive and its export.
    data = os.path.join(here, "training", "fit_plain.h5")
    runs = [
        ("k2_transfer_functional_bn.h5", ["--data", data, "--epochs", "2", "--batch-size", "4"]),
        ("k3_bn.keras", ["--data", data, "--epochs", "1", "--batch-size", "5", "--freeze-until", "block3",
                         "--head", "gap,dense:8:relu"]),
    ]
    # A grouped convolution (and the BatchNormalization after it) trained, its own top kept.
    grouped = os.path.join(here, "grouped")
    for case in ("pad_bn_k3.keras", "s2_same_k2.h5"):
        runs.append((os.path.join(grouped, case), ["--data", os.path.join(grouped, case.split(".")[0] + "_data.h5"), "--keep-top",
                                                    "--epochs", "2", "--batch-size", "2", "--preprocess", "none"]))
    for source, args in runs:
        out = os.path.join(tmp, "tuned-" + os.path.basename(source) + ".keras")
        r = run("finetune", source, *args, "--output", out)
        if r.returncode != 0:
            result(False, f"finetune {source} --output .keras", r.stderr.strip())
            continue
        x_file = args[args.index("--data") + 1]
        extra = ["--preprocess", "none"] if source.startswith(grouped) else []
        check_outputs(f"finetune {os.path.basename(source)}", out, extra, x_file, tmp, keras_original=out)

print(f"{passed} passed, {failures} failed")
sys.exit(1 if failures or passed == 0 else 0)
