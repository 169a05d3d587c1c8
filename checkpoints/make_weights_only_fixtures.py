"""Writes the weights-only fixtures of keras.applications families (checkpoints/weights_only/).

Made by Keras (weights=None, seeded, BatchNormalization statistics away from their initial
values), kept small (MobileNet alpha 0.25, 32×32 inputs). To stay small in the repository the
weights are rounded to multiples of 1/64 and the files' datasets recompressed (HDF5 gzip +
shuffle, which h5py, and so Keras, reads transparently); groups, attributes, names and shapes
stay as Keras wrote them, and the expected outputs are those of a fresh model that loaded the
recompressed file:
  k2_mobilenet025_notop.h5             tf-keras `save_weights` of MobileNet(alpha=0.25, include_top=False)
  k3_mobilenet025_transfer.weights.h5  Keras 3 `save_weights` of Sequential([that base, GlobalAveragePooling2D,
                                       Dense(8, relu), Dropout, Dense(3, softmax)])
  k2_mobilenet025_cut.h5               tf-keras `save_weights` of MobileNet 0.25 cut after conv_pw_2: no family
  k2_mobilenetv2035_notop.h5           tf-keras `save_weights` of MobileNetV2(alpha=0.35, include_top=False),
                                       predicted at 33×33 (odd sizes at its strided blocks: `correct_pad`)
  X.expected.json                      Keras's parameter counts, the input shape, the layers of the model
  X.io.h5                              x = a fixed batch, y = model.predict(x)

Usage: python make_weights_only_fixtures.py [OUT_DIR [tf_keras|tf_keras_odd|keras]]
"""
import json
import os
import subprocess
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

SIDE = 32
N = 2


def seeded(model, rng):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            seeded(layer, rng)
        elif type(layer).__name__ == "BatchNormalization":
            values = []
            for w in layer.weights:
                n = w.name.split("/")[-1].split(":")[0]
                shape = tuple(int(d) for d in w.shape)
                v = {"gamma": lambda: rng.uniform(0.6, 1.0, shape), "beta": lambda: rng.normal(0.0, 0.1, shape),
                     "moving_mean": lambda: rng.normal(0.0, 0.2, shape),
                     "moving_variance": lambda: rng.uniform(1.0, 2.0, shape)}[n]()
                values.append(v.astype(np.float32))
            layer.set_weights(values)


def quantized(model):
    """Every weight rounded to a multiple of 1/64: few distinct values, so gzip packs them."""
    model.set_weights([np.round(w * 64) / 64 for w in model.get_weights()])


def recompress(path):
    """The file with every dataset gzip-compressed (shuffle filter); everything else as it was."""
    tmp = path + ".tmp"
    with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                g = dst.require_group(name)
            else:
                big = obj.size > 64
                g = dst.create_dataset(name, data=obj[()], **(dict(compression="gzip", compression_opts=9, shuffle=True) if big else {}))
            for k, v in obj.attrs.items():
                g.attrs[k] = v
        src.visititems(copy)
    os.replace(tmp, path)


def count(weights):
    return int(sum(int(np.prod([int(d) for d in w.shape])) for w in weights))


def write(out, fname, model, path_written, side=SIDE):
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (N, side, side, 3)).astype(np.float32)
    y = np.asarray(model(x, training=False), dtype=np.float32)
    with h5py.File(os.path.join(out, fname + ".io.h5"), "w") as f:
        f["x"] = x
        f["y"] = y
    expected = {"file": fname, "input_shape": [side, side, 3], "total_params": count(model.weights),
                "trainable_params": count(model.trainable_weights),
                "non_trainable_params": count(model.weights) - count(model.trainable_weights),
                "xfer_args": ["--input-shape", f"{side},{side},3"]}
    with open(os.path.join(out, fname + ".expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(fname, os.path.getsize(path_written), "bytes", expected["total_params"], "params")


def tf_keras_files(out):
    import tf_keras as K
    K.utils.set_random_seed(1)
    base = K.applications.MobileNet(weights=None, include_top=False, alpha=0.25, input_shape=(None, None, 3))
    seeded(base, np.random.default_rng(1))
    quantized(base)
    p = os.path.join(out, "k2_mobilenet025_notop.h5")
    base.save_weights(p)
    recompress(p)
    again = K.applications.MobileNet(weights=None, include_top=False, alpha=0.25, input_shape=(None, None, 3))
    again.load_weights(p)
    write(out, "k2_mobilenet025_notop.h5", again, p)
    cut = K.Model(base.input, base.get_layer("conv_pw_2_relu").output)
    p = os.path.join(out, "k2_mobilenet025_cut.h5")
    cut.save_weights(p)
    print("k2_mobilenet025_cut.h5", os.path.getsize(p), "bytes")


def tf_keras_odd_files(out):
    """MobileNetV2 0.35 without its top, saved from an open input size and predicted at 33x33:
    its strided blocks pad by `correct_pad`, one less before on an even side, so at this size
    (33, 17, 9, 5: odd) the padding differs from the one an open or even size gives."""
    import tf_keras as K
    K.utils.set_random_seed(3)
    base = K.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35, input_shape=(None, None, 3))
    seeded(base, np.random.default_rng(3))
    quantized(base)
    p = os.path.join(out, "k2_mobilenetv2035_notop.h5")
    base.save_weights(p)
    recompress(p)
    again = K.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35, input_shape=(33, 33, 3))
    again.load_weights(p)
    write(out, "k2_mobilenetv2035_notop.h5", again, p, side=33)


def keras3_files(out):
    import keras as K
    K.utils.set_random_seed(2)
    base = K.applications.MobileNet(weights=None, include_top=False, alpha=0.25, input_shape=(SIDE, SIDE, 3))
    def transfer(base):
        return K.Sequential([K.Input((SIDE, SIDE, 3)), base, K.layers.GlobalAveragePooling2D(),
                             K.layers.Dense(8, activation="relu"), K.layers.Dropout(0.3), K.layers.Dense(3, activation="softmax")])
    model = transfer(base)
    seeded(model, np.random.default_rng(2))
    quantized(model)
    p = os.path.join(out, "k3_mobilenet025_transfer.weights.h5")
    model.save_weights(p)
    recompress(p)
    again = transfer(K.applications.MobileNet(weights=None, include_top=False, alpha=0.25, input_shape=(SIDE, SIDE, 3)))
    again.load_weights(p)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))
    write(out, "k3_mobilenet025_transfer.weights.h5", again, p)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights_only")
    os.makedirs(out, exist_ok=True)
    # tf-keras and Keras 3 in separate processes (each sets up its own Keras).
    if len(sys.argv) > 2:
        {"tf_keras": tf_keras_files, "tf_keras_odd": tf_keras_odd_files, "keras": keras3_files}[sys.argv[2]](out)
        return
    for writer in ["tf_keras", "tf_keras_odd", "keras"]:
        subprocess.run([sys.executable, __file__, out, writer], check=True)


if __name__ == "__main__":
    main()
