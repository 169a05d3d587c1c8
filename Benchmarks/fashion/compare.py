"""The README's recipe in xfer and in Keras, side by side, over seeds 0, 1, 2.

For each seed, alternating: the whole `xfer finetune` + `xfer evaluate` (release
build) and the whole `keras_recipe.py SEED` process (TensorFlow-CPU with its default
oneDNN kernels: load, train, evaluate). Prints each run's test accuracy and wall time,
then the means and the ratio of the mean wall times.

Usage: python compare.py XFER PYTHON [SEEDS...]
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", ".."))
fashion = os.path.join(root, "checkpoints", "fashion")
xfer, python = sys.argv[1], sys.argv[2]
seeds = [int(s) for s in sys.argv[3:]] or [0, 1, 2]
RECIPE = ["--freeze-until", "block3", "--head", "flatten,dense:64:relu,dropout:0.5", "--optimizer", "sgd",
          "--lr", "0.01", "--momentum", "0.9", "--batch-size", "32", "--epochs", "10"]

rows = []
with tempfile.TemporaryDirectory() as tmp:
    for seed in seeds:
        out = os.path.join(tmp, f"x{seed}.h5")
        t0 = time.perf_counter()
        subprocess.run([xfer, "finetune", os.path.join(fashion, "fashion_vgg.h5"), "--data", os.path.join(fashion, "train"),
                        *RECIPE, "--seed", str(seed), "--output", out], check=True, capture_output=True)
        ev = subprocess.run([xfer, "evaluate", out, "--data", os.path.join(fashion, "test")],
                            check=True, capture_output=True, text=True).stdout
        x_wall = time.perf_counter() - t0
        x_acc = float(re.search(r"accuracy: ([0-9.]+)", ev).group(1))

        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
        t0 = time.perf_counter()
        k = subprocess.run([python, os.path.join(fashion, "keras_recipe.py"), str(seed), "--freeze-until", "block3"],
                           check=True, capture_output=True, text=True, env=env).stdout
        k_wall = time.perf_counter() - t0
        k_acc = json.loads(k.strip().splitlines()[-1])["test_accuracy"]
        rows.append((seed, x_acc, x_wall, k_acc, k_wall))
        print(f"seed {seed}: xfer accuracy {x_acc:.4f} in {x_wall:.1f} s | Keras accuracy {k_acc:.4f} in {k_wall:.1f} s", flush=True)

xa = statistics.mean(r[1] for r in rows); ka = statistics.mean(r[3] for r in rows)
xw = statistics.mean(r[2] for r in rows); kw = statistics.mean(r[4] for r in rows)
print(f"mean test accuracy: xfer {xa:.4f}, Keras {ka:.4f} (difference {100 * (xa - ka):+.2f} points; target within 1.5)")
print(f"mean wall time: xfer {xw:.1f} s, Keras {kw:.1f} s (xfer/Keras {xw / kw:.2f}x)")
