#!/usr/bin/env python3
"""Writes checkpoints/merge/merge_reference.json: what Keras's merge layers compute, forward
and backward, on small inputs chosen for exact ties and broadcasting.

    "${XFER_VENV:-.venv-keras}/bin/python" checkpoints/make_merge_reference.py [--out FILE]

For every case, both Keras 3 (TensorFlow backend) and tf_keras build the layer and run it
eagerly on a batch of 2 under tf.GradientTape; the loss is sum(r * y), so dL/dy = r and the
gradients are the layer's vector-Jacobian product with r. The two Keras versions must agree
(the script stops otherwise); their numbers are written once. Inputs are float32; ties are
exact (values from a small set of multiples of 1/4). Every float in the file is a float32
written exactly (shortest repr of its double value). Reruns give an identical file.

Each case: "layer" (Keras class), "axis" (Concatenate), "input_shapes" (per sample, no
batch), "batch", "inputs" (flat row-major values of each (batch, shape...) input), "r",
"output_shape" (per sample, as Keras computes it), "y" (flat), "grads" (one flat list per input).
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf_keras  # noqa: E402

BATCH = 2


def quarters(rng, shape, lo=-2, hi=2):
    """Values from {lo, lo+1/4, ..., hi}: exact in float32, with many exact ties."""
    return (rng.integers(lo * 4, hi * 4 + 1, size=shape) / 4).astype(np.float32)


def uniform(rng, shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def run(layer, inputs, r):
    xs = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        y = layer(xs)
        loss = tf.reduce_sum(tf.constant(r) * y)
    grads = tape.gradient(loss, xs)
    return y.numpy(), [g.numpy() for g in grads]


def make(kind, kwargs, inputs, r):
    k3 = getattr(keras.layers, kind)(**kwargs)
    k2 = getattr(tf_keras.layers, kind)(**kwargs)
    y3, g3 = run(k3, inputs, r)
    y2, g2 = run(k2, inputs, r)
    if not (np.array_equal(y3, y2) and all(np.allclose(a, b, rtol=1e-6, atol=1e-6) for a, b in zip(g3, g2))):
        raise SystemExit(f"{kind}: Keras 3 and tf_keras disagree")
    shape3 = k3.compute_output_shape([(None,) + x.shape[1:] for x in inputs])
    assert tuple(shape3[1:]) == y3.shape[1:], (shape3, y3.shape)
    return y3, g3


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).reshape(-1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "merge", "merge_reference.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(20240917)

    # Maximum/Minimum over three inputs, one tie pattern per position (a, b, c):
    # a=b>c, b=c>a, a=c>b, a=b=c, distinct, a=b<c, b=c<a, a=c<b.
    a = np.array([1, 0, 1, 1, 0.5, 0, 1, 0], np.float32)
    b = np.array([1, 1, 0, 1, 0.25, 0, 0, 1], np.float32)
    c = np.array([0, 1, 1, 1, 0.75, 1, 0, 0], np.float32)
    ties = [np.stack([v, v - 2]) for v in (a, b, c)]  # batch of 2: the pattern, and shifted

    cases = [
        ("add_equal", "Add", {}, [uniform(rng, (BATCH, 2, 3, 4)) for _ in range(2)]),
        ("add_h1c_1wc", "Add", {}, [uniform(rng, (BATCH, 3, 1, 4)), uniform(rng, (BATCH, 1, 5, 4))]),
        ("add_rank_c_hwc", "Add", {}, [uniform(rng, (BATCH, 4)), uniform(rng, (BATCH, 2, 3, 4))]),
        ("add_rank_hwc_wc", "Add", {}, [uniform(rng, (BATCH, 2, 3, 4)), uniform(rng, (BATCH, 3, 4))]),
        ("subtract_broadcast", "Subtract", {}, [uniform(rng, (BATCH, 2, 3, 4)), uniform(rng, (BATCH, 1, 1, 4))]),
        ("multiply_se", "Multiply", {}, [uniform(rng, (BATCH, 3, 4, 5)), uniform(rng, (BATCH, 1, 1, 5))]),
        ("multiply_3", "Multiply", {}, [uniform(rng, (BATCH, 2, 3, 2)), uniform(rng, (BATCH, 2, 1, 2)), uniform(rng, (BATCH, 1, 3, 1))]),
        ("multiply_rank_c_hwc", "Multiply", {}, [uniform(rng, (BATCH, 3)), uniform(rng, (BATCH, 2, 2, 3))]),
        ("average_3", "Average", {}, [uniform(rng, (BATCH, 2, 3)), uniform(rng, (BATCH, 1, 3)), uniform(rng, (BATCH, 2, 1))]),
        ("maximum_ties_3", "Maximum", {}, ties),
        ("minimum_ties_3", "Minimum", {}, ties),
        ("maximum_ties_2", "Maximum", {}, ties[:2]),
        ("minimum_ties_2", "Minimum", {}, ties[1:]),
        ("maximum_broadcast_ties", "Maximum", {}, [quarters(rng, (BATCH, 2, 2, 3), -1, 1), quarters(rng, (BATCH, 1, 1, 3), -1, 1)]),
        ("minimum_broadcast_ties", "Minimum", {}, [quarters(rng, (BATCH, 1, 3, 2), -1, 1), quarters(rng, (BATCH, 2, 1, 2), -1, 1),
                                                   quarters(rng, (BATCH, 2, 3, 2), -1, 1)]),
        ("concatenate_axis_m1", "Concatenate", {"axis": -1}, [uniform(rng, (BATCH, 2, 3, 2)), uniform(rng, (BATCH, 2, 3, 3))]),
        ("concatenate_axis_1", "Concatenate", {"axis": 1}, [uniform(rng, (BATCH, 1, 3, 2)), uniform(rng, (BATCH, 2, 3, 2))]),
        ("concatenate_axis_2", "Concatenate", {"axis": 2}, [uniform(rng, (BATCH, 2, 1, 2)), uniform(rng, (BATCH, 2, 3, 2)),
                                                            uniform(rng, (BATCH, 2, 2, 2))]),
        ("concatenate_axis_3", "Concatenate", {"axis": 3}, [uniform(rng, (BATCH, 2, 2, 1)), uniform(rng, (BATCH, 2, 2, 3))]),
        ("concatenate_rank2", "Concatenate", {"axis": -1}, [uniform(rng, (BATCH, 3)), uniform(rng, (BATCH, 2))]),
    ]

    out = {"keras_version": keras.__version__, "tf_keras_version": tf_keras.__version__,
           "tensorflow_version": tf.__version__, "cases": []}
    for name, kind, kwargs, inputs in cases:
        y_shape = getattr(keras.layers, kind)(**kwargs).compute_output_shape([(None,) + x.shape[1:] for x in inputs])
        r = uniform(rng, (BATCH,) + tuple(y_shape[1:]))
        y, grads = make(kind, kwargs, inputs, r)
        case = {"name": name, "layer": kind}
        if "axis" in kwargs:
            case["axis"] = kwargs["axis"]
        case.update({
            "input_shapes": [list(x.shape[1:]) for x in inputs],
            "batch": BATCH,
            "inputs": [flat(x) for x in inputs],
            "r": flat(r),
            "output_shape": list(y.shape[1:]),
            "y": flat(y),
            "grads": [flat(g) for g in grads],
        })
        out["cases"].append(case)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}: {len(out['cases'])} cases")


if __name__ == "__main__":
    main()
