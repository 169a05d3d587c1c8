"""Writes the layer-kind reference data in checkpoints/ops/.

Small models, one per Keras setting xfer must match, each saved by tf-keras (`<case>_k2.h5`)
and Keras 3 (`<case>_k3.keras`) where that library has the layer, seeded weights and
BatchNormalization statistics away from 0/1, with what Keras computes:

  permute         Permute((2, 1, 3)), Conv2D, Permute((3, 1, 2)), Flatten, Dense
  identity        Identity between convolutions
  rescaling       Rescaling with per-channel scale and offset arrays
  pool_same       AveragePooling2D / MaxPooling2D with padding 'same' (3x3 stride 2,
                  2x2 stride 2, 3x3 stride 1) on 5x5, maxima of negative values
  bn_flags        BatchNormalization scale=False, center=False, both False
  dropouts        Dropout(noise_shape=(None, 1, 1, 3)), SpatialDropout2D
  activations     Dense gelu (exact, the default of both), Activation swish, relu6
  gelu_approx     gelu on a symbolic tensor, approximate=True then False (Keras 3 ops.gelu, tf-keras tf.nn.gelu)
  stochastic      keras.applications.convnext's StochasticDepth on a residual branch
  convnext_drop   a small ConvNeXt (convnext.ConvNeXt, depths 1, 1, 1, 1, widths 8-64) built with
                  drop_path_rate=0.2, as the family writes StochasticDepth and LayerScale
  preprocess      keras.applications.resnet50.preprocess_input (caffe) on the model's input,
                  then a small convolution

  <case>_data.h5  x (N, ...) float32 and keras/predict (model.predict(x))
  expected.json   per file: total / trainable / non-trainable counts (Keras's)

Run (under a minute): "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_op_fixtures.py
The tf-keras and Keras 3 parts run in separate processes.
"""

import json
import os
import subprocess
import sys

from fixture_env import ENV  # noqa: E402  (before TensorFlow: sets the environment)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops")
SEED = 99
N = 3


def build(K, lib, case):
    L = K.layers
    if case == "permute":
        i = K.Input((4, 5, 3))
        t = L.Permute((2, 1, 3), name="swap_hw")(i)
        t = L.Conv2D(2, 2, name="conv")(t)
        t = L.Permute((3, 1, 2), name="channels_first")(t)
        t = L.Flatten(name="flatten")(t)
        return K.Model(i, L.Dense(3, activation="softmax", name="out")(t), name=case), (4, 5, 3)
    if case == "identity":
        i = K.Input((5, 5, 3))
        t = L.Conv2D(4, 3, padding="same", name="conv1")(i)
        t = L.Identity(name="identity")(t)
        return K.Model(i, L.Conv2D(2, 1, name="conv2")(t), name=case), (5, 5, 3)
    if case == "rescaling":
        i = K.Input((5, 5, 3))
        t = L.Rescaling([1 / 58.4, 1 / 57.1, 1 / 57.4], offset=[-2.1, -2.0, -1.8], name="rescaling")(i)
        return K.Model(i, L.Conv2D(2, 1, name="conv")(t), name=case), (5, 5, 3)
    if case == "pool_same":
        i = K.Input((5, 5, 3))
        neg = L.Rescaling(1.0, offset=-10.0, name="shift")(i)
        outs = [L.AveragePooling2D(3, 2, padding="same", name="avg_3s2")(i),
                L.MaxPooling2D(3, 2, padding="same", name="max_3s2")(neg),
                L.AveragePooling2D(2, 2, padding="same", name="avg_2s2")(i),
                L.MaxPooling2D(2, 2, padding="same", name="max_2s2")(neg)]
        t = L.Concatenate(name="cat")(outs)
        a = L.AveragePooling2D(3, 1, padding="same", name="avg_3s1")(i)
        m = L.MaxPooling2D(3, 1, padding="same", name="max_3s1")(neg)
        u = L.Concatenate(name="cat1")([a, m])
        u = L.Conv2D(12, 3, strides=2, padding="same", name="down")(u)
        return K.Model(i, L.Add(name="add")([t, u]), name=case), (5, 5, 3)
    if case == "bn_flags":
        i = K.Input((5, 5, 3))
        t = L.BatchNormalization(scale=False, name="bn_noscale")(i)
        t = L.BatchNormalization(center=False, name="bn_nocenter")(t)
        t = L.BatchNormalization(scale=False, center=False, name="bn_neither")(t)
        return K.Model(i, L.Conv2D(2, 1, name="conv")(t), name=case), (5, 5, 3)
    if case == "dropouts":
        i = K.Input((5, 5, 3))
        t = L.Dropout(0.3, noise_shape=(None, 1, 1, 3), name="drop_channels")(i)
        t = L.Conv2D(4, 3, name="conv1")(t)
        t = L.SpatialDropout2D(0.2, name="spatial")(t)
        return K.Model(i, L.Conv2D(2, 1, name="conv2")(t), name=case), (5, 5, 3)
    if case == "activations":
        i = K.Input((6,))
        t = L.Dense(5, activation="gelu", name="dense_gelu")(i)
        t = L.Activation("swish", name="swish")(t)
        t = L.Dense(5, name="dense")(t)
        t = L.Activation("relu6", name="relu6")(t)
        return K.Model(i, L.Dense(3, name="out")(t), name=case), (6,)
    if case == "gelu_approx":
        # gelu on a symbolic tensor, approximate and exact: Keras 3's ops.gelu (an operation
        # layer), tf-keras's tf.nn.gelu (a TFOpLambda).
        import tensorflow as tf
        gelu = K.ops.gelu if lib == "keras3" else tf.nn.gelu
        i = K.Input((6,))
        t = gelu(L.Dense(5, name="dense")(i), approximate=True)
        t = gelu(L.Dense(5, name="dense2")(t), approximate=False)
        return K.Model(i, L.Dense(3, name="out")(t), name=case), (6,)
    if case == "stochastic":
        import importlib
        sd = importlib.import_module(f"{K.__name__}.src.applications.convnext").StochasticDepth
        i = K.Input((5, 5, 3))
        t = L.Conv2D(3, 3, padding="same", name="conv")(i)
        t = sd(0.25, name="drop_path")(t)
        return K.Model(i, L.Add(name="add")([i, t]), name=case), (5, 5, 3)
    if case == "convnext_drop":
        import importlib
        cnx = importlib.import_module(f"{K.__name__}.src.applications.convnext")
        name = {"name": "convnext_drop"} if lib == "keras3" else {"model_name": "convnext_drop"}
        return cnx.ConvNeXt(depths=[1, 1, 1, 1], projection_dims=[8, 16, 32, 64], drop_path_rate=0.2,
                            layer_scale_init_value=0.5, include_top=True, weights=None, input_shape=(32, 32, 3),
                            classes=3, **name), (32, 32, 3)
    if case == "preprocess":
        i = K.Input((8, 8, 3))
        t = K.applications.resnet50.preprocess_input(i)
        t = L.Conv2D(4, 3, name="conv")(t)
        t = L.GlobalAveragePooling2D(name="gap")(t)
        return K.Model(i, L.Dense(3, name="out")(t), name=case), (8, 8, 3)
    raise KeyError(case)


CASES = ("permute", "identity", "rescaling", "pool_same", "bn_flags", "dropouts", "activations", "gelu_approx", "stochastic",
         "convnext_drop", "preprocess")


def seed_weights(model, rng):
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if layer.__class__.__name__ == "BatchNormalization":
            # gamma/beta as present, then the moving statistics.
            out = []
            for w, name in zip(ws, [v.name for v in layer.weights]):
                if "moving_variance" in name:
                    out.append(rng.uniform(0.5, 2.0, w.shape))
                elif "moving_mean" in name:
                    out.append(rng.uniform(-0.5, 0.5, w.shape))
                elif "gamma" in name:
                    out.append(rng.uniform(0.5, 1.5, w.shape))
                else:
                    out.append(rng.uniform(-0.3, 0.3, w.shape))
            ws = out
        else:
            ws = [rng.normal(0, 0.4, w.shape) for w in ws]
        layer.set_weights([np.asarray(w, np.float32) for w in ws])


def part(lib):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if lib == "tf_keras":
        import tf_keras as K
        suffix, ext = "k2", ".h5"
    else:
        import keras as K
        suffix, ext = "k3", ".keras"
    expected = {}
    for case in CASES:
        K.backend.clear_session()
        K.utils.set_random_seed(SEED)
        try:
            model, shape = build(K, lib, case)
        except (AttributeError, ValueError, ImportError) as e:
            print(f"  {case}: not in {lib} ({e})")
            continue
        seed_weights(model, np.random.default_rng(SEED + len(case)))
        rng = np.random.default_rng(SEED)
        x = rng.uniform(0, 255, (N,) + shape) if case in ("preprocess", "convnext_drop") else rng.normal(0, 1, (N,) + shape)
        x = x.astype(np.float32)
        fname = f"{case}_{suffix}{ext}"
        model.save(os.path.join(HERE, fname))
        expected[fname] = {
            "total_params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "non_trainable_params": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
        }
        with h5py.File(os.path.join(HERE, f"{case}_{suffix}_data.h5"), "w") as f:
            f["x"] = x
            f["keras/predict"] = model.predict(x, verbose=0).astype(np.float32)
        print(f"  {fname}", flush=True)
    with open(os.path.join(HERE, f"expected_{suffix}.json"), "w") as f:
        json.dump(expected, f)


def main():
    if len(sys.argv) > 1:
        part(sys.argv[1])
        return
    os.makedirs(HERE, exist_ok=True)
    for lib in ("tf_keras", "keras3"):
        print(f"{lib}:", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), lib], check=True, env=dict(os.environ, **ENV))
    expected = {}
    for suffix in ("k2", "k3"):
        p = os.path.join(HERE, f"expected_{suffix}.json")
        with open(p) as f:
            expected.update(json.load(f))
        os.remove(p)
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
