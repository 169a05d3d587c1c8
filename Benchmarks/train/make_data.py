"""Writes the training benchmark's inputs (BENCHMARKS.md, "Training"); never commit them.

    python Benchmarks/train/make_data.py OUT_DIR [N]

OUT_DIR/vgg16_notop.h5   tf_keras.applications.VGG16(include_top=False, weights=None) at
                         224x224x3 (random Glorot weights), saved as a Keras 2 full-model .h5
OUT_DIR/resnet50_notop.h5, inceptionv3_notop.h5   the same for ResNet50 (224x224x3) and
                         InceptionV3 (299x299x3): the forward-pass comparison of BENCHMARKS.md, "Winograd"
OUT_DIR/train_N.h5       an HDF5 DATA file: x (N,224,224,3) float32 uniform in [-128, 128)
                         (the range of caffe-preprocessed images), y (N,) int labels 0..4
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
import h5py  # noqa: E402
import numpy as np  # noqa: E402

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 512
os.makedirs(out, exist_ok=True)

ckpt = os.path.join(out, "vgg16_notop.h5")
if not os.path.exists(ckpt):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    model.save(ckpt + ".tmp.h5")
    os.replace(ckpt + ".tmp.h5", ckpt)
    print(f"{ckpt}: {model.count_params():,} params")

for name, size in [("ResNet50", 224), ("InceptionV3", 299)]:
    path = os.path.join(out, f"{name.lower()}_notop.h5")
    if not os.path.exists(path):
        import tf_keras

        tf_keras.utils.set_random_seed(0)
        model = getattr(tf_keras.applications, name)(include_top=False, weights=None, input_shape=(size, size, 3))
        model.save(path + ".tmp.h5")
        os.replace(path + ".tmp.h5", path)
        print(f"{path}: {model.count_params():,} params")

data = os.path.join(out, f"train_{n}.h5")
if not os.path.exists(data):
    rng = np.random.default_rng(0)
    with h5py.File(data + ".tmp", "w") as f:
        x = f.create_dataset("x", (n, 224, 224, 3), dtype="float32")
        for i in range(0, n, 64):
            k = min(64, n - i)
            x[i:i + k] = rng.uniform(-128, 128, (k, 224, 224, 3)).astype("float32")
        f.create_dataset("y", data=(np.arange(n) % 5).astype("int64"))
    os.replace(data + ".tmp", data)
    print(f"{data}: {n} samples, 5 classes")
