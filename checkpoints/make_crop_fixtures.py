"""Writes checkpoints/crop/: Keras's RandomCrop inside small models, and what it does to images.

Models (seeded weights, the same in every file; each <stem>_data.h5 holds `x`, a batch of 3
images in 0..255, and `y`, Keras's `model.predict(x)`):

  crop_k2.h5          tf-keras: Input 12x10x3 -> RandomCrop(8, 8) -> Conv2D(4, 3, relu)
                      -> GlobalAveragePooling2D -> Dense(3, softmax). At inference RandomCrop is
                      smart_resize: the centred 10x10 box resized to 8x8.
  crop_k2_same.h5     tf-keras, Input 8x8x3: RandomCrop(8, 8) is the identity.
  crop_k2_small.h5    tf-keras, Input 6x5x3 -> RandomCrop(8, 8): smart_resize up (the 5x5 box
                      at the top, resized to 8x8), in training too.
  crop_k3.keras       Keras 3, Input 12x10x3 -> RandomCrop(8, 8): predict returns the images
                      uncropped, so the convolution sees 12x10.
  crop_k3_same.keras  Keras 3, Input 8x8x3: the identity.
  crop_k3_flatten.keras  Keras 3, Input 12x10x3 -> RandomCrop(8, 8) -> Flatten -> Dense(3): Keras
                      builds Dense for 8x8x3 but predicts uncropped, and fails (checked here); no
                      _data.h5. xfer refuses it naming the layer.
  train.h5            `x` (6, 12, 10, 3), `y` labels 0..2: what xfer fine-tunes crop_k2.h5 on.

crops.h5 (the layer alone, on `x` (2, 12, 10, 3)):
  k2_window       tf-keras RandomCrop(8, 8) called with training=True (seed 5); `k2_window_offset`
                  its (top, left), found by comparing with every numpy slice x[:, t:t+8, l:l+8]
                  (the whole batch is cut at one place, as Keras does).
  k2_resize_HxW   tf-keras RandomCrop(H, W) with training=False on `x` (smart_resize), for
                  (8, 8), (6, 4), (16, 12) and (12, 10) (the identity).
  k3_inference    Keras 3 RandomCrop(8, 8) with training=False: `x` itself (checked here).
  k3_train_HxW    Keras 3 RandomCrop(8, 8) with training=True on `k3_train_in_HxW` (2, H, W, 3),
                  for 8x12 and 6x10: inputs not larger than the crop both ways, so no draw.

Run: /work/main/.venv-keras/bin/python checkpoints/make_crop_fixtures.py
"""

import json
import os
import subprocess
import sys

for _k, _v in {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0",
               "KERAS_BACKEND": "tensorflow", "PYTHONHASHSEED": "0"}.items():
    os.environ.setdefault(_k, _v)

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "crop")


def build(K, shape):
    inputs = K.Input(shape, name="image")
    x = K.layers.RandomCrop(8, 8, seed=3, name="crop")(inputs)
    x = K.layers.Conv2D(4, 3, activation="relu", name="conv1")(x)
    x = K.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = K.layers.Dense(3, activation="softmax", name="predictions")(x)
    return K.Model(inputs, outputs, name="cropped")


def seeded_weights(model):
    rng = np.random.default_rng(1202)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([(rng.standard_normal(w.shape) * (0.05 if w.ndim > 1 else 0.1)).astype(np.float32) for w in ws])


def models(which):
    if which == "tf_keras":
        import tf_keras as K
        specs = [("crop_k2.h5", (12, 10, 3)), ("crop_k2_same.h5", (8, 8, 3)), ("crop_k2_small.h5", (6, 5, 3))]
    else:
        import keras as K
        specs = [("crop_k3.keras", (12, 10, 3)), ("crop_k3_same.keras", (8, 8, 3))]
    expected = {}
    for name, shape in specs:
        model = build(K, shape)
        seeded_weights(model)
        rng = np.random.default_rng(7)
        x = (rng.random((3, *shape)) * 255).astype(np.float32)
        y = model.predict(x, verbose=0)
        path = os.path.join(OUT, name)
        model.save(path)
        stem = os.path.splitext(name)[0]
        with h5py.File(os.path.join(OUT, stem + "_data.h5"), "w") as f:
            f.create_dataset("x", data=x)
            f.create_dataset("y", data=np.asarray(y, np.float32))
        expected[name] = {"total_params": int(model.count_params()),
                          "crop_output": list(model.get_layer("crop").output.shape[1:])}
        print(f"wrote {path}: predictions {np.round(y, 4).tolist()}")
    if which == "keras3":
        inputs = K.Input((12, 10, 3), name="image")
        x = K.layers.RandomCrop(8, 8, name="crop")(inputs)
        x = K.layers.Flatten(name="flatten")(x)
        model = K.Model(inputs, K.layers.Dense(3, name="predictions")(x), name="flat")
        seeded_weights(model)
        try:
            model.predict(np.zeros((1, 12, 10, 3), np.float32), verbose=0)
            raise AssertionError("Keras 3 predicted a Flatten -> Dense after an uncropped RandomCrop")
        except Exception as e:  # noqa: BLE001
            if isinstance(e, AssertionError):
                raise
            print("keras 3 predict fails as expected:", str(e).splitlines()[0][:100])
        model.save(os.path.join(OUT, "crop_k3_flatten.keras"))
    if which == "tf_keras":
        rng = np.random.default_rng(11)
        with h5py.File(os.path.join(OUT, "train.h5"), "w") as f:
            f.create_dataset("x", data=(rng.random((6, 12, 10, 3)) * 255).astype(np.float32))
            f.create_dataset("y", data=np.array([0, 1, 2, 0, 1, 2], np.int64))
    return expected


def crops(which):
    rng = np.random.default_rng(3)
    x = (rng.random((2, 12, 10, 3)) * 255).astype(np.float32)
    out = {}
    if which == "tf_keras":
        import tf_keras as K
        y = K.layers.RandomCrop(8, 8, seed=5)(x, training=True).numpy()
        hits = [(t, l) for t in range(12 - 8 + 1) for l in range(10 - 8 + 1) if np.array_equal(x[:, t:t + 8, l:l + 8], y)]
        assert len(hits) == 1, hits
        out["k2_window"] = y
        out["k2_window_offset"] = np.array(hits[0], np.int64)
        for h, w in [(8, 8), (6, 4), (16, 12), (12, 10)]:
            out[f"k2_resize_{h}x{w}"] = K.layers.RandomCrop(h, w)(x, training=False).numpy()
        assert np.array_equal(out["k2_resize_12x10"], x)
    else:
        import keras as K
        y = np.asarray(K.layers.RandomCrop(8, 8, seed=5)(x, training=False))
        assert y.shape == x.shape and np.array_equal(y, x), y.shape  # Keras 3: uncropped at inference
        out["k3_inference"] = y
        # In training: a random 8x8 window of the batch.
        t = np.asarray(K.layers.RandomCrop(8, 8, seed=5)(x, training=True))
        assert t.shape == (2, 8, 8, 3), t.shape
        print("keras 3 training-mode crop:", t.shape, "inference:", y.shape)
        # In training with the input not larger than the crop both ways: no random draw, the
        # corner of the centred aspect-ratio box, a slice, resized when smaller.
        for h, w in [(8, 12), (6, 10)]:
            xi = (rng.random((2, h, w, 3)) * 255).astype(np.float32)
            out[f"k3_train_in_{h}x{w}"] = xi
            out[f"k3_train_{h}x{w}"] = np.asarray(K.layers.RandomCrop(8, 8, seed=5)(xi, training=True))
    with h5py.File(os.path.join(OUT, "crops.h5"), "a") as f:
        if which == "tf_keras":
            f.create_dataset("x", data=x)
        for k, v in out.items():
            f.create_dataset(k, data=v)


def main():
    if len(sys.argv) > 1:
        e = models(sys.argv[1])
        crops(sys.argv[1])
        print("EXPECTED " + json.dumps(e))
        return
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(os.path.join(OUT, "crops.h5")):
        os.remove(os.path.join(OUT, "crops.h5"))
    expected = {}
    for which in ("tf_keras", "keras3"):
        r = subprocess.run([sys.executable, os.path.abspath(__file__), which], check=True, capture_output=True, text=True)
        sys.stdout.write("".join(l + "\n" for l in r.stdout.splitlines() if not l.startswith("EXPECTED ")))
        expected.update(json.loads(next(l for l in r.stdout.splitlines() if l.startswith("EXPECTED "))[9:]))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(expected))


if __name__ == "__main__":
    main()
