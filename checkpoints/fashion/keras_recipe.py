#!/usr/bin/env python3
"""The demo's fine-tuning recipe, in Keras: what `xfer finetune` runs (see RECIPE.md).

    "$(scripts/keras-venv.sh)/bin/python" checkpoints/fashion/keras_recipe.py SEED
        [--freeze-until block4|block3|...|all] [--epochs 10] [--output OUT.h5] [--no-pretraining]

Loads fashion_vgg.h5, keeps its base (every layer up to and including the last pooling
layer), freezes every base layer before the first layer named NAME or starting with NAME_
(--freeze-until all: the whole base), adds the head Flatten -> Dense(64, relu) ->
Dropout(0.5) -> Dense(5, softmax), trains it with SGD(0.01, momentum 0.9) and categorical
cross-entropy on train/ (image_dataset_from_directory, 32x32, batch 32, shuffled with SEED,
caffe preprocessing), evaluates on test/ and prints one JSON line:
{"seed", "test_accuracy", "test_loss", "wall_seconds", "freeze_until", "epochs"}.
Epoch lines go to stderr as xfer prints them. wall_seconds covers this whole process, from
before TensorFlow is imported to the end. --no-pretraining is the baseline: the same network
with fresh random weights instead of the checkpoint's.
"""

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("PYTHONHASHSEED", "0")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from tf_keras import layers  # noqa: E402
from tf_keras.applications import vgg16  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

# The recipe (RECIPE.md); change both together.
IMAGE_SIZE = (32, 32)
BATCH_SIZE = 32
EPOCHS = 10
LR = 0.01
MOMENTUM = 0.9
DENSE = 64
DROPOUT = 0.5


def base_layers(model):
    """The model's layers up to and including the last pooling layer."""
    pools = [i for i, l in enumerate(model.layers) if isinstance(l, layers.MaxPooling2D)]
    if not pools:
        raise SystemExit("the checkpoint has no pooling layer")
    return model.layers[: pools[-1] + 1]


def freeze(base, until):
    """Freezes base layers before the first one named `until` or starting with `until_`;
    until == 'all' freezes the whole base. Returns the names of the frozen layers."""
    names = [l.name for l in base]
    if until == "all":
        cut = len(base)
    else:
        hits = [i for i, n in enumerate(names) if n == until or n.startswith(until + "_")]
        if not hits:
            raise SystemExit(f"--freeze-until {until}: no such layer")
        cut = hits[0]
    for i, l in enumerate(base):
        l.trainable = i >= cut
    return [n for n, l in zip(names, base) if not l.trainable and l.weights]


def dataset(folder, shuffle, seed):
    with contextlib.redirect_stdout(sys.stderr):  # "Found N files ...": stdout is the JSON line
        ds = tf_keras.utils.image_dataset_from_directory(
            folder, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, shuffle=shuffle, seed=seed,
            label_mode="categorical")
    class_names = ds.class_names
    return ds.map(lambda x, y: (vgg16.preprocess_input(x), y)), class_names


class EpochLines(tf_keras.callbacks.Callback):
    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch + 1}/{self.epochs} - loss: {logs['loss']:.4f} - "
              f"accuracy: {logs['accuracy']:.4f}", file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("seed", type=int)
    p.add_argument("--checkpoint", default=os.path.join(HERE, "fashion_vgg.h5"))
    p.add_argument("--data", default=os.path.join(HERE, "train"))
    p.add_argument("--test-data", default=os.path.join(HERE, "test"))
    p.add_argument("--freeze-until", default="block4",
                   help="layer name or prefix (block4 -> block4_conv1); 'all' = whole base frozen")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--no-pretraining", action="store_true",
                   help="baseline: same network with fresh random weights (use --freeze-until block1)")
    p.add_argument("--output", default=None, help="also save the fine-tuned model (Keras 2 .h5)")
    args = p.parse_args()

    tf_keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()

    train, class_names = dataset(args.data, shuffle=True, seed=args.seed)
    test, test_names = dataset(args.test_data, shuffle=False, seed=None)
    if test_names != class_names:
        raise SystemExit(f"class folders differ: {class_names} vs {test_names}")

    source = tf_keras.models.load_model(args.checkpoint, compile=False)
    if args.no_pretraining:
        source = tf_keras.models.clone_model(source)  # same layers, newly initialised weights
    base = base_layers(source)
    frozen = freeze(base, args.freeze_until)
    print(f"frozen: {', '.join(frozen) or '(none)'}", file=sys.stderr)

    # The base's layers (with their weights) in a new Sequential model, then the head.
    model = tf_keras.Sequential(name="finetuned")
    model.add(layers.InputLayer(input_shape=source.input_shape[1:]))
    for l in base:
        if not isinstance(l, layers.InputLayer):
            model.add(l)
    model.add(layers.Flatten(name="head_flatten"))
    model.add(layers.Dense(DENSE, activation="relu", name="head_dense"))
    model.add(layers.Dropout(DROPOUT, name="head_dropout"))
    model.add(layers.Dense(len(class_names), activation="softmax", name="head_predictions"))

    model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=args.epochs, verbose=0, callbacks=[EpochLines(args.epochs)])
    loss, acc = model.evaluate(test, verbose=0)
    print(f"loss: {loss:.4f} - accuracy: {acc:.4f}", file=sys.stderr)
    if args.output:
        warnings.filterwarnings("ignore", message=".*HDF5 file via `model.save\\(\\)`")  # on purpose
        model.save(args.output, include_optimizer=False, save_format="h5")

    print(json.dumps({
        "seed": args.seed,
        "test_accuracy": round(float(acc), 4),
        "test_loss": round(float(loss), 4),
        "wall_seconds": round(time.perf_counter() - _START, 2),
        "freeze_until": args.freeze_until,
        "epochs": args.epochs,
        **({"pretrained": False} if args.no_pretraining else {}),
    }), flush=True)


if __name__ == "__main__":
    main()
