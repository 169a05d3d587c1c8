#!/usr/bin/env python3
"""Writes checkpoints/images/: a tiny image folder in the layout of Keras's
`image_dataset_from_directory`, and what Keras itself makes of it.

    .venv-keras/bin/python checkpoints/make_image_fixtures.py [--out checkpoints/images]

Outputs, under --out:
  sample/                 the image folder: 4 classes (one holding no image), 19 JPEG and PNG
                          files of odd sizes and of every kind the decoders must handle
                          (4:2:0/4:2:2/4:4:4, progressive, greyscale and CMYK JPEG; RGB, grey,
                          grey+alpha, RGBA, palette, palette+tRNS, 1-bit, 16-bit, gAMA and
                          Adam7-interlaced PNG; a PNG named .jpeg), plus files Keras ignores.
  broken/                 files Keras lists but cannot decode (text named .jpg, truncated
                          JPEG and PNG); kept out of sample/ because Keras stops on them.
  sample_expected.h5      Keras's view of sample/ (datasets listed in ARRAYS below, plus
                          labels, file_paths, class_names).
  sample_expected.bin     the same float32 arrays, little-endian, one after another, and
  sample_expected.json    their index (name -> offset, shape) with labels, file order, class
                          names and how Keras reacts to each file in broken/.

Every expected number comes from Keras: tf_keras.utils.image_dataset_from_directory(...,
shuffle=False) for the pixels (decode_image + tf.image.resize bilinear), and
imagenet_utils.preprocess_input for the caffe/tf/torch modes. Reruns give identical files.
"""

import argparse
import io
import json
import os
import re
import shutil
import struct
import tempfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from tf_keras.applications import imagenet_utils, vgg16  # noqa: E402

IMAGE_SIZE = (32, 32)  # (height, width), as image_dataset_from_directory takes it
SECOND_SIZE = (24, 40)  # not square, so a height/width mix-up shows

# Name, and what it holds; all float32 (N, H, W, 3).
ARRAYS = [
    ("images", "image_dataset_from_directory(image_size=(32, 32)) pixels, before preprocessing"),
    ("caffe", "vgg16.preprocess_input(images): RGB->BGR, minus the ImageNet mean"),
    ("tf", "imagenet_utils.preprocess_input(images, mode='tf'): x / 127.5 - 1"),
    ("torch", "imagenet_utils.preprocess_input(images, mode='torch'): (x / 255 - mean) / std"),
    ("images_24x40", "image_dataset_from_directory(image_size=(24, 40)) pixels"),
]


# -- synthetic pictures ------------------------------------------------------------------

def picture(height, width, seed):
    """A deterministic RGB picture with gradients, edges and noise (uint8, (H, W, 3))."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * x / max(width - 1, 1)
    g = 127.5 + 127.5 * np.sin(y / 3.0 + seed)
    b = 255 * ((x + y) % 11) / 10
    img = np.stack([r, g, b], axis=-1)
    top, left = rng.integers(0, height // 2 + 1), rng.integers(0, width // 2 + 1)
    img[top:top + height // 3 + 1, left:left + width // 3 + 1] = rng.integers(0, 256, 3)
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save_pil(path, image, **options):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **options)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(path, pixels, color_type, interlace=False, gamma=None):
    """A 16-bit PNG written by hand (PIL cannot write 16-bit colour, nor Adam7 interlacing).
    pixels: uint16 (H, W, C); color_type 0 = grey, 2 = RGB, 6 = RGBA; gamma as PNG stores it
    (100000 = 1.0)."""
    height, width = pixels.shape[:2]
    passes = ([(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
              if interlace else [(0, 0, 1, 1)])
    raw = bytearray()
    for x0, y0, dx, dy in passes:  # Adam7: each pass is a sub-image of its own rows
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.astype(">u2").tobytes()  # filter type 0 (None)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, int(interlace)))
    if gamma is not None:
        data += png_chunk(b"gAMA", struct.pack(">I", gamma))
    data += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + png_chunk(b"IEND", b"")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_sample(root):
    """The image folder. Class names sort as Python sorts them: 'Zebra' < 'cat' < 'dog' < 'emu'."""
    def at(*parts):
        return os.path.join(root, *parts)

    # Zebra: images smaller than 32x32, so resizing enlarges them.
    save_pil(at("Zebra", "tiny_7x5.jpg"), Image.fromarray(picture(5, 7, 1)), quality=85)
    save_pil(at("Zebra", "upscale_13x19.png"), Image.fromarray(picture(19, 13, 2)))

    # cat: JPEGs of every kind, in a nested folder too, and a PNG whose name says JPEG.
    save_pil(at("cat", "rgb420_37x53.jpg"), Image.fromarray(picture(53, 37, 3)), quality=90, subsampling=2)
    save_pil(at("cat", "rgb444_q95.JPG"), Image.fromarray(picture(31, 50, 4)), quality=95, subsampling=0)
    save_pil(at("cat", "progressive_422.jpeg"), Image.fromarray(picture(29, 41, 5)),
             quality=80, subsampling=1, progressive=True)
    save_pil(at("cat", "gray.jpg"), Image.fromarray(picture(35, 23, 6)).convert("L"), quality=90)
    save_pil(at("cat", "cmyk_adobe.jpg"), Image.fromarray(picture(22, 30, 7)).convert("CMYK"), quality=90)
    save_pil(at("cat", "sub", "nested.jpg"), Image.fromarray(picture(40, 40, 8)), quality=75)
    save_pil(at("cat", "png_inside.jpeg"), Image.fromarray(picture(33, 27, 9)), format="PNG")

    # dog: PNGs of every colour type and bit depth.
    save_pil(at("dog", "rgb_53x37.png"), Image.fromarray(picture(37, 53, 10)))
    save_pil(at("dog", "gray.png"), Image.fromarray(picture(26, 34, 11)).convert("L"))
    gray_alpha = Image.fromarray(picture(30, 21, 12)).convert("LA")
    gray_alpha.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 21).astype(np.uint8), (30, 1))))
    save_pil(at("dog", "gray_alpha.png"), gray_alpha)
    rgba = np.concatenate([picture(45, 38, 13), picture(45, 38, 14)[..., :1]], axis=-1)
    rgba[:10, :10, 3] = 0  # fully transparent corner: its colour must survive (no compositing)
    save_pil(at("dog", "rgba.png"), Image.fromarray(rgba))
    palette = Image.fromarray(picture(28, 36, 15)).quantize(colors=16, dither=Image.Dither.NONE)
    save_pil(at("dog", "palette.png"), palette)
    save_pil(at("dog", "palette_trns.png"), palette, transparency=3)
    save_pil(at("dog", "bilevel.png"), Image.fromarray(picture(17, 29, 16)).convert("1"))
    gray16 = (picture(27, 33, 17)[..., 0].astype(np.uint16) * 257 + np.arange(33, dtype=np.uint16)).astype(np.uint16)
    write_png16(at("dog", "gray16.png"), gray16[..., None], color_type=0)
    wide = picture(23, 31, 18).astype(np.uint16) * 257 + 129  # low bytes not zero: strip vs round shows
    write_png16(at("dog", "rgb16_gamma1.png"), wide, color_type=2, gamma=100000)
    rgba16 = np.concatenate([picture(26, 19, 19), picture(26, 19, 20)[..., :1]], axis=-1).astype(np.uint16) * 257 + 77
    write_png16(at("dog", "rgba16_adam7.png"), rgba16, color_type=6, interlace=True)
    with open(at("dog", "notes.txt"), "w") as f:
        f.write("not listed: Keras only lists .bmp .gif .jpeg .jpg .png\n")

    # emu: a class folder without images -- still a class. Files Keras never looks at:
    os.makedirs(at("emu"), exist_ok=True)
    with open(at("emu", "README.txt"), "w") as f:
        f.write("a class without images\n")
    save_pil(at("stray.png"), Image.fromarray(picture(8, 8, 21)))  # not in a class folder
    save_pil(at(".hidden", "x.png"), Image.fromarray(picture(8, 8, 22)))  # hidden: not a class


def write_broken(folder, sample):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "not_an_image.jpg"), "w") as f:
        f.write("This is a text file with a .jpg name.\n")
    for name, source in [("truncated.jpg", "cat/rgb420_37x53.jpg"), ("truncated.png", "dog/rgb_53x37.png")]:
        with open(os.path.join(sample, source), "rb") as f:
            data = f.read()
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data[: len(data) * 2 // 3])


# -- what Keras makes of it --------------------------------------------------------------

def keras_dataset(folder, image_size):
    ds = tf_keras.utils.image_dataset_from_directory(
        folder, image_size=image_size, shuffle=False, batch_size=64)
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    paths = [os.path.relpath(p, folder).replace(os.sep, "/") for p in ds.file_paths]
    return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32), paths, ds.class_names


def keras_on_broken(sample, broken):
    """Keras stops on the first file it cannot decode; record its error for each broken file."""
    reactions = {}
    for name in sorted(os.listdir(broken)):
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "data")
            shutil.copytree(sample, folder)
            shutil.copy(os.path.join(broken, name), os.path.join(folder, "cat", name))
            try:
                keras_dataset(folder, IMAGE_SIZE)
                reactions[name] = "decoded without error"
            except Exception as error:  # noqa: BLE001 -- any failure is what we record
                # TensorFlow's first line: "<where in the input pipeline>::ParallelMapV2: <what>".
                message = re.sub(r"^.*ParallelMapV2: ", "", str(error).strip().splitlines()[0])
                reactions[name] = f"{type(error).__name__}: {message}"
    return reactions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "images"))
    out = parser.parse_args().out
    sample, broken = os.path.join(out, "sample"), os.path.join(out, "broken")
    for folder in (sample, broken):
        shutil.rmtree(folder, ignore_errors=True)
    write_sample(sample)
    write_broken(broken, sample)

    images, labels, paths, class_names = keras_dataset(sample, IMAGE_SIZE)
    second, second_labels, second_paths, _ = keras_dataset(sample, SECOND_SIZE)
    assert second_paths == paths and (second_labels == labels).all()
    arrays = {
        "images": images,
        "caffe": vgg16.preprocess_input(images.copy()),
        "tf": imagenet_utils.preprocess_input(images.copy(), mode="tf"),
        "torch": imagenet_utils.preprocess_input(images.copy(), mode="torch"),
        "images_24x40": second,
    }

    index = {
        "generator": "checkpoints/make_image_fixtures.py",
        "tensorflow_version": tf.__version__,
        "keras_version": tf_keras.__version__,
        "call": f"tf_keras.utils.image_dataset_from_directory('sample', image_size={IMAGE_SIZE}, "
                "shuffle=False, batch_size=64)",
        "class_names": class_names,
        "file_paths": paths,
        "labels": labels.tolist(),
        "bin": "sample_expected.bin (float32 little-endian, arrays one after another)",
        "arrays": {},
        "keras_on_broken_files": keras_on_broken(sample, broken),
    }
    offset = 0
    with open(os.path.join(out, "sample_expected.bin"), "wb") as f:
        for name, what in ARRAYS:
            data = np.ascontiguousarray(arrays[name], dtype="<f4")
            f.write(data.tobytes())
            index["arrays"][name] = {"offset_bytes": offset, "shape": list(data.shape), "what": what}
            offset += data.nbytes
    with open(os.path.join(out, "sample_expected.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")

    strings = h5py.string_dtype("utf-8")
    with h5py.File(os.path.join(out, "sample_expected.h5"), "w") as h5:
        for name, what in ARRAYS:
            h5.create_dataset(name, data=arrays[name], compression="gzip", shuffle=True, track_times=False)
            h5[name].attrs["what"] = what
        h5.create_dataset("labels", data=labels, track_times=False)
        h5.create_dataset("file_paths", data=paths, dtype=strings, track_times=False)
        h5.create_dataset("class_names", data=class_names, dtype=strings, track_times=False)
        h5.attrs["call"] = index["call"]
        h5.attrs["tensorflow_version"] = tf.__version__
        h5.attrs["keras_version"] = tf_keras.__version__

    print(f"{out}: {len(paths)} images in {len(class_names)} classes {class_names}; "
          f"Keras on broken files: {index['keras_on_broken_files']}")


if __name__ == "__main__":
    main()
