"""Writes the three models of the families benchmark (BENCHMARKS.md, "Families") once:

    OUT_DIR/resnet50_notop.h5, mobilenetv2_notop.h5, efficientnetb0_notop.h5

(FAMILIES=RegNetX002,RegNetY002 for others: tf_keras.applications' names, comma-separated.)

tf_keras.applications.<Family>(include_top=False, weights=None, input_shape=(224, 224, 3)), seeded
(random weights, nothing downloaded), saved as Keras 2 full-model HDF5 files; an existing file is kept.

    python Benchmarks/families/make_models.py OUT_DIR
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

for name in os.environ.get("FAMILIES", "ResNet50,MobileNetV2,EfficientNetB0").split(","):
    path = os.path.join(out, f"{name.lower()}_notop.h5")
    if os.path.exists(path):
        continue
    tf.keras.utils.set_random_seed(1)
    model = getattr(tf_keras.applications, name)(include_top=False, weights=None, input_shape=(224, 224, 3))
    model.save(path + ".part", save_format="h5")
    os.replace(path + ".part", path)
    print(path, flush=True)
