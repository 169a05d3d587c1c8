"""Checks that the Keras 2 full-model .h5 files xfer writes are loaded by Keras itself.

For every loadable fixture (and checkpoints/grouped): `xfer import FIXTURE --to OUT.h5`, then
`tf_keras.models.load_model(OUT.h5)` predicts the fixture's input batch, and the
result must equal what Keras predicted with the original checkpoint (X.io.h5)
within 1e-4. Then a few `xfer finetune` runs: Keras loads each output and predicts
what `xfer predict` predicts, within 1e-4; for the binary, multi-label and regression
heads (checkpoints/losses) Keras also compiles the output with the loss xfer trained
(training_config) and its `evaluate` gives the loss `xfer evaluate` prints.
Usage: python check_keras_loads.py PATH/TO/xfer
"""
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "fixtures")
xfer = os.path.abspath(sys.argv[1])

failures = 0
passed = 0
with tempfile.TemporaryDirectory() as tmp:
    for entry in json.load(open(os.path.join(fixtures, "index.json"))):
        if entry["error"] or not entry["io"]:
            continue
        # The extension chooses the format: "k3_vgg.weights" + ".h5" would name Keras 3 weights.
        out = os.path.join(tmp, entry["name"].replace(".", "_") + ".h5")
        r = subprocess.run([xfer, "import", entry["file"], *entry["xfer_args"], "--to", out],
                           cwd=fixtures, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {entry['file']}: xfer import --to exited {r.returncode}: {r.stderr.strip()}")
            failures += 1
            continue
        try:
            model = tf_keras.models.load_model(out, compile=False)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {entry['file']}: tf_keras cannot load xfer's output: {e}")
            failures += 1
            continue
        with h5py.File(os.path.join(fixtures, entry["io"]), "r") as f:
            x, y = f["x"][()], f["y"][()]
        got = model.predict(x, verbose=0)
        err = float(np.max(np.abs(got - y)))
        ok = err <= 1e-4
        passed += ok
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {entry['file']}: max abs error {err:.2e}")

    # The grouped convolutions (checkpoints/grouped, both formats in): xfer's .h5 predicts as the
    # fixture did in Keras (keras/predict of <case>_data.h5).
    grouped = os.path.join(here, "grouped")
    for name in sorted(os.listdir(grouped)):
        stem, ext = os.path.splitext(name)
        if ext not in (".h5", ".keras") or stem.endswith("_data"):
            continue
        out = os.path.join(tmp, "grouped-" + stem + ".h5")
        r = subprocess.run([xfer, "import", os.path.join(grouped, name), "--to", out], capture_output=True, text=True)
        try:
            assert r.returncode == 0, f"xfer import --to exited {r.returncode}: {r.stderr.strip()}"
            model = tf_keras.models.load_model(out, compile=False)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL grouped/{name}: {e}")
            failures += 1
            continue
        with h5py.File(os.path.join(grouped, stem + "_data.h5"), "r") as f:
            x, y = f["x"][()], f["keras/predict"][()]
        err = float(np.max(np.abs(model.predict(x, verbose=0) - y)))
        ok = err <= 1e-4
        passed += ok
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} grouped/{name} -> .h5: max abs error {err:.2e}")

    # Models that `xfer finetune` wrote: Keras loads them and predicts what `xfer predict` predicts.
    data = os.path.join(here, "training", "fit_plain.h5")
    images = os.path.join(here, "images", "sample")
    runs = [
        ("k2_transfer_functional_bn.h5", ["--data", data, "--epochs", "2", "--batch-size", "4"]),
        ("k2_vgg_full.h5", ["--data", images, "--epochs", "2", "--batch-size", "4", "--freeze-until", "block5"]),
        ("k3_bn.keras", ["--data", data, "--epochs", "1", "--batch-size", "5", "--freeze-until", "block3",
                         "--head", "gap,dense:8:relu"]),
    ]
    # A grouped convolution with the BatchNormalization after it, trained with its own top.
    grouped_data = os.path.join(grouped, "pad_bn_k2_data.h5")
    runs.append((os.path.join(grouped, "pad_bn_k2.h5"), ["--data", grouped_data, "--keep-top", "--epochs", "2",
                                                         "--batch-size", "2", "--preprocess", "none"]))
    for source, args in runs:
        predict_data = grouped_data if source.startswith(grouped) else data
        extra = ["--preprocess", "none"] if source.startswith(grouped) else []
        with h5py.File(predict_data, "r") as f:
            x = f["x"][()]
        out = os.path.join(tmp, "tuned-" + os.path.basename(source) + ".h5")
        pred = os.path.join(tmp, "pred-" + os.path.basename(source) + ".h5")
        r = subprocess.run([xfer, "finetune", source, *args, "--output", out], cwd=fixtures, capture_output=True, text=True)
        r2 = r.returncode == 0 and subprocess.run([xfer, "predict", out, "--data", predict_data, *extra, "--output", pred],
                                                  cwd=fixtures, capture_output=True, text=True)
        if r.returncode != 0 or r2.returncode != 0:
            print(f"FAIL finetune {source}: {(r.stderr or r2.stderr).strip()}")
            failures += 1
            continue
        try:
            model = tf_keras.models.load_model(out, compile=False)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL finetune {source}: tf_keras cannot load xfer's output: {e}")
            failures += 1
            continue
        with h5py.File(pred, "r") as f:
            mine = f["predictions"][()]
        err = float(np.max(np.abs(model.predict(x, verbose=0) - mine)))
        ok = err <= 1e-4
        passed += ok
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} finetune {source} -> Keras predicts as xfer predict: max abs error {err:.2e}")

    # Heads beyond softmax: the loss travels in training_config.
    losses = os.path.join(here, "losses")
    loss_runs = [
        ("bce_sigmoid.h5", "bce_sigmoid_data.h5", ["--keep-top", "--epochs", "1"], "BinaryCrossentropy"),
        ("multilabel.h5", "multilabel_data.h5", ["--keep-top", "--epochs", "1", "--optimizer", "adam"], "BinaryCrossentropy"),
        ("mse.h5", "mse_data.h5", ["--loss", "mse", "--head", "flatten,dense:8:relu", "--epochs", "2", "--batch-size", "4"], "MeanSquaredError"),
        ("huber.h5", "huber_data.h5", ["--keep-top", "--epochs", "1"], "Huber"),
    ]
    for source, data_file, args, loss_class in loss_runs:
        data = os.path.join(losses, data_file)
        out = os.path.join(tmp, "tuned-" + source)
        pred = os.path.join(tmp, "pred-" + source)
        r = subprocess.run([xfer, "finetune", source, "--data", data, *args, "--output", out], cwd=losses,
                           capture_output=True, text=True)
        r2 = r.returncode == 0 and subprocess.run([xfer, "predict", out, "--data", data, "--output", pred],
                                                  capture_output=True, text=True)
        r3 = r.returncode == 0 and subprocess.run([xfer, "evaluate", out, "--data", data, "--json"],
                                                  capture_output=True, text=True)
        if r.returncode != 0 or r2.returncode != 0 or r3.returncode != 0:
            print(f"FAIL finetune {source}: {(r.stderr or r2.stderr or r3.stderr).strip()}")
            failures += 1
            continue
        try:
            model = tf_keras.models.load_model(out)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL finetune {source}: tf_keras cannot load and compile xfer's output: {e}")
            failures += 1
            continue
        with h5py.File(pred, "r") as f:
            mine = f["predictions"][()]
        with h5py.File(data, "r") as f:
            x, y = f["x"][()], f["y"][()]
        err = float(np.max(np.abs(model.predict(x, verbose=0) - mine)))
        keras_loss = float(model.evaluate(x, y, verbose=0))
        xfer_loss = json.loads(r3.stdout)["loss"]
        ok = err <= 1e-4 and type(model.loss).__name__ == loss_class and abs(keras_loss - xfer_loss) <= 1e-4 * max(1, abs(keras_loss))
        passed += ok
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} finetune {source} -> Keras compiles it with {type(model.loss).__name__}, "
              f"predicts as xfer predict (max abs error {err:.2e}), evaluates loss {keras_loss:.6f} (xfer {xfer_loss:.6f})")

    # RandomCrop (checkpoints/crop): the tf-keras models written back as .h5 predict as Keras
    # predicted (smart_resize at inference), and a fine-tuned one (the crop window in training)
    # loads and predicts as xfer predict.
    crop = os.path.join(here, "crop")
    for stem in ("crop_k2", "crop_k2_same", "crop_k2_small"):
        out = os.path.join(tmp, stem + "-import.h5")
        r = subprocess.run([xfer, "import", stem + ".h5", "--to", out], cwd=crop, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL crop/{stem}.h5: xfer import --to exited {r.returncode}: {r.stderr.strip()}")
            failures += 1
            continue
        with h5py.File(os.path.join(crop, stem + "_data.h5"), "r") as f:
            x, y = f["x"][()], f["y"][()]
        err = float(np.max(np.abs(tf_keras.models.load_model(out, compile=False).predict(x, verbose=0) - y)))
        ok = err <= 1e-4
        passed += ok
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} crop/{stem}.h5: max abs error {err:.2e}")
    out, pred = os.path.join(tmp, "tuned-crop.h5"), os.path.join(tmp, "pred-crop.h5")
    data = os.path.join(crop, "crop_k2_data.h5")
    r = subprocess.run([xfer, "finetune", "crop_k2.h5", "--data", "train.h5", "--keep-top", "--epochs", "2", "--batch-size", "3",
                        "--output", out], cwd=crop, capture_output=True, text=True)
    r2 = r.returncode == 0 and subprocess.run([xfer, "predict", out, "--data", data, "--output", pred], capture_output=True, text=True)
    if r.returncode != 0 or r2.returncode != 0:
        print(f"FAIL finetune crop/crop_k2.h5: {(r.stderr or r2.stderr).strip()}")
        failures += 1
    else:
        with h5py.File(pred, "r") as f:
            mine = f["predictions"][()]
        with h5py.File(data, "r") as f:
            x = f["x"][()]
        err = float(np.max(np.abs(tf_keras.models.load_model(out, compile=False).predict(x, verbose=0) - mine)))
        ok = err <= 1e-4
        passed += ok
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} finetune crop/crop_k2.h5 -> Keras predicts as xfer predict: max abs error {err:.2e}")

print(f"{passed} passed, {failures} failed")
sys.exit(1 if failures or passed == 0 else 0)
