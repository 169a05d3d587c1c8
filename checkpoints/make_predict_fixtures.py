"""Writes checkpoints/predict/: small Keras 3 models and what Keras predicts with them, for
`xfer predict` on plain photos, the preprocessing a foreign model needs, class names matched by
name, and `--color-mode`.

    .venv-keras/bin/python checkpoints/make_predict_fixtures.py

Outputs, under checkpoints/predict/:
  photos/{cat,dog}/*.png     8 synthetic 20x20 photos, two of the five classes below (cats
                             reddish, dogs bluish), the test folder
  colors5.keras              Keras 3: Input(16,16,3) -> Rescaling(1/255) -> Conv2D -> GAP ->
                             Dense(5, softmax), trained by Keras on 5 coloured classes
                             (bird, cat, dog, fox, owl); records no class names (a foreign model)
  colors5_named.h5           the same model, Keras 3 legacy .h5, with the root attribute
                             class_names that xfer writes (Keras ignores it)
  gray3.keras                Keras 3: Input(16,16,1) -> Conv2D -> GAP -> Dense(3, softmax), no
                             rescaling (raw 0..255 grey pixels)
  expected.json              Keras's answers: per photo file (path below photos/) the
                             probabilities of colors5 (image_dataset_from_directory(labels=None,
                             image_size=(16,16)), no preprocessing: the model rescales itself) and
                             of gray3 (color_mode="grayscale"); colors5_named's model.evaluate on
                             photos/ with each folder's label being its class's index in class_names
                             (loss, accuracy); and the same evaluate with labels by folder
                             position (what matching by position would score)
  pixels.h5                  tf.io.decode_image(channels=1|4) + tf.image.resize((32, 32),
                             bilinear) of every image in ../images/sample, as
                             image_dataset_from_directory(color_mode="grayscale"|"rgba") loads
                             it: datasets grayscale/<path> (32,32,1) and rgba/<path> (32,32,4)
                             (path with "/" as "|"); files TensorFlow refuses are absent and
                             listed in the attribute `refused_<mode>`
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "predict")
SAMPLE = os.path.join(HERE, "images", "sample")
CLASSES = ["bird", "cat", "dog", "fox", "owl"]
COLORS = {"bird": (40, 200, 40), "cat": (220, 60, 40), "dog": (40, 60, 220), "fox": (230, 150, 20), "owl": (120, 120, 120)}
SIZE = 16


def photo(color, rng, size=20):
    base = np.array(color, dtype=np.float64)
    noise = rng.normal(0, 25, (size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_photos(rng):
    for name in ["cat", "dog"]:
        folder = os.path.join(OUT, "photos", name)
        os.makedirs(folder, exist_ok=True)
        for i in range(4):
            Image.fromarray(photo(COLORS[name], rng)).save(os.path.join(folder, f"{name}{i}.png"), optimize=False)


def training_set(rng, n=24):
    x, y = [], []
    for label, name in enumerate(CLASSES):
        for _ in range(n):
            img = photo(COLORS[name], rng, SIZE).astype(np.float32)
            x.append(img)
            y.append(label)
    return np.stack(x), np.array(y)


def photos_dataset(color_mode, labels=None):
    return keras.utils.image_dataset_from_directory(
        os.path.join(OUT, "photos"), labels=labels, color_mode=color_mode, image_size=(SIZE, SIZE),
        shuffle=False, batch_size=32, interpolation="bilinear")


def photo_paths():
    ds = photos_dataset("rgb")
    return [os.path.relpath(p, os.path.join(OUT, "photos")) for p in ds.file_paths]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    write_photos(rng)
    keras.utils.set_random_seed(7)

    colors = keras.Sequential([
        keras.Input((SIZE, SIZE, 3), name="image"),
        keras.layers.Rescaling(1 / 255.0, name="rescaling"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(len(CLASSES), activation="softmax", name="predictions"),
    ], name="colors5")
    colors.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = training_set(rng)
    colors.fit(x, y, epochs=40, batch_size=20, verbose=0, shuffle=True)
    # Saved uncompiled-equivalent: the loss is what the files record; evaluate below uses it.
    colors.save(os.path.join(OUT, "colors5.keras"))
    named = os.path.join(OUT, "colors5_named.h5")
    colors.save(named)
    with h5py.File(named, "a") as f:
        f.attrs["class_names"] = np.array([c.encode() for c in CLASSES], dtype=h5py.string_dtype("utf-8"))

    gray = keras.Sequential([
        keras.Input((SIZE, SIZE, 1), name="image"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv",
                            kernel_initializer=keras.initializers.RandomNormal(0, 0.02, seed=3)),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(3, activation="softmax", name="predictions",
                           kernel_initializer=keras.initializers.RandomNormal(0, 0.5, seed=4)),
    ], name="gray3")
    gray.save(os.path.join(OUT, "gray3.keras"))

    paths = photo_paths()
    rgb = np.concatenate([b.numpy() for b in photos_dataset("rgb")])
    grey = np.concatenate([b.numpy() for b in photos_dataset("grayscale")])
    p_colors = colors.predict(rgb, verbose=0)
    p_gray = gray.predict(grey, verbose=0)

    # Folder labels: cat, dog in sorted order. By name they are classes 1 and 2 of the model.
    labelled = photos_dataset("rgb", labels="inferred")
    folder_labels = np.concatenate([l.numpy() for _, l in labelled])
    folder_names = labelled.class_names
    by_name = np.array([CLASSES.index(folder_names[i]) for i in folder_labels])
    loss, acc = colors.evaluate(rgb, by_name, verbose=0)
    loss_pos, acc_pos = colors.evaluate(rgb, folder_labels, verbose=0)

    expected = {
        "classes": CLASSES,
        "files": paths,
        "colors5": {p: [float(v) for v in row] for p, row in zip(paths, p_colors)},
        "gray3": {p: [float(v) for v in row] for p, row in zip(paths, p_gray)},
        "evaluate_by_name": {"loss": float(loss), "accuracy": float(acc)},
        "evaluate_by_position": {"loss": float(loss_pos), "accuracy": float(acc_pos)},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")

    # Pixels of ../images/sample in the other colour modes, as image_dataset_from_directory loads them.
    with h5py.File(os.path.join(OUT, "pixels.h5"), "w") as f:
        for mode, channels in [("grayscale", 1), ("rgba", 4)]:
            refused = []
            for root, _, files in sorted(os.walk(SAMPLE), key=lambda r: r[0]):
                for name in sorted(files):
                    if not name.lower().endswith((".png", ".jpg", ".jpeg")):
                        continue
                    path = os.path.join(root, name)
                    rel = os.path.relpath(path, SAMPLE)
                    try:
                        img = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
                    except tf.errors.InvalidArgumentError:
                        refused.append(rel)
                        continue
                    out = tf.image.resize(img, (32, 32), method="bilinear").numpy().astype(np.float32)
                    f.create_dataset(f"{mode}/{rel.replace('/', '|')}", data=out)
            f.attrs[f"refused_{mode}"] = json.dumps(refused)


if __name__ == "__main__":
    main()
