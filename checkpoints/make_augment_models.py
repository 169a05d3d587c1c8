"""Writes checkpoints/augment/k2_augment.h5 (tf_keras model.save) and
k3_augment.keras (Keras 3 model.save): a small classifier with Keras's augmentation
layers in front, as Keras's image-classification examples build it:

  Input 16x16x3 -> RandomFlip("horizontal") -> RandomRotation(0.1) -> RandomZoom(0.2)
  -> RandomTranslation(0.1, 0.15) -> RandomContrast(0.2) -> RandomBrightness(0.2)
  -> Conv2D(4, 3, relu) -> MaxPooling2D -> Flatten -> Dense(3, softmax)

with seeded weights (the same in both files), and beside each <file>.io.h5: `x`, a batch of 3
images in 0..255, and `y`, Keras's `model.predict(x)` (inference: every augmentation layer is
the identity), and `x_train`/`y_train`, 6 labelled images xfer fine-tunes on.

Run: "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_augment_models.py
"""

import os
import subprocess
import sys

for _k, _v in {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0",
               "KERAS_BACKEND": "tensorflow", "PYTHONHASHSEED": "0"}.items():
    os.environ.setdefault(_k, _v)

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "augment")


def build(K):
    inputs = K.Input((16, 16, 3), name="image")
    x = K.layers.RandomFlip("horizontal", name="flip")(inputs)
    x = K.layers.RandomRotation(0.1, name="rotation")(x)
    x = K.layers.RandomZoom(0.2, name="zoom")(x)
    x = K.layers.RandomTranslation(0.1, 0.15, name="translation")(x)
    x = K.layers.RandomContrast(0.2, name="contrast")(x)
    x = K.layers.RandomBrightness(0.2, name="brightness")(x)
    x = K.layers.Conv2D(4, 3, activation="relu", name="conv1")(x)
    x = K.layers.MaxPooling2D(name="pool1")(x)
    x = K.layers.Flatten(name="flatten")(x)
    outputs = K.layers.Dense(3, activation="softmax", name="predictions")(x)
    return K.Model(inputs, outputs, name="augmented")


def seeded_weights(model):
    rng = np.random.default_rng(1202)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([(rng.standard_normal(w.shape) * (0.02 if w.ndim > 1 else 0.1)).astype(np.float32) for w in ws])


def part(which):
    if which == "tf_keras":
        import tf_keras as K
        path = os.path.join(OUT, "k2_augment.h5")
    else:
        import keras as K
        path = os.path.join(OUT, "k3_augment.keras")
    model = build(K)
    seeded_weights(model)
    rng = np.random.default_rng(7)
    x = (rng.random((3, 16, 16, 3)) * 255).astype(np.float32)
    x_train = (rng.random((6, 16, 16, 3)) * 255).astype(np.float32)
    y_train = np.array([0, 1, 2, 0, 1, 2], np.int64)
    y = model.predict(x, verbose=0)
    model.save(path)
    with h5py.File(path + ".io.h5", "w") as f:
        f.create_dataset("x", data=x)
        f.create_dataset("y", data=np.asarray(y, np.float32))
        f.create_dataset("x_train", data=x_train)
        f.create_dataset("y_train", data=y_train)
    # The data xfer trains on: x and y as DATA expects them.
    with h5py.File(os.path.join(OUT, "train.h5"), "w") as f:
        f.create_dataset("x", data=x_train)
        f.create_dataset("y", data=y_train)
    print(f"wrote {path} ({os.path.getsize(path):,d} bytes), predictions {np.round(y, 4).tolist()}")


def main():
    if len(sys.argv) > 1:
        part(sys.argv[1])
        return
    os.makedirs(OUT, exist_ok=True)
    for which in ("tf_keras", "keras3"):
        subprocess.run([sys.executable, os.path.abspath(__file__), which], check=True)


if __name__ == "__main__":
    main()
