"""The environment every fixture script runs Keras in: CPU only, deterministic kernels, no
oneDNN rewrites in TensorFlow (its fused kernels sum in another order), a fixed hash seed, the
TensorFlow backend for Keras 3, and quiet logs.

Import it before TensorFlow, Keras or tf-keras: `from fixture_env import ENV` sets these in
os.environ (where not already set); scripts that run their tf-keras and Keras 3 parts in
subprocesses pass ENV on to them.
"""

import os

ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONHASHSEED": "0",
    "KERAS_BACKEND": "tensorflow",
}
for _k, _v in ENV.items():
    os.environ.setdefault(_k, _v)
