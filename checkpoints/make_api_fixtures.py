#!/usr/bin/env python3
"""Writes checkpoints/api/predict_images.json: what Keras predicts for image files, the
reference of the Swift API's `KerasModel.predict(image:)` and `predict(folder:)`.

    .venv-keras/bin/python checkpoints/make_api_fixtures.py

For checkpoints/fashion/fashion_vgg.h5 (32x32x3, a softmax of 5 classes) and the 100 images of
checkpoints/fashion/test/8_bag: tf_keras.utils.image_dataset_from_directory(labels=None,
shuffle=False, image_size=(32, 32)) reads them as TensorFlow decodes and resizes them
(decode_image, bilinear), vgg16.preprocess_input applies the caffe mode (what xfer uses for a
model that records no preprocessing), and model.predict gives the outputs. Recorded per file:
its name below the folder, Keras's outputs, argmax and top probability. Reruns give the same file.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

root = os.path.dirname(os.path.abspath(__file__))
model_path = os.path.join(root, "fashion", "fashion_vgg.h5")
folder = os.path.join(root, "fashion", "test", "8_bag")

model = tf_keras.models.load_model(model_path, compile=False)
ds = tf_keras.utils.image_dataset_from_directory(folder, labels=None, shuffle=False, image_size=(32, 32),
                                                 batch_size=32, interpolation="bilinear")
paths = [os.path.relpath(p, folder) for p in ds.file_paths]
x = np.concatenate([b.numpy() for b in ds])
x = tf_keras.applications.vgg16.preprocess_input(x)
y = model.predict(x, batch_size=32, verbose=0)
rows = [{"file": p, "outputs": [float(v) for v in out], "class": int(np.argmax(out)), "probability": float(np.max(out))}
        for p, out in zip(paths, y)]
out = {
    "generator": "checkpoints/make_api_fixtures.py",
    "tensorflow_version": tf.__version__,
    "keras": "tf_keras " + tf_keras.__version__,
    "model": "checkpoints/fashion/fashion_vgg.h5",
    "folder": "checkpoints/fashion/test/8_bag",
    "preprocess": "caffe",
    "predictions": rows,
}
with open(os.path.join(root, "api", "predict_images.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"wrote {len(rows)} predictions")
