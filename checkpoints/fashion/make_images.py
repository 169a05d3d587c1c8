#!/usr/bin/env python3
"""Writes the Fashion-MNIST image folders of the transfer-learning demo.

    python3 checkpoints/fashion/make_images.py [--idx-dir DIR] [--out checkpoints/fashion]
                                               [--pretrain-dir DIR]

Reads the idx files of the Debian package `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz) and writes 28x28 greyscale PNGs, pixels
as-is, in the layout of Keras's `image_dataset_from_directory` (one folder per class, sorted
folder names = class indices):

  <out>/train/5_sandal/ ... <out>/train/9_ankle_boot/   200 images per class (Fashion-MNIST train split)
  <out>/test/5_sandal/  ... <out>/test/9_ankle_boot/    100 images per class (Fashion-MNIST test split)

Classes 5-9 are the fine-tuning task; classes 0-4 (t-shirt, trouser, pullover, dress, coat)
pretrain the backbone (make_backbone.py trains from arrays built exactly as Keras reads
these PNGs, so no pretraining images are needed; --pretrain-dir writes them anyway, as
<dir>/train/0_tshirt/... and <dir>/test/0_tshirt/..., never into the repository).

Images are picked per class with numpy's default_rng(--seed); a file is named after its
split and its index in that split (train_01234.png), so it can be traced back. Reruns give
identical files. Needs only numpy and pillow.
"""

import argparse
import gzip
import os
import shutil
import struct

import numpy as np
from PIL import Image

IDX_DIR = "/usr/share/datasets/fashion-mnist"

# Fashion-MNIST label -> folder name (sorted names keep the label order within each task).
CLASS_FOLDERS = [
    "0_tshirt",
    "1_trouser",
    "2_pullover",
    "3_dress",
    "4_coat",
    "5_sandal",
    "6_shirt",
    "7_sneaker",
    "8_bag",
    "9_ankle_boot",
]
PRETRAIN_CLASSES = [0, 1, 2, 3, 4]
FINETUNE_CLASSES = [5, 6, 7, 8, 9]


def read_idx(path):
    """Reads an idx1/idx3 file (optionally gzipped) into a uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape))
    if len(data) - offset != count:
        raise ValueError(f"{path}: expected {count} bytes of data, found {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def load_split(idx_dir, split):
    """Returns (images N x 28 x 28 uint8, labels N uint8) of split 'train' or 't10k'."""
    def find(stem):
        for name in (stem + ".gz", stem):
            path = os.path.join(idx_dir, name)
            if os.path.exists(path):
                return path
        raise FileNotFoundError(
            f"{os.path.join(idx_dir, stem)}[.gz] not found (apt-get install dataset-fashion-mnist)")

    images = read_idx(find(f"{split}-images-idx3-ubyte"))
    labels = read_idx(find(f"{split}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"{idx_dir}: {split} images {images.shape} and labels {labels.shape} disagree")
    return images, labels


def pick(labels, classes, per_class, seed):
    """Seeded choice of `per_class` indices of each class (all of them if per_class is None),
    each class's indices sorted; returns {class: indices}."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if per_class is not None:
            if per_class > idx.size:
                raise ValueError(f"class {c}: asked for {per_class} images, only {idx.size} exist")
            idx = np.sort(rng.choice(idx, size=per_class, replace=False))
        chosen[c] = idx
    return chosen


def write_folder(root, images, chosen, prefix):
    """Writes images[chosen[c]] as <root>/<CLASS_FOLDERS[c]>/<prefix>_<index>.png;
    returns (files, bytes)."""
    files = size = 0
    for c, idx in chosen.items():
        folder = os.path.join(root, CLASS_FOLDERS[c])
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        for i in idx:
            path = os.path.join(folder, f"{prefix}_{int(i):05d}.png")
            # A 2-D uint8 array becomes a mode "L" (8-bit greyscale) image.
            Image.fromarray(images[i]).save(path, format="PNG", optimize=True)
            files += 1
            size += os.path.getsize(path)
    return files, size


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idx-dir", default=IDX_DIR, help="folder of the Fashion-MNIST idx files")
    p.add_argument("--out", default=here, help="writes <out>/train and <out>/test (classes 5-9)")
    p.add_argument("--train-per-class", type=int, default=200)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrain-dir", default=None,
                   help="also write classes 0-4 (every image of both splits) under this folder")
    args = p.parse_args()

    train_x, train_y = load_split(args.idx_dir, "train")
    test_x, test_y = load_split(args.idx_dir, "t10k")

    total_files = total_bytes = 0
    for split, x, y, n, prefix in (
        ("train", train_x, train_y, args.train_per_class, "train"),
        ("test", test_x, test_y, args.test_per_class, "test"),
    ):
        # Different seeds for the two splits, so the choices are independent.
        chosen = pick(y, FINETUNE_CLASSES, n, args.seed * 2 + (split == "test"))
        files, size = write_folder(os.path.join(args.out, split), x, chosen, prefix)
        print(f"{os.path.join(args.out, split)}: {files} PNG files, {size:,} bytes")
        total_files += files
        total_bytes += size
    print(f"total: {total_files} files, {total_bytes:,} bytes")

    if args.pretrain_dir:
        for split, x, y, prefix in (("train", train_x, train_y, "train"), ("test", test_x, test_y, "test")):
            chosen = pick(y, PRETRAIN_CLASSES, None, 0)
            files, size = write_folder(os.path.join(args.pretrain_dir, split), x, chosen, prefix)
            print(f"{os.path.join(args.pretrain_dir, split)}: {files} PNG files, {size:,} bytes")


if __name__ == "__main__":
    main()
