#!/usr/bin/env python3
"""Pretrains the backbone of the transfer-learning demo: a narrow VGG on Fashion-MNIST
classes 0-4 (t-shirt, trouser, pullover, dress, coat).

    "$(scripts/keras-venv.sh)/bin/python" checkpoints/fashion/make_backbone.py [--out DIR] [--epochs 3]

Writes <out>/fashion_vgg.h5 (tf_keras `model.save`, a Keras 2 full model without optimizer
state) and <out>/fashion_vgg.json (how it was trained and its test accuracy).

The network has the layer names of keras.applications.VGG16 through block4 (block1_conv1,
block1_conv2, block1_pool, ..., block4_conv3, block4_pool), widths 16/32/64/64, Conv2D 3x3
'same' relu and MaxPooling2D 2x2, then flatten, fc1 (Dense 64 relu) and predictions
(Dense 5 softmax); input 32x32x3.

Its inputs are what `image_dataset_from_directory(image_size=(32, 32))` followed by
`vgg16.preprocess_input` (caffe: RGB->BGR, minus the ImageNet means) makes of the 28x28
greyscale PNGs of make_images.py: decode as RGB (3 equal channels), tf.image.resize bilinear
to 32x32, caffe. Training uses arrays built that way straight from the idx files; before
training, the script writes a sample of the images as PNGs to a temporary folder, reads them
back with image_dataset_from_directory and stops unless both give the same floats.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from tf_keras import layers  # noqa: E402
from tf_keras.applications import vgg16  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_images  # noqa: E402

IMAGE_SIZE = (32, 32)
WIDTHS = (16, 32, 64, 64)  # block1..block4
CONVS = (2, 2, 3, 3)  # convolutions per block, as in VGG16
FC1 = 64


def model_input(gray):
    """N x 28 x 28 uint8 greyscale -> N x 32 x 32 x 3 float32, exactly as
    image_dataset_from_directory(image_size=(32, 32)) + vgg16.preprocess_input give it."""
    x = tf.convert_to_tensor(gray[..., None])  # uint8, as decode_image returns it
    x = tf.image.grayscale_to_rgb(x)  # decode_image(channels=3) of a grey PNG: 3 equal channels
    x = tf.image.resize(x, IMAGE_SIZE, method="bilinear")  # float32, antialias off
    return vgg16.preprocess_input(x.numpy())


def check_pipeline(gray, labels):
    """Writes gray as PNGs, reads them back the Keras way, compares with model_input."""
    with tempfile.TemporaryDirectory() as tmp:
        chosen = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
        make_images.write_folder(tmp, gray, chosen, "img")
        ds = tf_keras.utils.image_dataset_from_directory(
            tmp, image_size=IMAGE_SIZE, batch_size=1000, shuffle=False)
        from_files = np.concatenate([vgg16.preprocess_input(x.numpy()) for x, _ in ds])
    order = np.concatenate([chosen[c] for c in sorted(chosen)])  # folder order = file order
    ours = model_input(gray[order])
    diff = float(np.max(np.abs(from_files - ours)))
    if diff != 0.0:
        raise SystemExit(f"input pipeline differs from image_dataset_from_directory by {diff}")
    return len(order)


def build_model(num_classes):
    inputs = layers.Input(shape=IMAGE_SIZE + (3,), name="input_1")
    x = inputs
    for b, (width, convs) in enumerate(zip(WIDTHS, CONVS), start=1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(width, (3, 3), activation="relu", padding="same",
                              name=f"block{b}_conv{c}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(FC1, activation="relu", name="fc1")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return tf_keras.Model(inputs, outputs, name="fashion_vgg")


def main():
    start = time.perf_counter()
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idx-dir", default=make_images.IDX_DIR)
    p.add_argument("--out", default=here)
    p.add_argument("--train-per-class", type=int, default=3000,
                   help="pretraining images per class from the train split (of 6000)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    tf_keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()

    train_gray, train_y = make_images.load_split(args.idx_dir, "train")
    test_gray, test_y = make_images.load_split(args.idx_dir, "t10k")
    classes = make_images.PRETRAIN_CLASSES
    tr = np.sort(np.concatenate(list(make_images.pick(train_y, classes, args.train_per_class, args.seed + 100).values())))
    te = np.flatnonzero(np.isin(test_y, classes))  # the whole test split of classes 0-4

    # 20 test images per class through real PNG files and image_dataset_from_directory.
    sample = np.concatenate(list(make_images.pick(test_y, classes, 20, 0).values()))
    checked = check_pipeline(test_gray[sample], test_y[sample])
    print(f"input pipeline: identical to image_dataset_from_directory on {checked} PNGs")

    x_train, y_train = model_input(train_gray[tr]), train_y[tr].astype("int64")
    x_test, y_test = model_input(test_gray[te]), test_y[te].astype("int64")

    model = build_model(len(classes))
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=args.lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              shuffle=True, verbose=2)
    loss, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    print(f"test (classes 0-4, {len(te)} images): loss {loss:.4f} - accuracy {acc:.4f}")

    os.makedirs(args.out, exist_ok=True)
    h5 = os.path.join(args.out, "fashion_vgg.h5")
    tmp_h5 = h5 + ".tmp"
    warnings.filterwarnings("ignore", message=".*HDF5 file via `model.save\\(\\)`")  # on purpose
    model.save(tmp_h5, include_optimizer=False, save_format="h5")
    # The saved file must give the same model back.
    reloaded = tf_keras.models.load_model(tmp_h5, compile=False)
    same = np.array_equal(reloaded.predict(x_test[:256], verbose=0), model.predict(x_test[:256], verbose=0))
    if not same:
        raise SystemExit("reloaded model predicts differently")
    os.replace(tmp_h5, h5)

    info = {
        "checkpoint": "fashion_vgg.h5",
        "written_by": f"tf_keras {tf_keras.__version__} model.save (HDF5, include_optimizer=False)",
        "tensorflow_version": tf.__version__,
        "architecture": {
            "input_shape": list(IMAGE_SIZE) + [3],
            "blocks": [{"block": b, "convs": c, "filters": w} for b, (w, c) in enumerate(zip(WIDTHS, CONVS), 1)],
            "fc1": FC1,
            "predictions": len(classes),
            "total_params": int(model.count_params()),
        },
        "classes": [make_images.CLASS_FOLDERS[c] for c in classes],
        "preprocessing": "grey PNG -> RGB (3 equal channels) -> tf.image.resize bilinear 32x32 "
                         "-> vgg16.preprocess_input (caffe)",
        "training": {
            "data": f"Fashion-MNIST train split, classes 0-4, {args.train_per_class} per class "
                    f"(numpy default_rng({args.seed + 100}) choice)",
            "images": int(len(tr)),
            "optimizer": f"Adam(learning_rate={args.lr})",
            "loss": "sparse_categorical_crossentropy",
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "seed": args.seed,
        },
        "test": {
            "data": "Fashion-MNIST test split, classes 0-4 (all)",
            "images": int(len(te)),
            "loss": round(float(loss), 4),
            "accuracy": round(float(acc), 4),
        },
    }
    with open(os.path.join(args.out, "fashion_vgg.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(f"wrote {h5} ({os.path.getsize(h5):,} bytes) in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
