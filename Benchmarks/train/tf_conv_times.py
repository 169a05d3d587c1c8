"""Which convolution TensorFlow-CPU runs for VGG16's base, and how fast (BENCHMARKS.md, "Training").

    ONEDNN_VERBOSE=1 python Benchmarks/train/tf_conv_times.py CHECKPOINT [--batch 16] [--runs 3]

Runs the base of CHECKPOINT (Keras VGG16(include_top=False), e.g. Benchmarks/out/vgg16_notop.h5)
forward in a tf.function, as `fit` does for a frozen base, reads oneDNN's verbose lines from
stderr of a child process, and prints per convolution: the implementation oneDNN chose, its
median time over the timed runs, and GFLOP/s (2·M·N·K). Needs ONEDNN_VERBOSE=1 in the environment.
"""
import os
import re
import statistics
import subprocess
import sys

if os.environ.get("XFER_CHILD") != "1":
    if os.environ.get("ONEDNN_VERBOSE") != "1":
        sys.exit("set ONEDNN_VERBOSE=1")
    env = dict(os.environ, XFER_CHILD="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable] + sys.argv, env=env, capture_output=True, text=True)
    lines = [line for line in (out.stdout + out.stderr).splitlines()
             if line.startswith("onednn_verbose") and ",exec," in line and ",convolution," in line]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
    convs = len(lines) // (runs + 1)  # the first pass is the warm-up
    total_ms = total_gflop = 0.0
    for i in range(convs):
        timed = [lines[(r + 1) * convs + i] for r in range(runs)]
        fields = timed[0].split(",")
        impl, shape = fields[6], fields[-2]
        ms = statistics.median(float(line.split(",")[-1]) for line in timed)
        d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", shape)}
        gflop = 2 * d["mb"] * d["oh"] * d["ow"] * d["oc"] * d["kh"] * d["kw"] * d["ic"] / 1e9
        total_ms += ms
        total_gflop += gflop
        print(f"{shape}  {impl}  {ms:.1f} ms  {gflop / ms * 1e3:.0f} GFLOP/s")
    print(f"all {convs} convolutions: {total_ms:.0f} ms, {total_gflop / total_ms * 1e3:.0f} GFLOP/s")
    sys.exit(0)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

args = sys.argv[1:]
batch = int(args[args.index("--batch") + 1]) if "--batch" in args else 16
runs = int(args[args.index("--runs") + 1]) if "--runs" in args else 3
base = keras.models.load_model(args[0], compile=False)
x = np.random.default_rng(0).uniform(-128, 128, (batch,) + base.input_shape[1:]).astype("float32")
forward = tf.function(lambda x: base(x, training=False))
for _ in range(runs + 1):
    forward(x).numpy()
