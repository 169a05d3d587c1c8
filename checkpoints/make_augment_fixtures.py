"""Writes checkpoints/augment/transforms.h5: what Keras's augmentation layers do to images
for fixed, given random draws.

Keras's random draws cannot be reproduced outside Keras, so every case fixes them: the
angle, zooms, shifts, contrast factors, brightness deltas and flips are given, and Keras
3's own layer (TensorFlow backend) turns them into its transformation and applies it
(`layer.transform_images(images, transformation, training=True)`, the matrix from the
layer's own `_compute_affine_matrix` / `_get_zoom_matrix` / `_get_translation_matrix`).
Rotations are also made by tf-keras's `get_rotation_matrix` + `transform` (how a Keras 2
RandomRotation warps). xfer's functions for the same draws must give the same images
(Tests/XferKitTests/AugmentationParityTests.swift).

Layout: /images (4, 7, 9, 3) float32 in 0..255 (one per draw); per case /<case>/out
(Keras's images), attributes kind and params (JSON: the draws, and for the warps
fill_mode, interpolation, fill_value), and /<case>/matrix (Keras's 8-number transforms). The
preprocess cases hold /<case>/input (the images after preprocess_input) and /<case>/out
(Keras's layer on the raw images, then preprocess_input).

Run: "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_augment_fixtures.py
"""

import json
import os

for _k, _v in {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}.items():
    os.environ.setdefault(_k, _v)

import h5py
import numpy as np
import tensorflow as tf
import keras
from keras import ops

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "augment")
H, W, C, N = 7, 9, 3, 4

rng = np.random.default_rng(20261202)
images = (rng.random((N, H, W, C)) * 255).astype(np.float32)


def np32(t):
    return np.asarray(ops.convert_to_numpy(t), dtype=np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "transforms.h5")
    f = h5py.File(path, "w")
    f.attrs["keras"] = keras.__version__
    f.attrs["tensorflow"] = tf.__version__
    f.create_dataset("images", data=images)
    x = ops.convert_to_tensor(images)
    zeros, ones = ops.zeros([N]), ops.ones([N])

    def case(name, kind, params, out, matrix=None, layer=None, extra=None):
        g = f.create_group(name)
        g.attrs["kind"] = kind
        params = dict(params)
        if layer is not None and hasattr(layer, "fill_mode"):
            params.update(fill_mode=layer.fill_mode, interpolation=layer.interpolation,
                          fill_value=float(layer.fill_value))
        params.update(extra or {})
        g.attrs["params"] = json.dumps(params)
        g.create_dataset("out", data=np32(out))
        if matrix is not None:
            g.create_dataset("matrix", data=np32(matrix))

    warps = [("reflect", "bilinear", 0.0), ("wrap", "bilinear", 0.0), ("constant", "bilinear", 7.5),
             ("nearest", "bilinear", 0.0), ("reflect", "nearest", 0.0), ("constant", "nearest", 3.0)]

    # RandomRotation: degrees per image (factor·360), large ones reach far outside the image.
    angles = [17.0, -95.0, 200.0, 33.3]
    for fill, interp, value in warps:
        layer = keras.layers.RandomRotation(0.1, fill_mode=fill, interpolation=interp, fill_value=value)
        m = layer._compute_affine_matrix(center_x=0.5, center_y=0.5, angle=ops.convert_to_tensor(np.array(angles, np.float32)),
                                         translate_x=zeros, translate_y=zeros, scale=ones, shear_x=zeros, shear_y=zeros,
                                         height=H, width=W)
        out = layer.transform_images(x, {"rotation_matrix": m}, training=True)
        case(f"rotation_{fill}_{interp}", "rotation", {"degrees": angles}, out, m, layer)

    # tf-keras (Keras 2): its own rotation matrix (radians) and transform.
    from tf_keras.src.layers.preprocessing import image_preprocessing as k2
    radians = tf.constant(np.array(angles, np.float32) * np.float32(np.pi / 180))
    m2 = k2.get_rotation_matrix(radians, tf.cast(H, tf.float32), tf.cast(W, tf.float32))
    out2 = k2.transform(tf.constant(images), m2, fill_mode="reflect", interpolation="bilinear")
    case("rotation_tf_keras", "rotation", {"degrees": angles}, out2, m2, None,
         {"fill_mode": "reflect", "interpolation": "bilinear", "fill_value": 0.0})

    # RandomZoom: (height zoom, width zoom) per image; > 1 zooms out, < 1 zooms in.
    zooms = [(1.2, 1.2), (0.7, 0.7), (1.3, 0.8), (0.85, 1.6)]
    for fill, interp, value in warps[:4]:
        layer = keras.layers.RandomZoom(0.5, 0.5, fill_mode=fill, interpolation=interp, fill_value=value)
        t = {"height_zoom": np.array([[z[0]] for z in zooms], np.float32),
             "width_zoom": np.array([[z[1]] for z in zooms], np.float32), "input_shape": (N, H, W, C)}
        out = layer.transform_images(x, t, training=True)
        m = layer._get_zoom_matrix(ops.convert_to_tensor(np.array([[z[1], z[0]] for z in zooms], np.float32)), H, W)
        case(f"zoom_{fill}_{interp}", "zoom", {"zooms": zooms}, out, m, layer)

    # RandomTranslation: (dx, dy) in pixels per image (factor · width, factor · height).
    shifts = [(2.5, -1.25), (-4.0, 3.0), (0.3, 0.7), (-8.6, 5.2)]
    for fill, interp, value in warps:
        layer = keras.layers.RandomTranslation(0.5, 0.5, fill_mode=fill, interpolation=interp, fill_value=value)
        tr = ops.convert_to_tensor(np.array(shifts, np.float32))
        out = layer.transform_images(x, {"translations": tr, "input_shape": (N, H, W, C)}, training=True)
        case(f"translation_{fill}_{interp}", "translation", {"shifts": shifts}, out,
             layer._get_translation_matrix(tr), layer)

    # RandomContrast: factors per image; 1.9 clips at 0 and 255.
    factors = [0.6, 1.0, 1.4, 1.9]
    layer = keras.layers.RandomContrast(0.9)
    cf = np.array(factors, np.float32).reshape(N, 1, 1, 1)
    case("contrast", "contrast", {"factors": factors, "value_range": [0, 255]},
         layer.transform_images(x, {"contrast_factor": cf}, training=True))
    layer = keras.layers.RandomContrast(0.9, value_range=(0, 200))
    case("contrast_range", "contrast", {"factors": factors, "value_range": [0, 200]},
         layer.transform_images(x, {"contrast_factor": cf}, training=True))

    # RandomBrightness: the drawn fraction δ per image; the shift is δ·(range width).
    deltas = [-0.3, 0.1, 0.25, 0.5]
    layer = keras.layers.RandomBrightness(0.5)
    rd = (np.array(deltas, np.float32) * np.float32(255)).reshape(N, 1, 1, 1)
    case("brightness", "brightness", {"deltas": deltas, "value_range": [0, 255]},
         layer.transform_images(x, {"rgb_delta": rd}, training=True))

    # RandomFlip: which images flip, per mode.
    flips = [True, False, True, True]
    for mode in ["horizontal", "vertical", "horizontal_and_vertical"]:
        layer = keras.layers.RandomFlip(mode)
        fl = np.array(flips).reshape(N, 1, 1, 1)
        case(f"flip_{mode}", "flip", {"flips": flips, "mode": mode},
             layer.transform_images(x, {"flips": fl, "input_shape": (N, H, W, C)}, training=True))

    # --augment's contrast and brightness run after preprocess_input: Keras's layer on the raw
    # pixels, then preprocess_input, for the caffe (VGG) and tf modes.
    from keras.applications import imagenet_utils
    for mode in ["caffe", "tf", "torch"]:
        pre = np32(imagenet_utils.preprocess_input(images.copy(), mode=mode))
        out = keras.layers.RandomContrast(0.9).transform_images(x, {"contrast_factor": cf}, training=True)
        case(f"contrast_pre_{mode}", "contrast", {"factors": factors, "preprocess": mode},
             imagenet_utils.preprocess_input(np32(out), mode=mode))
        f[f"contrast_pre_{mode}"].create_dataset("input", data=pre)
        out = keras.layers.RandomBrightness(0.5).transform_images(x, {"rgb_delta": rd}, training=True)
        case(f"brightness_pre_{mode}", "brightness", {"deltas": deltas, "preprocess": mode},
             imagenet_utils.preprocess_input(np32(out), mode=mode))
        f[f"brightness_pre_{mode}"].create_dataset("input", data=pre)
    f.close()
    print(f"wrote {path} ({os.path.getsize(path):,d} bytes)")


if __name__ == "__main__":
    main()
