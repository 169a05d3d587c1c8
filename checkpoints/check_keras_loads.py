"""Checks that the Keras 2 full-model .h5 files xfer writes are loaded by Keras itself.

For every loadable fixture: `xfer import FIXTURE --to OUT.h5`, then
`tf_keras.models.load_model(OUT.h5)` predicts the fixture's input batch, and the
result must equal what Keras predicted with the original checkpoint (X.io.h5)
within 1e-4. Then a few `xfer finetune` runs: Keras loads each output and predicts
what `xfer predict` predicts, within 1e-4. Usage: python check_keras_loads.py PATH/TO/xfer
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

    # Models that `xfer finetune` wrote: Keras loads them and predicts what `xfer predict` predicts.
    data = os.path.join(here, "training", "fit_plain.h5")
    images = os.path.join(here, "images", "sample")
    runs = [
        ("k2_transfer_functional_bn.h5", ["--data", data, "--epochs", "2", "--batch-size", "4"]),
        ("k2_vgg_full.h5", ["--data", images, "--epochs", "2", "--batch-size", "4", "--freeze-until", "block5"]),
        ("k3_bn.keras", ["--data", data, "--epochs", "1", "--batch-size", "5", "--freeze-until", "block3",
                         "--head", "gap,dense:8:relu"]),
    ]
    with h5py.File(data, "r") as f:
        x = f["x"][()]
    for source, args in runs:
        out = os.path.join(tmp, "tuned-" + source + ".h5")
        pred = os.path.join(tmp, "pred-" + source + ".h5")
        r = subprocess.run([xfer, "finetune", source, *args, "--output", out], cwd=fixtures, capture_output=True, text=True)
        r2 = r.returncode == 0 and subprocess.run([xfer, "predict", out, "--data", data, "--output", pred],
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

print(f"{passed} passed, {failures} failed")
sys.exit(1 if failures or passed == 0 else 0)
