"""TensorFlow-CPU side of the inference benchmark (BENCHMARKS.md, "Inference engine").

Times Keras `model.predict` on the same network xfer-bench runs: VGG16's
convolutional base (include_top=False, weights=None: random weights, nothing
downloaded) at SIZE×SIZE×3, one batch of BATCH random images per predict call.

    python Benchmarks/tf_predict_vgg16.py [--batch 16] [--size 224] [--threads N] [--runs 5] [--warmup 1]
                                          [--checkpoint FILE]

--checkpoint: time that Keras 2 full-model file (tf_keras.models.load_model) instead, at its own
input size: the ResNet50 and InceptionV3 bases Benchmarks/train/make_data.py writes.

Prints one line of key=value figures in the format xfer-bench uses: the median
over the timed runs and the process's peak RSS.
"""

import argparse
import os
import resource
import statistics
import time

parser = argparse.ArgumentParser()
parser.add_argument("--batch", type=int, default=16)
parser.add_argument("--size", type=int, default=224)
parser.add_argument("--threads", type=int, default=os.cpu_count())
parser.add_argument("--runs", type=int, default=5)
parser.add_argument("--warmup", type=int, default=1)
parser.add_argument("--checkpoint")
args = parser.parse_args()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The thread pools must be sized before TensorFlow creates them.
tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(args.threads)

import keras  # noqa: E402

if args.checkpoint:
    import tf_keras  # noqa: E402

    model = tf_keras.models.load_model(args.checkpoint, compile=False)
    args.size = model.input_shape[1]
else:
    model = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(args.size, args.size, 3)
    )
x = np.random.default_rng(7).uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype("float32")

for _ in range(args.warmup):
    model.predict(x, batch_size=args.batch, verbose=0)
seconds = []
for _ in range(args.runs):
    t0 = time.perf_counter()
    model.predict(x, batch_size=args.batch, verbose=0)
    seconds.append(time.perf_counter() - t0)

med = statistics.median(seconds)
# Same count as xfer-bench: 2·M·N·K over the 13 convolutions (all `same`, 3×3).
flops, size, channels = 0, args.size, 3
for filters, convs in [] if args.checkpoint else [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
    for _ in range(convs):
        flops += 2 * args.batch * size * size * 9 * channels * filters
        channels = filters
    size //= 2
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    f"mode=tensorflow batch={args.batch} size={args.size} threads={args.threads} runs={args.runs} "
    f"median_s={med:.4f} min_s={min(seconds):.4f} max_s={max(seconds):.4f} "
    f"img_per_s={args.batch / med:.2f} gflops={flops / med * 1e-9:.1f} peak_rss_mb={peak_mb:.0f} "
    f"tf={tf.__version__} keras={keras.__version__}"
)
