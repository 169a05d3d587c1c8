"""Writes the keras.applications architectures xfer recognises in weights-only files.

Keras itself builds every family and width variant (weights=None), without its top at an open
input size (None, None, 3) where Keras allows it, and with its top at the default size; for each
model this keeps its configuration (model.to_json()) and its signature: every layer that has
weights, in model order, with its name, its Keras 3 `.weights.h5` path (`snake_case(class)[_k]`,
one counter per class, as keras/src/saving/saving_lib.py names them) and its weight shapes.

A model with its top is stored as the layers it adds to the same family without its top (the
configurations are otherwise the same, and they are most of the bytes). Everything goes into one
zip (index.json + one deflated JSON per architecture), embedded base64 in
Sources/XferKit/Checkpoint/FamilyArchitectures.swift, so the xfer binary carries it and needs no
resource bundle beside it.

tf-keras names some families' layers otherwise (DenseNet `conv1/conv`, MobileNetV3 `Conv`), and
its `save_weights("x.h5")` files carry those names: `--legacy-names` builds the families with
tf-keras and records, for each stored architecture whose names differ (with the same shapes), its
tf-keras names as `legacy_names`.

Usage: python make_family_architectures.py [--out FILE] [--only "LABEL;LABEL..."]
       python make_family_architectures.py --legacy-names [--only "LABEL;LABEL..."]   (after the above)
"""
import argparse
import base64
import io
import json
import os
import re
import sys
import zipfile

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

A = keras.applications

# (label, constructor, kwargs, default input side, open size allowed without top)
FAMILIES = [("VGG16", "VGG16", {}, 224), ("VGG19", "VGG19", {}, 224)]
FAMILIES += [(n, n, {}, 224) for n in ["ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2"]]
FAMILIES += [(f"MobileNet (alpha {a})", "MobileNet", {"alpha": a}, 224) for a in [0.25, 0.5, 0.75, 1.0]]
FAMILIES += [(f"MobileNetV2 (alpha {a})", "MobileNetV2", {"alpha": a}, 224) for a in [0.35, 0.5, 0.75, 1.0, 1.3, 1.4]]
for size in ["Small", "Large"]:
    for a in [0.75, 1.0]:
        for m in [False, True]:
            FAMILIES.append((f"MobileNetV3{size} (alpha {a}{', minimalistic' if m else ''})", f"MobileNetV3{size}",
                             {"alpha": a, "minimalistic": m}, 224))
FAMILIES += [(f"EfficientNetB{i}", f"EfficientNetB{i}", {}, s) for i, s in enumerate([224, 240, 260, 300, 380, 456, 528, 600])]
FAMILIES += [(f"EfficientNetV2{v}", f"EfficientNetV2{v}", {}, s) for v, s in [("B0", 224), ("B1", 240), ("B2", 260), ("B3", 300), ("S", 384)]]
FAMILIES += [("InceptionV3", "InceptionV3", {}, 299), ("InceptionResNetV2", "InceptionResNetV2", {}, 299)]
FAMILIES += [(n, n, {}, 224) for n in ["DenseNet121", "DenseNet169", "DenseNet201"]]
FAMILIES += [("Xception", "Xception", {}, 299), ("NASNetMobile", "NASNetMobile", {}, 224)]
FAMILIES += [("ConvNeXtTiny", "ConvNeXtTiny", {}, 224), ("ConvNeXtSmall", "ConvNeXtSmall", {}, 224)]

# NASNet chooses its structure from the sizes it sees (nasnet.py, _adjust_block): built at an open
# size it would lose its reduction adjustments, so it is stored at its default size.
FIXED = {"NASNetMobile"}


def snake(name):
    """keras/src/utils/naming.py, to_snake_case."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def signature(model, name_prefix="", path_prefix=""):
    """A model nested inside (ConvNeXt's stem and downsampling blocks) lists its own layers, as
    `outer/inner` (names) and `outer_path/inner_path` (its own counters, as Keras 3 writes them)."""
    seen = {}
    out = []
    for layer in model.layers:
        s = snake(type(layer).__name__)
        k = seen.get(s, 0)
        seen[s] = k + 1
        path = s if k == 0 else f"{s}_{k}"
        if hasattr(layer, "layers"):
            out += signature(layer, f"{name_prefix}{layer.name}/", f"{path_prefix}{path}/")
        elif layer.weights:
            out.append([name_prefix + layer.name, path_prefix + path, [[int(d) for d in w.shape] for w in layer.weights]])
    return out


def without_tensor_shapes(obj):
    """A layer's configuration without the shapes its inbound keras tensors and its build_config
    record (Keras 3 writes them; they follow from the input size, which is all a top model changes
    there, and xfer computes them)."""
    if isinstance(obj, dict):
        return {k: without_tensor_shapes(v) for k, v in obj.items()
                if not (k == "shape" and obj.get("keras_history") is not None) and k != "build_config"}
    if isinstance(obj, list):
        return [without_tensor_shapes(v) for v in obj]
    return obj


def build(ctor, kwargs, top, side, fixed):
    if top:
        return getattr(A, ctor)(weights=None, include_top=True, input_shape=(side, side, 3), **kwargs)
    shape = (side, side, 3) if fixed else (None, None, 3)
    return getattr(A, ctor)(weights=None, include_top=False, input_shape=shape, **kwargs)


def read_catalog(path):
    text = open(path).read()
    blob = base64.b64decode(text[text.index('"""') + 3:text.rindex('"""')].replace("\n", ""))
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        index = json.loads(z.read("index.json"))
        files = {e["id"]: json.loads(z.read(e["config"])) for e in index}
    return index, files


def write_catalog(path, index, files, version):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr(zipfile.ZipInfo("index.json", (2020, 1, 1, 0, 0, 0)),
                   json.dumps(index, separators=(",", ":")), zipfile.ZIP_DEFLATED, 9)
        for name, obj in files.items():
            z.writestr(zipfile.ZipInfo(name + ".json", (2020, 1, 1, 0, 0, 0)),
                       json.dumps(obj, separators=(",", ":")), zipfile.ZIP_DEFLATED, 9)
    data = buf.getvalue()
    text = base64.b64encode(data).decode()
    lines = [text[i:i + 120] for i in range(0, len(text), 120)]
    with open(path, "w") as f:
        f.write("// Generated by checkpoints/make_family_architectures.py (" + version + "); do not edit.\n")
        f.write("// The keras.applications architectures (configurations and weight signatures) that a\n")
        f.write("// weights-only file is matched against (FamilyInference.swift): a zip, base64.\n\n")
        f.write('let familyArchitecturesZipBase64 = """\n')
        f.write("\n".join(lines))
        f.write('\n"""\n')
    print(f"{len(index)} architectures, zip {len(data)} bytes, {path} {os.path.getsize(path)} bytes")


def legacy_names(a):
    import tf_keras
    global A
    A = tf_keras.applications
    index, files = read_catalog(a.out)
    text = open(a.out).read()
    version = text[text.index("(") + 1:text.index(")")]
    if "tf-keras" not in version:
        version += ", tf-keras " + tf_keras.__version__
    for label, ctor, kwargs, side in FAMILIES:
        if a.only and label not in a.only.split(";"):
            continue
        for top in [False, True]:
            entry = next(e for e in index if e["label"] == label and e["top"] == top)
            tf_keras.backend.clear_session()
            sig = signature(build(ctor, kwargs, top, side, ctor in FIXED))
            names = [s[0] for s in sig]
            same_shapes = [s[2] for s in sig] == [s[2] for s in entry["signature"]]
            if names != [s[0] for s in entry["signature"]] and same_shapes:
                entry["legacy_names"] = names
            elif not same_shapes:
                print(f"{entry['id']}: tf-keras builds other weights; not recorded")
            print(f"{entry['id']}: tf-keras names {'differ' if 'legacy_names' in entry else 'are the same'}", flush=True)
    write_catalog(a.out, index, files, version)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Sources", "XferKit", "Checkpoint",
                                                 "FamilyArchitectures.swift"))
    p.add_argument("--only", help="labels separated by ; (rebuilds these, keeps the others)")
    p.add_argument("--legacy-names", action="store_true")
    a = p.parse_args()
    if a.legacy_names:
        return legacy_names(a)
    index = []
    files = {}
    if a.only and os.path.exists(a.out):
        # Rebuild only these: the others are kept from the catalog there.
        text = open(a.out).read()
        blob = base64.b64decode(text[text.index('"""') + 3:text.rindex('"""')].replace("\n", ""))
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            labels = set(a.only.split(";"))
            index = [e for e in json.loads(z.read("index.json")) if e["label"] not in labels]
            files = {e["id"]: json.loads(z.read(e["config"])) for e in index}
    for label, ctor, kwargs, side in FAMILIES:
        if a.only and label not in a.only.split(";"):
            continue
        base_id = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        notop_layers = None
        for top in [False, True]:
            keras.backend.clear_session()
            model = build(ctor, kwargs, top, side, ctor in FIXED)
            config = json.loads(model.to_json())
            sig = signature(model)
            ident = base_id + ("_top" if top else "_notop")
            entry = {"id": ident, "label": label, "family": ctor, "top": top, "default_input": [side, side, 3],
                     "open_size": not top and ctor not in FIXED, "signature": sig}
            if not top:
                notop_layers = config["config"]["layers"]
                files[ident] = config
            else:
                # The top model is the base's layers (its input at the top's fixed size) and the
                # top's own layers, when they are that: then only the difference is stored.
                layers = config["config"]["layers"]
                names = [l["config"]["name"] for l in notop_layers]
                same = len(layers) > len(notop_layers) and all(
                    without_tensor_shapes(x) == without_tensor_shapes(y)
                    for x, y in zip(layers[1:len(notop_layers)], notop_layers[1:]))
                if same and [l["config"]["name"] for l in layers[:len(names)]] == names:
                    entry["base"] = base_id + "_notop"
                    files[ident] = {"input": layers[0], "added": layers[len(notop_layers):],
                                    "output_layers": config["config"]["output_layers"]}
                else:
                    files[ident] = config
            entry["config"] = ident + ".json"
            index.append(entry)
            print(f"{ident}: {len(sig)} weighted layers, {len(json.dumps(files[ident], separators=(',', ':')))} bytes"
                  + (" (as the layers it adds)" if "base" in entry else ""), flush=True)
    order = {label: i for i, (label, _, _, _) in enumerate(FAMILIES)}
    index.sort(key=lambda e: (order[e["label"]], e["top"]))
    write_catalog(a.out, index, files, "Keras " + keras.__version__)


if __name__ == "__main__":
    sys.exit(main())
