"""TensorFlow-CPU side of the training benchmark (BENCHMARKS.md, "Training").

The same job `xfer finetune` runs: the VGG16 base of CHECKPOINT (Keras
VGG16(include_top=False)), xfer's default new head Flatten -> Dense(256, relu) ->
Dropout(0.5) -> Dense(classes, softmax), base frozen (or frozen below
--freeze-until), SGD (lr 0.01), sparse categorical cross-entropy, Keras `model.fit`.

    python tf_train_vgg16.py CHECKPOINT DATA steps [--freeze-until block5] [--batch 16] [--steps 6] [--warmup 2]
    python tf_train_vgg16.py CHECKPOINT DATA job   [--freeze-until block5] [--batch 16] [--epochs 10]

steps: one epoch of (warmup + steps) batches; each step's time from the timestamps of
       an on_train_batch_end callback, the first `warmup` steps dropped.
job:   model.fit on every sample of DATA for --epochs epochs (shuffled), timed.
Prints one line of key=value figures (seconds; peak RSS of this process in MiB).
"""
import argparse
import os
import resource
import statistics
import time

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("data")
parser.add_argument("mode", choices=["steps", "job"])
parser.add_argument("--freeze-until")
parser.add_argument("--batch", type=int, default=16)
parser.add_argument("--steps", type=int, default=6)
parser.add_argument("--warmup", type=int, default=2)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
t_start = time.perf_counter()
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

keras.utils.set_random_seed(0)
base = keras.models.load_model(args.checkpoint, compile=False)
with h5py.File(args.data, "r") as f:
    n = f["x"].shape[0] if args.mode == "job" else (args.warmup + args.steps) * args.batch
    x = f["x"][:n]
    y = f["y"][:n]
classes = int(y.max()) + 1 if args.mode == "job" else 5

if args.freeze_until:
    frozen = True
    for layer in base.layers:
        if layer.name == args.freeze_until or layer.name.startswith(args.freeze_until + "_"):
            frozen = False
        layer.trainable = not frozen
else:
    base.trainable = False
h = keras.layers.Flatten(name="flatten")(base.output)
h = keras.layers.Dense(256, activation="relu", name="dense")(h)
h = keras.layers.Dropout(0.5, name="dropout")(h)
out = keras.layers.Dense(classes, activation="softmax", name="predictions")(h)
model = keras.Model(base.input, out)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)


class Stamps(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.times = [time.perf_counter()]

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


stamps = Stamps()
t0 = time.perf_counter()
hist = model.fit(x, y, batch_size=args.batch, epochs=1 if args.mode == "steps" else args.epochs,
                 shuffle=args.mode == "job", verbose=0, callbacks=[stamps])
fit_s = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
fields = f"side=tensorflow mode={args.mode} freeze_until={args.freeze_until or 'base'} batch={args.batch} trainable={trainable}"
if args.mode == "steps":
    steps = [b - a for a, b in zip(stamps.times, stamps.times[1:])][args.warmup:]
    med = statistics.median(steps)
    print(f"{fields} steps={len(steps)} step_s={med:.4f} images_per_s={args.batch / med:.3f} "
          f"all_steps={','.join(f'{s:.3f}' for s in steps)} peak_rss_mib={peak:.0f}")
else:
    print(f"{fields} samples={len(x)} epochs={args.epochs} fit_s={fit_s:.2f} total_s={time.perf_counter() - t_start:.2f} "
          f"loss={hist.history['loss'][-1]:.4f} peak_rss_mib={peak:.0f}")
