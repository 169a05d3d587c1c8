"""Writes the full-size VGG16 with top (random weights, ~553 MB) as a Keras 2 full-model .h5.

Usage: python make_vgg16.py OUT.h5   (never commit the output)
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
import tf_keras  # noqa: E402

model = tf_keras.applications.VGG16(weights=None)
model.save(sys.argv[1])
print(f"{sys.argv[1]}: {os.path.getsize(sys.argv[1]):,} bytes, {model.count_params():,} params")
