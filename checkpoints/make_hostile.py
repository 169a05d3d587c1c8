"""Hostile variants of Keras-written fixtures, for the safety tests (Tests/xferTests/HostileFileTests.swift).

Every file here starts as a checkpoint Keras wrote (checkpoints/fixtures/k2_zoo.h5 from tf_keras,
k3_zoo.keras from Keras 3) and is then damaged or rigged the way a crafted download would be:
HDF5 objects that reach outside the file, data never written, sizes no machine holds, model
configurations with impossible numbers or forged names, and .keras archives that lie.

    python checkpoints/make_hostile.py            # writes checkpoints/hostile/*

Needs h5py and numpy only (the Keras venv has both: scripts/keras-venv.sh). The outputs are small
and committed; `swift test` needs no Python.
"""

import json
import os
import shutil
import zipfile
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "fixtures")
OUT = os.path.join(HERE, "hostile")
K2 = os.path.join(SRC, "k2_zoo.h5")      # tf_keras 2.21 model.save(...h5)
K3 = os.path.join(SRC, "k3_zoo.keras")   # Keras 3 model.save(...keras)
KERNEL = "model_weights/dense/dense/kernel:0"

# Bytes a crafted checkpoint would try to carry away (a stand-in for a user's private file).
SECRET = b"PRIVATE-KEY-0123456789abcdef" * 4


def member(name):
    """A zip entry with a fixed date, so reruns give the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def out(name):
    return os.path.join(OUT, name)


def copy(name, src=K2):
    shutil.copyfile(src, out(name))
    return out(name)


def replace_kernel(path, make):
    """Replaces the dense kernel dataset by what `make(file, name, shape, dtype)` creates."""
    with h5py.File(path, "r+") as f:
        shape, dtype = f[KERNEL].shape, f[KERNEL].dtype
        del f[KERNEL]
        make(f, KERNEL, shape, dtype)


def rewrite_config(name, change):
    """A copy of k2_zoo.h5 whose model_config JSON went through `change(config)`."""
    path = copy(name)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        change(config)
        f.attrs["model_config"] = json.dumps(config)


def layer(config, name):
    return next(l for l in config["config"]["layers"] if l["config"]["name"] == name)


def rewrite_archive(name, members):
    """A copy of k3_zoo.keras with `members` (name -> bytes, or None to drop) changed."""
    with zipfile.ZipFile(K3) as z:
        original = {i.filename: z.read(i.filename) for i in z.infolist()}
    for k, v in members.items():
        if v is None:
            original.pop(k, None)
        else:
            original[k] = v
    with zipfile.ZipFile(out(name), "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in original.items():
            z.writestr(member(k), v)


def deflate_bomb(path, name, inflated_bytes):
    """k3_zoo.keras with member `name` replaced by one that inflates to `inflated_bytes` of zeros from
    about a thousandth of that (zipfile streams it through the compressor)."""
    with zipfile.ZipFile(K3) as z:
        keep = {i.filename: z.read(i.filename) for i in z.infolist() if i.filename != name}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for k, v in keep.items():
            z.writestr(member(k), v)
        block = b"\0" * (1 << 20)
        with z.open(member(name), "w", force_zip64=True) as m:
            for _ in range(inflated_bytes // len(block)):
                m.write(block)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    with open(out("secret.bin"), "wb") as f:
        f.write(SECRET * 64)
    with h5py.File(out("secret.h5"), "w") as f:
        f["data"] = np.frombuffer((SECRET * 64)[:6 * 12 * 4], dtype="<f4").reshape(12, 6)

    # HDF5 objects that read bytes from other files.
    replace_kernel(copy("external_storage.h5"),
                   lambda f, n, s, d: f.create_dataset(n, s, d, external=[("secret.bin", 0, int(np.prod(s)) * d.itemsize)]))
    replace_kernel(copy("external_link.h5"), lambda f, n, s, d: f.__setitem__(n, h5py.ExternalLink("secret.h5", "/data")))

    def virtual(f, n, s, d):
        layout = h5py.VirtualLayout(shape=s, dtype=d)
        layout[:] = h5py.VirtualSource("secret.h5", "data", shape=s)
        f.create_virtual_dataset(n, layout)
    replace_kernel(copy("virtual_dataset.h5"), virtual)
    replace_kernel(copy("soft_link.h5"), lambda f, n, s, d: f.__setitem__(n, h5py.SoftLink("/model_weights/dense_1/dense_1/kernel:0")))

    # Data declared but never stored; sizes no machine holds.
    replace_kernel(copy("never_written.h5"), lambda f, n, s, d: f.create_dataset(n, s, d))
    replace_kernel(copy("huge_declared_shape.h5"),
                   lambda f, n, s, d: f.create_dataset(n, (1 << 40, 1 << 20), d, chunks=(1, 1024)))

    # Two bytes of a B-tree node changed (found by scripts/fuzz.py-style mutation): libhdf5 1.10
    # dereferences a wild pointer while listing the groups. Offsets are into k2_zoo.h5, which
    # make_checkpoints.py rewrites byte for byte.
    # And three bytes of the layout message of conv2d_2's bias (its address and layout class):
    # libhdf5 divides by zero (SIGFPE).
    # And in k2_vgg_full.h5, one bit and 13 bytes of block2_conv1's object header (found by
    # scripts/fuzz.py, seed 1, mutant 2408): libhdf5 loops for ever in its global heap while
    # reading the layer's weight_names.
    hang = [(17571, 16)] + [(o, 0) for o in (17741, 17742, 17743, 17744, 17745, 17746, 17752, 17760,
                                             17768, 17769, 17770, 17771, 17772)]
    for name, src, edits in [("libhdf5_segfault.h5", K2, [(2074, 0x80), (2080, 0xFF)]),
                             ("libhdf5_sigfpe.h5", K2, [(30945, 2), (30946, 0), (30947, 0)]),
                             ("libhdf5_hang.h5", os.path.join(SRC, "k2_vgg_full.h5"), hang),
                             # k2_inception.h5 with a bias's dataspace size and rank byte changed
                             # (fuzz seed 2026, mutant 4064): glibc aborts on a bad free in libhdf5.
                             ("libhdf5_abort.h5", os.path.join(SRC, "k2_inception.h5"), [(13288, 136), (13289, 19)])]:
        with open(copy(name, src), "r+b") as f:
            for offset, value in edits:
                f.seek(offset)
                f.write(bytes([value]))

    # Model configurations with impossible numbers, forged names, unsupported layers.
    rewrite_config("config_negative_filters.h5", lambda c: layer(c, "conv2d")["config"].__setitem__("filters", -8))
    rewrite_config("config_zero_kernel.h5", lambda c: layer(c, "conv2d")["config"].__setitem__("kernel_size", [0, 3]))
    rewrite_config("config_zero_strides.h5", lambda c: layer(c, "conv2d")["config"].__setitem__("strides", [0, 0]))
    rewrite_config("config_fractional_units.h5", lambda c: layer(c, "dense")["config"].__setitem__("units", 2.5))
    rewrite_config("config_huge_units.h5", lambda c: layer(c, "dense")["config"].__setitem__("units", 10 ** 30))
    rewrite_config("config_string_units.h5", lambda c: layer(c, "dense")["config"].__setitem__("units", "six"))

    def huge_input(c):
        c["config"]["layers"][0]["config"]["batch_input_shape"] = [None, 1 << 23, 1 << 23, 3]
    rewrite_config("config_huge_input.h5", huge_input)

    def duplicate(c):
        layer(c, "dense_1")["config"]["name"] = "dense"
        layer(c, "dense")["name"] = "dense"
    rewrite_config("config_duplicate_names.h5", duplicate)

    def forged(c):
        layer(c, "dense")["config"]["class_name"] = "x"
        for l in c["config"]["layers"]:
            if l["config"]["name"] == "dense_1":
                l["class_name"] = "Evil\nhint: all is well \x1b[31mred\x1b[0m"
    rewrite_config("config_forged_hint.h5", forged)

    def lambda_layer(c):
        l = layer(c, "re_lu")
        l["class_name"] = "Lambda"
        l["config"] = {"name": "re_lu", "trainable": True, "dtype": "float32",
                       "function": ["4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA+gA=", None, None],
                       "function_type": "lambda", "module": "__main__", "output_shape": None}
    rewrite_config("config_lambda.h5", lambda_layer)

    def not_json(path):
        with h5py.File(path, "r+") as f:
            f.attrs["model_config"] = '{"class_name": "Functional", "config": {"layers": [' * 2000
    not_json(copy("config_deeply_nested.h5"))

    # .keras archives that lie.
    deflate_bomb(out("bomb.keras"), "model.weights.h5", 1 << 28)
    rewrite_archive("path_traversal.keras", {"../../escaped.txt": b"should never be written", "/abs/escaped.txt": b"x"})
    rewrite_archive("no_weights.keras", {"model.weights.h5": None})
    with zipfile.ZipFile(K3) as z:
        cfg = json.loads(z.read("config.json"))
    for l in cfg["config"]["layers"]:
        if l["config"]["name"] == "dense":
            l["config"]["units"] = -6
    rewrite_archive("archive_negative_units.keras", {"config.json": json.dumps(cfg).encode()})

    # The CRC-32 of model.weights.h5 changed in both its headers: the bytes no longer match it.
    data = bytearray(open(K3, "rb").read())
    with zipfile.ZipFile(K3) as z:
        crc = z.getinfo("model.weights.h5").CRC
    old = crc.to_bytes(4, "little")
    assert data.count(old) == 2, "the CRC appears in the local header and the central directory"
    data = data.replace(old, (crc ^ 0x5A5A5A5A).to_bytes(4, "little"))
    with open(out("archive_bad_crc.keras"), "wb") as f:
        f.write(data)

    # Not hostile: tf_keras's k2_vgg_notop_weights.h5 copied by h5py into a file with the newest
    # HDF5 structures (libver="latest"), which places some kernels off float alignment. It must
    # read as the original.
    notop = os.path.join(SRC, "k2_vgg_notop_weights.h5")
    with h5py.File(notop, "r") as src, h5py.File(out("libver_latest.h5"), "w", libver="latest") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        for k in src:
            src.copy(src[k], dst, name=k)

    # Not hostile either: a weight of k2_zoo.h5 re-stored chunked and gzip-compressed (h5py), as
    # other writers store datasets. libhdf5 1.10 calls such a dataset "partly allocated"; it is whole.
    path = copy("chunked_gzip.h5")
    with h5py.File(path, "r+") as f:
        values = f[KERNEL][()]
        del f[KERNEL]
        f.create_dataset(KERNEL, data=values, chunks=(3, 3), compression="gzip", shuffle=True)

    names = sorted(os.listdir(OUT))
    print("\n".join(names))


if __name__ == "__main__":
    main()
