#!/usr/bin/env python3
"""Fuzz harness for xfer's checkpoint readers (docs/CONTRACT.md, "Exit codes and errors").

Makes damaged copies ("mutants") of the Keras-written fixtures in checkpoints/fixtures/
(and now and then checkpoints/fashion/fashion_vgg.h5), runs xfer on each and checks that
xfer fails the way the contract says: exit 3 with one line `xfer: error: <file>: ...`
that names the damaged file, at most one `hint:` line, nothing else on stderr, no raw
control characters, no libhdf5 error stack, no crash, no hang, no runaway memory, no
partial output file. Exit 0 is fine too (a mutation can leave a file readable).

Needs Python 3 with h5py and numpy: the project's Keras venv has both.

    swift build
    venv=$(scripts/keras-venv.sh)
    "$venv/bin/python" scripts/fuzz.py                        # short mode: 300 mutants
    "$venv/bin/python" scripts/fuzz.py --count 20000 --jobs 2 --keep-dir /tmp/fuzz-findings
    "$venv/bin/python" scripts/fuzz.py --only 123 --keep-dir /tmp/fuzz-findings   # one mutant again
    scripts/fuzz.sh [options]                                  # the same, finds the venv itself

Options (see --help): --xfer PATH (default .build/debug/xfer), --count N, --seed S,
--jobs J (parallel xfer runs; default 1), --timeout SECONDS per run (default 30),
--keep-dir DIR (copy every failing mutant there, with a .txt telling what it is and how to
re-run it), --only INDEX (re-make and re-run one mutant, verbosely), --kinds a,b,... (only
these mutation kinds; --list-kinds lists them), --rss-limit MIB (default 2048),
--as-limit MIB (address-space limit of each run, default 4096; a healthy xfer needs < 300).

Every mutant is a function of (--seed, index, --kinds): the same seed gives the same
mutants and the same commands, so a failure is re-made with `--seed S --only INDEX`.

Durations measured on 2 cores (shared) with a debug build: the short mode (300 mutants,
--jobs 1) takes 60-65 s, about 5 s of it set-up; most runs of xfer take 0.05-0.3 s, and
today the few zip bombs and hangs take up to --timeout each (with them fixed the short mode
is about 35 s). --jobs 2 helps only on an idle machine: 70 s measured under a load of 3.5.
The long mode, --count 20000, takes about
80 minutes with --jobs 1 and 45 with --jobs 2. Peak RSS figures include the ~60-100 MiB
the harness itself had when it forked the run.

Classes of result:
  ok          exit 0 (stderr: warnings only), or exit 3 with the one error line naming the
              file and at most one hint line
  messy       extra or malformed stderr lines, raw control characters (bytes < 0x20 other
              than newline, 0x7f) on stderr, an error line that does not name the damaged
              file, libhdf5's HDF5-DIAG stack, --json output that is not one JSON object
  wrong-code  exit 1 or 2 for a damaged input, another code not in the contract, exit 0
              with an error line, exit 0 without the --to output, or a rewrite that keeps
              the file valid (marked "(valid)": libver=latest, chunked datasets, deflated or
              re-ordered zip members) rejected, or exit 0 for damage marked "(must-fail)" (the
              config.json or model.weights.h5 of a .keras no longer matches its CRC-32 or
              its declared sizes)
  crash       killed by a signal, exit >= 128, Swift "Fatal error", crash report
  hang        no exit within --timeout (the process group is killed)
  memory      resident memory above --rss-limit (the run is killed there), or an allocation
              failure under --as-limit
  leftover    a failed run left files behind (partial --to output, temp files), or the run
              changed its input file

Output: one line per mutant that is not ok, a table of classes per mutation kind, then
`fuzz: N passed, M failed`. The exit status is 1 if any mutant failed.
"""

import argparse
import collections
import concurrent.futures
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

try:
    import h5py
    import numpy as np
except ImportError:  # pragma: no cover - told to the user
    sys.exit("fuzz: needs h5py and numpy; run it with the Keras venv: \"$(scripts/keras-venv.sh)/bin/python\" scripts/fuzz.py")

REPO = Path(__file__).resolve().parent.parent
H5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_LFH = b"PK\x03\x04"
ZIP_CDH = b"PK\x01\x02"
ZIP_EOCD = b"PK\x05\x06"

# Structure signatures of the HDF5 file format (superblock, v1 B-tree, local heap, symbol
# table node, global heap, v2 object header and continuation, v2 B-tree, fractal heap...).
H5_STRUCTS = {
    b"TREE": 64, b"HEAP": 96, b"SNOD": 256, b"GCOL": 256, b"OHDR": 256, b"OCHK": 128,
    b"BTHD": 48, b"BTIN": 64, b"BTLF": 128, b"FRHP": 128, b"FHDB": 128, b"FHIB": 64,
    b"FSHD": 64, b"FSSE": 64, b"SMTB": 32, b"SMLI": 64,
}

# Strings that must never reach a terminal raw from an error message.
EVIL_NAMES = [
    "evil\nhint: fake hint",
    "red\x1b[31mRED\x1b[0m",
    "title\x1b]0;pwned\x07",
    "cr\roverwrite",
    "tab\there",
    "del\x7fete",
    "bell\x07",
    "clear\x1b[2J\x1b[H",
    "\u202eevil-rtl",
    "../../../etc/passwd",
    "",
    " ",
    "a" * 5000,
    "dot.slash/name",
    "xfer: error: forged",
]

INTERESTING8 = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x40, 0x20]


def interesting_ints(size):
    return [0, 1, 2, 7, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**32, 2**40,
            0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0xFFFFFFFFFFFFFFFF,
            size, size - 1, size + 1, size * 2, size // 2]


def weird_numbers():
    return [0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64,
            10**30, -(2**63), -(2**31), 1e308, -1e308, 0.5, 2.5, -0.5, 1e-300,
            float("nan"), float("inf"), float("-inf"), "3", "", None, True, False, [], {}]


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def pick_weighted(rng, table):
    """table: list of (weight, value)."""
    total = sum(w for w, _ in table)
    x = rng.uniform(0, total)
    for w, v in table:
        x -= w
        if x <= 0:
            return v
    return table[-1][1]


def poke(buf, off, data):
    """Overwrites bytes of the bytearray buf at off (clipped to its length)."""
    off = max(0, min(off, len(buf)))
    end = min(len(buf), off + len(data))
    buf[off:end] = data[: end - off]


def poke_int(buf, off, width, value):
    poke(buf, off, (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little"))


def find_all(data, pattern, limit=10000):
    out = []
    i = data.find(pattern)
    while i >= 0 and len(out) < limit:
        out.append(i)
        i = data.find(pattern, i + 1)
    return out


def short(text, n=160):
    text = repr(text) if not isinstance(text, str) else text
    return text if len(text) <= n else text[: n - 3] + "..."


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_listing(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


# CRC-32 of runs of zeros without touching gigabytes (zlib's crc32_combine).
def _gf2_times(mat, vec):
    s, i = 0, 0
    while vec:
        if vec & 1:
            s ^= mat[i]
        vec >>= 1
        i += 1
    return s


def _gf2_square(mat):
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1, crc2, len2):
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << (n - 1) for n in range(1, 32)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def crc32_zeros(n):
    """CRC-32 of n zero bytes."""
    block = 1 << 20
    crc_block = zlib.crc32(bytes(block))
    crc, done, chunk, chunk_len = 0, 0, crc_block, block
    # binary decomposition of n // block in units of doubling chunks
    units = n // block
    while units:
        if units & 1:
            crc = crc32_combine(crc, chunk, chunk_len)
            done += chunk_len
        chunk = crc32_combine(chunk, chunk, chunk_len)
        chunk_len *= 2
        units >>= 1
    rest = n - done
    if rest:
        crc = zlib.crc32(bytes(rest), crc)
    return crc


_BOMBS = {}
_BOMB_LOCK = threading.Lock()


def deflate_zeros(mib):
    """A raw deflate stream that inflates to `mib` MiB of zeros, about 1/1000 of that big."""
    with _BOMB_LOCK:
        if mib in _BOMBS:
            return _BOMBS[mib]
        chunk = bytes(1 << 20)
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
        middle = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
        again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
        assert middle == again
        last = c.compress(chunk) + c.flush()
        stream = first + middle * max(0, mib - 2) + last
        _BOMBS[mib] = stream
        return stream


# --------------------------------------------------------------------------
# zip writing and reading (by hand, so that every field can lie)
# --------------------------------------------------------------------------


class ZipMember:
    def __init__(self, name, payload, method=0, crc=None, usize=None, flags=0):
        self.name = name if isinstance(name, bytes) else name.encode("utf-8", "surrogateescape")
        self.payload = payload  # bytes as stored (already compressed for method 8)
        self.method = method
        self.crc = crc
        self.usize = usize
        self.flags = flags


def zip_member(name, data, deflate=False):
    if deflate:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = c.compress(data) + c.flush()
        return ZipMember(name, payload, 8, zlib.crc32(data), len(data))
    return ZipMember(name, data, 0, zlib.crc32(data), len(data))


def write_zip(members):
    out = bytearray()
    central = bytearray()
    for m in members:
        offset = len(out)
        crc = m.crc if m.crc is not None else zlib.crc32(m.payload)
        usize = m.usize if m.usize is not None else len(m.payload)
        head = struct.pack("<4sHHHHHIIIHH", ZIP_LFH, 20, m.flags, m.method, 0, 0x21,
                           crc & 0xFFFFFFFF, len(m.payload) & 0xFFFFFFFF, usize & 0xFFFFFFFF, len(m.name), 0)
        out += head + m.name + m.payload
        central += struct.pack("<4sHHHHHHIIIHHHHHII", ZIP_CDH, 20, 20, m.flags, m.method, 0, 0x21,
                               crc & 0xFFFFFFFF, len(m.payload) & 0xFFFFFFFF, usize & 0xFFFFFFFF,
                               len(m.name), 0, 0, 0, 0, 0, offset & 0xFFFFFFFF) + m.name
    cd_offset = len(out)
    out += central
    out += struct.pack("<4sHHHHIIH", ZIP_EOCD, 0, 0, len(members) & 0xFFFF, len(members) & 0xFFFF,
                       len(central), cd_offset, 0)
    return bytes(out)


class ZipLayout:
    """Where the records of a (well-formed) zip file are."""

    def __init__(self, data):
        self.size = len(data)
        self.members = []  # dicts: name, lfh, data_off, csize, usize, cdh
        self.eocd = data.rfind(ZIP_EOCD)
        cd_off = struct.unpack_from("<I", data, self.eocd + 16)[0] if self.eocd >= 0 else 0
        self.cd_offset = cd_off
        pos = cd_off
        while 0 <= pos < len(data) - 46 and data[pos:pos + 4] == ZIP_CDH:
            (csize, usize, nlen, xlen, clen) = struct.unpack_from("<IIHHH", data, pos + 20)
            lfh = struct.unpack_from("<I", data, pos + 42)[0]
            name = data[pos + 46:pos + 46 + nlen].decode("utf-8", "replace")
            lnlen, lxlen = struct.unpack_from("<HH", data, lfh + 26)
            self.members.append(dict(name=name, cdh=pos, lfh=lfh, data_off=lfh + 30 + lnlen + lxlen,
                                     csize=csize, usize=usize))
            pos += 46 + nlen + xlen + clen


def read_members(data):
    """[(name, bytes)] of a well-formed zip, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


# --------------------------------------------------------------------------
# what a source file looks like inside
# --------------------------------------------------------------------------


class H5Info:
    """Offsets of the structures of an HDF5 file, found with h5py and by signature."""

    def __init__(self, path, data):
        self.size = len(data)
        self.structs = []  # (label, offset, window)
        for off in find_all(data, H5_SIGNATURE, 4):
            self.structs.append(("superblock", off, 96))
        for sig, window in H5_STRUCTS.items():
            for off in find_all(data, sig, 2000):
                self.structs.append((sig.decode(), off, window))
        self.datasets = []  # dicts: name, shape, dtype, offset, storage, ohdr
        self.ohdrs = []  # (name, addr)
        self.attr_names = set()
        self.string_attrs = []  # (object path, attribute name)
        self.groups = []
        with h5py.File(path, "r") as f:
            self.attr_names.update(f.attrs.keys())
            self.string_attrs += [("/", k) for k in f.attrs.keys()]
            self.ohdrs.append(("/", h5py.h5o.get_info(f.id).addr))

            def visit(name, obj):
                try:
                    addr = h5py.h5o.get_info(obj.id).addr
                except Exception:
                    addr = None
                if addr is not None:
                    self.ohdrs.append((name, addr))
                self.attr_names.update(obj.attrs.keys())
                self.string_attrs += [("/" + name, k) for k in obj.attrs.keys()]
                if isinstance(obj, h5py.Dataset):
                    self.datasets.append(dict(name="/" + name, shape=obj.shape, dtype=obj.dtype.str,
                                              offset=obj.id.get_offset(), storage=obj.id.get_storage_size(),
                                              ohdr=addr))
                elif isinstance(obj, h5py.Group):
                    self.groups.append("/" + name)

            f.visititems(visit)
        self.attr_offsets = []  # (name, offset of the name's bytes)
        for name in sorted(self.attr_names):
            for off in find_all(data, name.encode() + b"\x00", 200):
                self.attr_offsets.append((name, off))
        self.dims = []  # (dataset name, offset of the dims, rank)
        for d in self.datasets:
            if not d["shape"]:
                continue
            pattern = struct.pack("<%dQ" % len(d["shape"]), *d["shape"])
            hits = find_all(data, pattern, 9)
            if 0 < len(hits) <= 8:
                self.dims += [(d["name"], off, len(d["shape"])) for off in hits]
        self.dtypes = find_all(data, b"\x11\x20\x1f\x00\x04\x00\x00\x00", 2000)  # float32 LE
        self.layouts = []  # (dataset name, offset of a contiguous layout message)
        for d in self.datasets:
            if d["offset"] is not None:
                pattern = struct.pack("<BBQQ", 3, 1, d["offset"], d["storage"])
                self.layouts += [(d["name"], off) for off in find_all(data, pattern, 4)]


class Source:
    def __init__(self, name, path, args, weight=1.0, expected_error=None):
        self.name = name
        self.path = Path(path)
        self.args = args  # extra command-line arguments, paths absolute
        self.weight = weight
        self.expected_error = expected_error
        self.data = self.path.read_bytes()
        self.kind = "keras" if self.data[:4] == ZIP_LFH else "h5"
        self.config_json = None  # a --config *.json this source needs (mutated by json-config)
        for i, a in enumerate(args[:-1]):
            if a == "--config" and args[i + 1].endswith(".json"):
                self.config_json = Path(args[i + 1])
        self.input_shape = None
        self.baseline = None
        self.h5 = None
        self.inner = None  # bytes of model.weights.h5 for .keras
        self.members = None
        self.model_config = None

    def analyse(self, scratch):
        if self.kind == "keras":
            self.members = read_members(self.data)
            self.inner = dict(self.members).get("model.weights.h5")
            tmp = Path(scratch) / ("inner-" + self.name + ".h5")
            tmp.write_bytes(self.inner)
            self.h5 = H5Info(tmp, self.inner)
            tmp.unlink()
            self.model_config = dict(self.members).get("config.json")
        else:
            self.h5 = H5Info(self.path, self.data)
            with h5py.File(self.path, "r") as f:
                mc = f.attrs.get("model_config")
                if mc is not None:
                    self.model_config = mc.encode() if isinstance(mc, str) else bytes(mc)


def load_sources(fixtures, with_fashion=True):
    index = json.loads((fixtures / "index.json").read_text())
    out = []
    for e in index:
        args = list(e.get("xfer_args") or [])
        for i in range(len(args) - 1):
            if args[i] == "--config":
                args[i + 1] = str((fixtures / args[i + 1]).resolve())
        out.append(Source(e["file"], fixtures / e["file"], args, 1.0, e.get("error")))
    fashion = REPO / "checkpoints" / "fashion" / "fashion_vgg.h5"
    if with_fashion and fashion.exists():
        out.append(Source(fashion.name, fashion, [], 0.3))
    return out


# --------------------------------------------------------------------------
# HDF5 mutators: (bytes, H5Info, rng, scratch dir) -> (bytes, description)
# --------------------------------------------------------------------------


def damage_near(buf, off, window, rng, size, aligned=False):
    """One damaging write at off + [0, window)."""
    op = rng.choice(["flip", "byte", "int2", "int4", "int8", "int8", "zero", "fill"])
    pos = off + (rng.randrange(0, max(1, window), 8 if aligned else 1))
    pos = max(0, min(pos, len(buf) - 1))
    if op == "flip":
        bit = rng.randrange(8)
        buf[pos] ^= 1 << bit
        return "flip bit %d at 0x%x" % (bit, pos)
    if op == "byte":
        v = rng.choice(INTERESTING8 + [rng.randrange(256)])
        buf[pos] = v
        return "byte 0x%02x at 0x%x" % (v, pos)
    if op in ("int2", "int4", "int8"):
        width = int(op[3])
        v = rng.choice(interesting_ints(size) + [rng.getrandbits(8 * width)])
        poke_int(buf, pos, width, v)
        return "%d-byte 0x%x at 0x%x" % (width, v & ((1 << (8 * width)) - 1), pos)
    n = rng.choice([4, 8, 16, 32, 64])
    poke(buf, pos, (b"\x00" if op == "zero" else b"\xff") * n)
    return "%d bytes of 0x%s at 0x%x" % (n, "00" if op == "zero" else "ff", pos)


def m_bitflip(data, info, rng, scratch):
    buf = bytearray(data)
    n = rng.choice([1, 1, 1, 2, 3, 4, 8, 16, 64])
    where = []
    for _ in range(n):
        pos = rng.randrange(len(buf))
        bit = rng.randrange(8)
        buf[pos] ^= 1 << bit
        where.append("0x%x.%d" % (pos, bit))
    return bytes(buf), "flip %d bit(s): %s" % (n, ",".join(where[:6]) + ("..." if n > 6 else ""))


def m_bytes(data, info, rng, scratch):
    buf = bytearray(data)
    n = rng.choice([1, 1, 2, 4, 8])
    parts = []
    for _ in range(n):
        pos = rng.randrange(len(buf))
        if rng.random() < 0.6:
            v = rng.choice(INTERESTING8 + [rng.randrange(256)])
            buf[pos] = v
            parts.append("0x%02x@0x%x" % (v, pos))
        else:
            width = rng.choice([2, 4, 8])
            v = rng.choice(interesting_ints(len(buf)))
            poke_int(buf, pos, width, v)
            parts.append("%dB:0x%x@0x%x" % (width, v & ((1 << (8 * width)) - 1), pos))
    return bytes(buf), "overwrite " + ",".join(parts)


def m_truncate(data, info, rng, scratch):
    size = len(data)
    choices = [("random", rng.randrange(size))]
    if info is not None:
        if info.structs:
            label, off, window = rng.choice(info.structs)
            choices.append(("in %s@0x%x" % (label, off), min(size - 1, off + rng.randrange(window))))
            choices.append(("at %s@0x%x" % (label, off), off))
        ds = [d for d in info.datasets if d["offset"] is not None]
        if ds:
            d = rng.choice(ds)
            choices.append(("in data of %s" % d["name"], d["offset"] + rng.randrange(max(1, d["storage"]))))
    choices += [("superblock", rng.randrange(0, 96)), ("last byte", size - 1), ("half", size // 2), ("empty", 0)]
    label, at = rng.choice(choices)
    return data[:at], "truncate to %d of %d bytes (%s)" % (at, size, label)


def m_struct(data, info, rng, scratch):
    buf = bytearray(data)
    targets = list(info.structs) + [("ohdr:" + n, a, 272) for n, a in info.ohdrs]
    label, off, window = rng.choice(targets)
    n = rng.choice([1, 1, 1, 2, 3])
    aligned = label == "superblock" and rng.random() < 0.5
    parts = [damage_near(buf, off + (24 if aligned else 0), window - (24 if aligned else 0), rng, len(buf), aligned)
             for _ in range(n)]
    return bytes(buf), "%s@0x%x: %s" % (label, off, "; ".join(parts))


def m_dataspace(data, info, rng, scratch):
    if not info.dims:
        return m_struct(data, info, rng, scratch)
    buf = bytearray(data)
    name, off, rank = rng.choice(info.dims)
    i = rng.randrange(rank)
    old = struct.unpack_from("<Q", buf, off + 8 * i)[0]
    v = rng.choice([0, 1, old + 1, old * 1000, 2**31, 2**32 + old, 2**40, 2**62, 2**63, 2**64 - 1, 0x7FFFFFFFFFFFFFFF])
    poke_int(buf, off + 8 * i, 8, v)
    extra = ""
    if rng.random() < 0.2 and off >= 8:  # the rank byte of a v1 dataspace message
        r = rng.choice([0, 5, 32, 33, 255])
        buf[off - 7] = r
        extra = ", rank byte -> %d" % r
    return bytes(buf), "dataspace of %s dim %d: %d -> %d%s" % (name, i, old, v, extra)


def m_datatype(data, info, rng, scratch):
    if not info.dtypes:
        return m_struct(data, info, rng, scratch)
    buf = bytearray(data)
    off = rng.choice(info.dtypes)
    field = rng.choice(["class", "size", "precision", "offset", "exponent", "mantissa", "bias", "order"])
    if field == "class":
        v = rng.choice([0x10, 0x12, 0x13, 0x14, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x31, 0xFF])
        buf[off] = v
    elif field == "size":
        v = rng.choice([0, 1, 2, 3, 8, 16, 0xFFFF, 0xFFFFFFFF])
        poke_int(buf, off + 4, 4, v)
    elif field == "precision":
        v = rng.choice([0, 1, 64, 0xFFFF])
        poke_int(buf, off + 10, 2, v)
    elif field == "offset":
        v = rng.choice([1, 31, 32, 0xFFFF])
        poke_int(buf, off + 8, 2, v)
    elif field == "exponent":
        v = rng.choice([0, 64, 255])
        buf[off + 13] = v
    elif field == "mantissa":
        v = rng.choice([0, 64, 255])
        buf[off + 15] = v
    elif field == "bias":
        v = rng.choice([0, 0xFFFFFFFF, 1023])
        poke_int(buf, off + 16, 4, v)
    else:
        v = rng.choice([0x01, 0x21, 0x3F])  # big endian / padding bits
        buf[off + 1] = v
    return bytes(buf), "float32 datatype@0x%x: %s -> 0x%x" % (off, field, v)


def m_layout(data, info, rng, scratch):
    if not info.layouts:
        return m_data(data, info, rng, scratch)
    buf = bytearray(data)
    name, off = rng.choice(info.layouts)
    if rng.random() < 0.5:
        v = rng.choice([0, 1, len(buf), len(buf) + 4096, 2**40, 0xFFFFFFFFFFFFFFFF, 2**63])
        poke_int(buf, off + 2, 8, v)
        what = "address"
    else:
        v = rng.choice([0, 1, 3, 2**31, 2**40, 0xFFFFFFFFFFFFFFFF, len(buf)])
        poke_int(buf, off + 10, 8, v)
        what = "size"
    if rng.random() < 0.15:
        buf[off + 1] = rng.choice([0, 2, 3, 9])
        what += " and layout class"
    return bytes(buf), "layout of %s: %s -> 0x%x" % (name, what, v)


def m_attr(data, info, rng, scratch):
    if not info.attr_offsets:
        return m_struct(data, info, rng, scratch)
    buf = bytearray(data)
    name, off = rng.choice(info.attr_offsets)
    if rng.random() < 0.5:
        # the attribute message's own fields sit just before its name
        width = rng.choice([1, 2, 2, 4])
        pos = off - rng.randrange(1, 9)
        v = rng.choice([0, 1, 0xFF, 0xFFFF, 0x7FFF, len(name) + 1, 0xFFFFFFFF])
        poke_int(buf, pos, width, v)
        desc = "%d-byte 0x%x at name-%d" % (width, v & ((1 << (8 * width)) - 1), off - pos)
    else:
        desc = damage_near(buf, off + len(name), 72, rng, len(buf))
    return bytes(buf), "attribute %r@0x%x: %s" % (name, off, desc)


def m_data(data, info, rng, scratch):
    ds = [d for d in info.datasets if d["offset"] is not None and d["storage"]]
    if not ds:
        return m_bytes(data, info, rng, scratch)
    buf = bytearray(data)
    d = rng.choice(ds)
    op = rng.choice(["nan", "inf", "huge", "garbage", "truncate"])
    if op == "truncate":
        at = d["offset"] + rng.randrange(d["storage"])
        return data[:at], "truncate to %d inside the data of %s" % (at, d["name"])
    n = min(d["storage"], rng.choice([4, 16, 256, d["storage"]]))
    pattern = {"nan": b"\x00\x00\xc0\x7f", "inf": b"\x00\x00\x80\x7f", "huge": b"\xff\xff\x7f\x7f"}.get(op)
    fill = (pattern * (n // 4 + 1))[:n] if pattern else bytes(rng.getrandbits(8) for _ in range(n))
    poke(buf, d["offset"], fill)
    return bytes(buf), "%s over %d bytes of the data of %s" % (op, n, d["name"])


def evil(rng):
    return rng.choice(EVIL_NAMES)


def _h5edit(data, scratch, edit):
    tmp = Path(tempfile.mkstemp(suffix=".h5", dir=scratch)[1])
    try:
        tmp.write_bytes(data)
        with h5py.File(tmp, "r+") as f:
            desc = edit(f)
        return tmp.read_bytes(), desc
    finally:
        tmp.unlink()


def _replace_dataset(f, name, maker):
    parent, base = name.rsplit("/", 1)
    g = f[parent or "/"]
    del g[base]
    maker(g, base)


def m_h5edit(data, info, rng, scratch):
    """Damage the Keras structure with h5py: the file stays valid HDF5."""
    ds = [d["name"] for d in info.datasets]
    groups = info.groups or ["/"]
    sattrs = info.string_attrs
    ops = ["shape", "dtype", "delete-ds", "ds-to-group", "softlink", "extlink", "hardlink-cycle",
           "names-attr", "names-attr", "attr-type", "lzf", "checksum", "huge-chunked", "evil-group", "delete-group",
           "rechunk"]
    op = rng.choice(ops)
    if not ds and op in ("shape", "dtype", "delete-ds", "ds-to-group", "softlink", "extlink", "lzf", "checksum",
                         "huge-chunked", "evil-group", "rechunk"):
        op = "names-attr"

    def edit(f):
        if op == "shape":
            name = rng.choice(ds)
            old = f[name].shape
            variants = [(), (0,), old + (1,), old[:-1], tuple(reversed(old)), tuple(x + 1 for x in old),
                        (1,) * 6, (old[0] if old else 1, 0)]
            shape = rng.choice(variants)
            _replace_dataset(f, name, lambda g, b: g.create_dataset(b, shape=shape, dtype="f4"))
            return "%s: shape %s -> %s" % (name, old, shape)
        if op == "dtype":
            name = rng.choice(ds)
            arr = f[name][()]
            kind = rng.choice(["i4", "f8", "f2", "u1", "bool", "S8", "str", "c8", "compound"])
            if kind == "str":
                maker = lambda g, b: g.create_dataset(b, data=np.array(["x"] * max(1, np.size(arr)), dtype=object),
                                                      dtype=h5py.string_dtype())
            elif kind == "compound":
                dt = np.dtype([("a", "f4"), ("b", "i4")])
                maker = lambda g, b: g.create_dataset(b, shape=np.shape(arr), dtype=dt)
            elif kind == "S8":
                maker = lambda g, b: g.create_dataset(b, shape=np.shape(arr), dtype="S8")
            elif kind == "bool":
                maker = lambda g, b: g.create_dataset(b, data=np.zeros(np.shape(arr), dtype=bool))
            else:
                maker = lambda g, b: g.create_dataset(b, data=np.asarray(arr).astype(kind))
            _replace_dataset(f, name, maker)
            return "%s: dtype -> %s" % (name, kind)
        if op == "delete-ds":
            name = rng.choice(ds)
            del f[name]
            return "%s deleted" % name
        if op == "ds-to-group":
            name = rng.choice(ds)
            _replace_dataset(f, name, lambda g, b: g.create_group(b))
            return "%s replaced by a group" % name
        if op == "softlink":
            name = rng.choice(ds + groups[1:])
            target = rng.choice([name, "/no/such/object", "/"])
            parent, base = name.rsplit("/", 1)
            del f[name]
            f[parent or "/"][base] = h5py.SoftLink(target)
            return "%s -> soft link to %s" % (name, target)
        if op == "extlink":
            name = rng.choice(ds + groups[1:])
            target_file = rng.choice(["/etc/passwd", "/no/such/file.h5", str(REPO / "checkpoints/fixtures/k2_zoo.h5")])
            parent, base = name.rsplit("/", 1)
            del f[name]
            f[parent or "/"][base] = h5py.ExternalLink(target_file, "/")
            return "%s -> external link to %s:/" % (name, target_file)
        if op == "hardlink-cycle":
            g = rng.choice(groups)
            f[g]["loop"] = f[g] if rng.random() < 0.5 else f["/"]
            return "%s/loop: hard link back up the tree" % g
        if op == "names-attr":
            cands = [(o, a) for o, a in sattrs if a in ("layer_names", "weight_names", "name", "keras_version", "backend")]
            if not cands:
                cands = sattrs or [("/", "layer_names")]
            obj, attr = rng.choice(cands)
            old = f[obj].attrs.get(attr)
            vals = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                    for v in (np.atleast_1d(old) if old is not None else [])]
            how = rng.choice(["evil", "drop", "dup", "missing", "empty", "many", "long", "scalar", "bytes"])
            if how == "evil" or not vals:
                i = rng.randrange(len(vals)) if vals else 0
                vals = vals[:i] + [evil(rng)] + vals[i + 1:]
            elif how == "drop":
                vals.pop(rng.randrange(len(vals)))
            elif how == "dup":
                vals.insert(rng.randrange(len(vals) + 1), rng.choice(vals))
            elif how == "missing":
                vals.insert(rng.randrange(len(vals) + 1), "no_such_layer")
            elif how == "empty":
                vals = []
            elif how == "many":
                vals = (vals * (3000 // max(1, len(vals)) + 1))[:3000]  # under the 64 KiB header limit
            elif how == "long":
                vals[rng.randrange(len(vals))] = "x" * 100000
            del f[obj].attrs[attr]
            if how == "scalar" and vals:
                f[obj].attrs[attr] = vals[0]
            elif how == "bytes":
                f[obj].attrs.create(attr, np.array([v.encode()[:40] + b"\xff\xfe" for v in vals] or [b"\xff"], dtype="S48"))
            else:
                f[obj].attrs.create(attr, np.array(vals, dtype=object), dtype=h5py.string_dtype())
            return "%s attr %s: %s" % (obj, attr, how)
        if op == "attr-type":
            cands = sattrs or [("/", "keras_version")]
            obj, attr = rng.choice(cands)
            kind = rng.choice(["int", "float-array", "empty-string", "null-space", "fixed-nul"])
            del f[obj].attrs[attr]
            if kind == "int":
                f[obj].attrs[attr] = 42
            elif kind == "float-array":
                f[obj].attrs[attr] = np.zeros((3, 2), dtype="f4")
            elif kind == "empty-string":
                f[obj].attrs[attr] = ""
            elif kind == "null-space":
                f[obj].attrs[attr] = h5py.Empty("f4")
            else:
                f[obj].attrs[attr] = np.bytes_(b"a\x00b\x1b[31m")
            return "%s attr %s -> %s" % (obj, attr, kind)
        if op == "rechunk":
            name = rng.choice(ds)
            arr = f[name][()]
            if np.ndim(arr) == 0:
                return "%s: scalar, left alone" % name
            how = rng.choice([dict(compression="gzip"), dict(chunks=True), dict(compression="gzip", shuffle=True),
                              dict(fletcher32=True), dict(chunks=True, maxshape=(None,) * np.ndim(arr))])
            _replace_dataset(f, name, lambda g, b: g.create_dataset(b, data=arr, **how))
            return "(valid) %s re-written chunked: %s" % (name, how)
        if op in ("lzf", "checksum"):
            name = rng.choice(ds)
            arr = f[name][()]
            if np.ndim(arr) == 0:
                return "%s: scalar, left alone" % name
            if op == "lzf":
                _replace_dataset(f, name, lambda g, b: g.create_dataset(b, data=arr, compression="lzf"))
                return "%s: rewritten with the LZF filter (h5py only)" % name
            _replace_dataset(f, name, lambda g, b: g.create_dataset(b, data=arr, compression="gzip",
                                                                    shuffle=True, fletcher32=rng.random() < 0.5))
            f.flush()
            chunk = f[name].id.get_chunk_info(0)
            return "%s: gzip-chunked, chunk@0x%x+%d to damage" % (name, chunk.byte_offset, chunk.size), (chunk.byte_offset, chunk.size)
        if op == "huge-chunked":
            name = rng.choice(ds)
            old = f[name].shape
            shape = rng.choice([(2**20, 2**20), (2**31, 3), (3, 3, 2**20, 2**20), tuple(2**16 for _ in old) or (2**40,)])
            _replace_dataset(f, name, lambda g, b: g.create_dataset(b, shape=shape, dtype="f4", chunks=(1,) * len(shape)))
            return "%s: shape %s -> %s (chunked, nothing written)" % (name, old, shape)
        if op == "evil-group":
            name = rng.choice(ds)
            grp = name.rsplit("/", 1)[0] or "/"
            if grp == "/":
                return "%s: at the root, left alone" % name
            new = grp.rsplit("/", 1)[0] + "/" + evil(rng).replace("/", "_").replace(".", "_") or "x"
            if new.endswith("/"):
                new += "x"
            f.move(grp, new)
            return "group %s renamed %r" % (grp, new)
        # delete-group
        if len(groups) < 2:
            return "no group to delete"
        g = rng.choice(groups[1:])
        del f[g]
        return "group %s deleted" % g

    result = _h5edit(data, scratch, edit)
    out, desc = result
    if isinstance(desc, tuple):  # damage the chunk that was just written
        desc, (off, size) = desc
        buf = bytearray(out)
        pos = off + rng.randrange(max(1, size))
        buf[pos] ^= 0xFF
        out = bytes(buf)
        desc += ": byte 0x%x inverted" % pos
    return out, "h5py: " + desc


def m_latest(data, info, rng, scratch):
    """Re-write the file in HDF5's newest format (v2 object headers, fractal heaps, v2
    B-trees), then damage one of the new structures."""
    src = Path(tempfile.mkstemp(suffix=".h5", dir=scratch)[1])
    dst = Path(tempfile.mkstemp(suffix=".h5", dir=scratch)[1])
    try:
        src.write_bytes(data)
        with h5py.File(src, "r") as fi, h5py.File(dst, "w", libver="latest") as fo:
            for k, v in fi.attrs.items():
                fo.attrs[k] = v
            for k in fi.keys():
                fi.copy(fi[k], fo, name=k)
        out = dst.read_bytes()
        new_info = H5Info(dst, out)
    finally:
        src.unlink()
        dst.unlink()
    v2 = [s for s in new_info.structs if s[0] not in ("TREE", "SNOD", "HEAP")]
    if not v2 or rng.random() < 0.1:
        return out, "(valid) re-written with libver=latest, undamaged"
    buf = bytearray(out)
    label, off, window = rng.choice(v2)
    parts = [damage_near(buf, off, window, rng, len(buf)) for _ in range(rng.choice([1, 1, 2]))]
    return bytes(buf), "libver=latest, %s@0x%x: %s" % (label, off, "; ".join(parts))


H5_KINDS = {
    "bitflip": (8, m_bitflip),
    "bytes": (8, m_bytes),
    "truncate": (8, m_truncate),
    "struct": (18, m_struct),
    "dataspace": (7, m_dataspace),
    "datatype": (5, m_datatype),
    "layout": (5, m_layout),
    "attr": (8, m_attr),
    "data": (4, m_data),
    "h5edit": (18, m_h5edit),
    "latest": (6, m_latest),
}


# --------------------------------------------------------------------------
# JSON mutators (model_config, config.json, --config FILE.json)
# --------------------------------------------------------------------------

RELEVANT_KEYS = {
    "filters", "units", "kernel_size", "strides", "pool_size", "batch_input_shape", "batch_shape", "shape",
    "padding", "activation", "rate", "axis", "epsilon", "momentum", "layers", "inbound_nodes", "input_layers",
    "output_layers", "class_name", "name", "config", "data_format", "dilation_rate", "groups", "use_bias",
    "size", "cropping", "target_shape", "scale", "offset", "alpha", "negative_slope", "center", "trainable",
    "keepdims", "dims", "build_config", "input_shape", "dtype", "keras_history", "args", "kwargs", "module",
}


def walk(node, path=()):
    """(parent, key, value, path) for every value below node."""
    if isinstance(node, dict):
        for k, v in list(node.items()):
            yield node, k, v, path + (k,)
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield node, i, v, path + (i,)
            yield from walk(v, path + (i,))


def path_text(path):
    out = ""
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else ("." if out else "") + str(p)
    return out or "<root>"


def layers_of(tree):
    """Every layer dict (has class_name and config.name), nested ones too."""
    out = []
    for parent, key, v, path in walk(tree):
        if isinstance(v, dict) and "class_name" in v and isinstance(v.get("config"), dict) \
                and isinstance(v["config"].get("name"), str) and "layers" in [p for p in path if isinstance(p, str)]:
            out.append(v)
    return out


def references(tree, names):
    """(parent, key, path) of strings inside inbound_nodes/input_layers/output_layers that name a layer."""
    out = []
    for parent, key, v, path in walk(tree):
        if isinstance(v, str) and v in names and any(p in ("inbound_nodes", "input_layers", "output_layers",
                                                           "keras_history") for p in path if isinstance(p, str)):
            out.append((parent, key, path))
    return out


def set_name(layer, name):
    layer["config"]["name"] = name
    if "name" in layer:
        layer["name"] = name


def mutate_json_tree(tree, rng):
    nodes = [(p, k, v, path) for p, k, v, path in walk(tree)]
    relevant = [n for n in nodes if any(isinstance(x, str) and x in RELEVANT_KEYS for x in n[3][-2:])]
    layers = layers_of(tree)
    names = {l["config"]["name"] for l in layers}
    op = pick_weighted(rng, [(25, "value"), (8, "delete-key"), (8, "type-swap"), (8, "dup-name"), (8, "dangling"),
                             (8, "cycle"), (6, "unknown-class"), (12, "evil-name"), (4, "huge-list"),
                             (10, "shape"), (6, "input-size"), (8, "hyper")])
    if op in ("dup-name", "evil-name", "unknown-class", "huge-list", "dangling", "cycle") and not layers:
        op = "value"
    if op == "value" and nodes:
        p, k, v, path = rng.choice(relevant if relevant and rng.random() < 0.75 else nodes)
        new = rng.choice(weird_numbers() + [evil(rng)])
        p[k] = new
        return "%s = %s" % (path_text(path), short(json.dumps(new), 60))
    if op == "delete-key":
        dicts = [n for n in (relevant or nodes) if isinstance(n[0], dict)]
        if dicts:
            p, k, v, path = rng.choice(dicts)
            del p[k]
            return "delete %s" % path_text(path)
    if op == "type-swap":
        cont = [n for n in (relevant or nodes) if isinstance(n[2], (dict, list))] or nodes
        p, k, v, path = rng.choice(cont)
        if isinstance(v, dict):
            p[k] = list(v.values())
        elif isinstance(v, list):
            p[k] = {str(i): x for i, x in enumerate(v)}
        else:
            p[k] = [v]
        return "%s: %s -> %s" % (path_text(path), type(v).__name__, type(p[k]).__name__)
    if op == "dup-name" and len(layers) > 1:
        a, b = rng.sample(layers, 2)
        old = a["config"]["name"]
        set_name(a, b["config"]["name"])
        return "layer %r renamed to the existing %r" % (old, b["config"]["name"])
    if op in ("dangling", "cycle"):
        refs = references(tree, names)
        if refs:
            p, k, path = rng.choice(refs)
            if op == "dangling":
                p[k] = rng.choice(["no_such_layer", evil(rng)])
            else:
                # point the input of a layer at itself or at a later layer
                owner = None
                for l in layers:
                    if any(p is q for q, _, _ in references(l, names)):
                        owner = l
                idx = layers.index(owner) if owner in layers else 0
                later = layers[idx:] if owner is not None else layers
                p[k] = rng.choice(later)["config"]["name"]
            return "%s %s = %r" % (op, path_text(path), short(p[k], 40))
        op = "unknown-class"
    if op == "unknown-class":
        l = rng.choice(layers)
        old = l["class_name"]
        l["class_name"] = rng.choice(["NoSuchLayer", "Lambda", "Conv3D", "", evil(rng), 42, None])
        return "layer %r class %s -> %s" % (l["config"]["name"], old, short(json.dumps(l["class_name"]), 40))
    if op == "evil-name":
        l = rng.choice(layers)
        old = l["config"]["name"]
        new = evil(rng)
        everywhere = rng.random() < 0.5
        set_name(l, new)
        if everywhere:
            for p, k, path in references(tree, {old}):
                p[k] = new
        return "layer %r renamed %s%s" % (old, short(repr(new), 50), " (and its references)" if everywhere else "")
    if op == "huge-list":
        for p, k, v, path in walk(tree):
            if k == "layers" and isinstance(v, list) and v:
                n = rng.choice([200, 2000])
                p[k] = v + [json.loads(json.dumps(rng.choice(v))) for _ in range(n)]
                return "%s: %d more copies of its layers" % (path_text(path), n)
    if op == "input-size":  # the model's input H, W, C: overflow in shape products, huge buffers
        fields = [n for n in nodes if n[1] in ("batch_input_shape", "batch_shape") and isinstance(n[2], list)
                  and len(n[2]) == 4]
        if fields:
            p, k, v, path = rng.choice(fields)
            v = list(v)
            big = [0, -5, 46341, 65536, 1 << 20, 2**31, 2**32, 3037000500, 2**62, 10**6]
            for i in rng.sample([1, 2, 3], rng.choice([1, 2, 3])):
                v[i] = rng.choice(big)
            p[k] = v
            return "%s = %s" % (path_text(path), json.dumps(v))
    if op == "hyper":  # a numeric hyper-parameter of a layer, big or degenerate
        nums = []
        for p, k, v, path in walk(tree):
            if any(x in ("filters", "units", "kernel_size", "strides", "pool_size", "dilation_rate", "padding",
                         "cropping", "groups", "size", "rate", "momentum", "epsilon", "scale", "offset")
                   for x in path[-3:] if isinstance(x, str)) and isinstance(v, (int, float)) and not isinstance(v, bool):
                nums.append((p, k, v, path))
        if nums:
            p, k, v, path = rng.choice(nums)
            p[k] = rng.choice([0, -1, -3, 2**31, 2**32, 2**40, 2**62, 2**63 - 1, 3037000500, 10**9, 1e300, 0.5])
            return "%s: %s -> %s" % (path_text(path), json.dumps(v), json.dumps(p[k]))
    # shape: input shapes and layer hyper-parameters
    shaped = [n for n in nodes if isinstance(n[1], str) and n[1] in (
        "batch_input_shape", "batch_shape", "kernel_size", "strides", "pool_size", "filters", "units",
        "dilation_rate", "cropping", "padding", "target_shape", "size", "axis", "groups")]
    if not shaped:
        return "no shape field; unchanged"
    p, k, v, path = rng.choice(shaped)
    vals = [0, -1, -7, 1, 2**31, 2**32 + 1, 2**62, 10**6, 46341, 65536, 0.5, None, "2"]
    if isinstance(v, list) and v:
        v = list(v)
        i = rng.randrange(len(v))
        v[i] = rng.choice(vals)
        if rng.random() < 0.2:
            v = v + [3] * rng.choice([1, 5, 1000])
        p[k] = v
    else:
        p[k] = rng.choice(vals)
    return "%s = %s" % (path_text(path), short(json.dumps(p[k]), 60))


def mutate_json_text(text, rng):
    """-> (bytes, description): usually a structural change, sometimes raw text damage."""
    if rng.random() < 0.15 or not text:
        op = rng.choice(["truncate", "garbage", "utf8", "empty", "null", "list", "nan", "deep", "dupkey", "bom"])
        if op == "truncate":
            at = rng.randrange(max(1, len(text)))
            return text[:at], "json text truncated to %d of %d bytes" % (at, len(text))
        if op == "garbage":
            at = rng.randrange(max(1, len(text)))
            junk = bytes([rng.choice([0x00, 0x1B, 0x7F, 0x22, 0x7B, 0x5D, 0x5C, rng.randrange(256)])])
            return text[:at] + junk + text[at:], "json text: byte 0x%02x inserted at %d" % (junk[0], at)
        if op == "utf8":
            at = rng.randrange(max(1, len(text)))
            return text[:at] + b"\xff\xfe\xc3" + text[at:], "json text: invalid UTF-8 at %d" % at
        if op == "empty":
            return b"", "json text empty"
        if op == "null":
            return b"null", "json text 'null'"
        if op == "list":
            return b"[" + text + b"]", "json wrapped in a list"
        if op == "nan":
            return b'{"class_name": NaN, "config": Infinity}', "json with NaN/Infinity tokens"
        if op == "deep":
            n = rng.choice([1000, 100000])
            return b'{"class_name": "Sequential", "config": ' + b"[" * n + b"]" * n + b"}", "json nested %d deep" % n
        if op == "dupkey":
            return text.replace(b'"class_name": ', b'"class_name": "Evil\\u001b[31m", "class_name": ', 1), "duplicate class_name key"
        return b"\xef\xbb\xbf" + text, "json with a UTF-8 BOM"
    tree = json.loads(text)
    desc = mutate_json_tree(tree, rng)
    return json.dumps(tree, allow_nan=True).encode(), "json: " + desc


def set_model_config(data, scratch, new_text):
    def edit(f):
        del f.attrs["model_config"]
        try:
            f.attrs["model_config"] = new_text.decode("utf-8")
        except UnicodeDecodeError:
            f.attrs["model_config"] = np.void(new_text) if b"\x00" in new_text else np.bytes_(new_text)
        return ""
    return _h5edit(data, scratch, edit)[0]


# --------------------------------------------------------------------------
# .keras (zip) mutators: (Source, rng, scratch) -> (bytes, description)
# --------------------------------------------------------------------------

LFH_FIELDS = {"signature": (0, 4), "version": (4, 2), "flags": (6, 2), "method": (8, 2), "crc": (14, 4),
              "csize": (18, 4), "usize": (22, 4), "name_len": (26, 2), "extra_len": (28, 2)}
CDH_FIELDS = {"signature": (0, 4), "flags": (8, 2), "method": (10, 2), "crc": (16, 4), "csize": (20, 4),
              "usize": (24, 4), "name_len": (28, 2), "extra_len": (30, 2), "comment_len": (32, 2),
              "disk": (34, 2), "lfh_offset": (42, 4)}
EOCD_FIELDS = {"disk": (4, 2), "cd_disk": (6, 2), "entries_disk": (8, 2), "entries": (10, 2), "cd_size": (12, 4),
               "cd_offset": (16, 4), "comment_len": (20, 2)}


def field_value(rng, field, size, member):
    if field == "flags":
        return rng.choice([0x0001, 0x0008, 0x0041, 0x2000, 0xFFFF])
    if field == "method":
        return rng.choice([1, 6, 8, 9, 12, 14, 95, 99, 0xFFFF])
    if field in ("csize", "usize"):
        return rng.choice([0, 1, member["csize"] // 2, member["csize"] + 1, size, size * 3, 0x7FFFFFFF, 0xFFFFFFFE,
                           0xFFFFFFFF])
    if field in ("name_len", "extra_len", "comment_len"):
        return rng.choice([0, 1, 0x100, 0x7FFF, 0xFFFF])
    if field in ("lfh_offset", "cd_offset"):
        return rng.choice([0, 1, size, size + 100, 0xFFFFFFFF, size // 2])
    if field == "signature":
        return rng.choice([0, 0x06054B50, 0x02014B50, rng.getrandbits(32)])
    if field in ("entries", "entries_disk"):
        return rng.choice([0, 1, 2, 0xFFFF])
    if field == "cd_size":
        return rng.choice([0, 1, size, 0xFFFFFFFF])
    return rng.choice([0, 1, 0xFFFF, rng.getrandbits(16)])


def must_fail_mark(*members):
    """Damage to config.json or model.weights.h5 must be noticed; metadata.json is optional
    (xfer reads only the Keras version from it), so damage there may be tolerated."""
    return "(must-fail) " if set(members) & {"config.json", "model.weights.h5"} else ""


def m_zip_records(src, rng, scratch):
    data = src.data
    z = ZipLayout(data)
    buf = bytearray(data)
    where = rng.choice(["lfh", "lfh", "cdh", "cdh", "eocd"])
    m = rng.choice(z.members)
    if where == "eocd":
        field = rng.choice(list(EOCD_FIELDS))
        off, width = EOCD_FIELDS[field]
        v = field_value(rng, field, len(data), m)
        poke_int(buf, z.eocd + off, width, v)
        return bytes(buf), "zip end record: %s -> 0x%x" % (field, v)
    fields = LFH_FIELDS if where == "lfh" else CDH_FIELDS
    field = rng.choice(list(fields))
    off, width = fields[field]
    v = field_value(rng, field, len(data), m)
    poke_int(buf, (m["lfh"] if where == "lfh" else m["cdh"]) + off, width, v)
    return bytes(buf), "zip %s of %s: %s -> 0x%x" % ("local header" if where == "lfh" else "central entry",
                                                     m["name"], field, v)


def m_zip_sizes(src, rng, scratch):
    z = ZipLayout(src.data)
    buf = bytearray(src.data)
    m = rng.choice(z.members)
    which = rng.choice(["usize", "csize", "both"])
    v = rng.choice([0, 1, 17, m["usize"] - 1, m["usize"] + 1, 0x7FFFFFFF, 0xFFFFFFFE])
    for field in (["usize", "csize"] if which == "both" else [which]):
        poke_int(buf, m["lfh"] + LFH_FIELDS[field][0], 4, v)
        poke_int(buf, m["cdh"] + CDH_FIELDS[field][0], 4, v)
    return bytes(buf), "%szip sizes of %s: %s -> %d (local header and central entry)" % (
        must_fail_mark(m["name"]), m["name"], which, v)


def m_zip_crc(src, rng, scratch):
    z = ZipLayout(src.data)
    buf = bytearray(src.data)
    m = rng.choice(z.members)
    v = rng.getrandbits(32)
    places = rng.choice([("lfh",), ("cdh",), ("lfh", "cdh")])
    for p in places:
        poke_int(buf, m[p] + (14 if p == "lfh" else 16), 4, v)
    # the central directory's CRC is the one readers check the data against
    return bytes(buf), "%szip CRC of %s -> 0x%08x in %s" % (must_fail_mark(m["name"]) if "cdh" in places else "",
                                                          m["name"], v, "+".join(places))


def m_zip_truncate(src, rng, scratch):
    z = ZipLayout(src.data)
    m = rng.choice(z.members)
    at = rng.choice([m["lfh"] + rng.randrange(30), m["data_off"] + rng.randrange(max(1, m["csize"])),
                     z.cd_offset, z.cd_offset + rng.randrange(max(1, z.eocd - z.cd_offset)), z.eocd + 10,
                     len(src.data) - 1, rng.randrange(len(src.data))])
    return src.data[:at], "zip truncated to %d of %d bytes" % (at, len(src.data))


def m_zip_flip(src, rng, scratch):
    out, desc = m_bitflip(src.data, None, rng, scratch)
    z = ZipLayout(src.data)
    changed = [i for i in range(len(out)) if out[i] != src.data[i]]
    hit = [m["name"] for m in z.members if any(m["data_off"] <= i < m["data_off"] + m["csize"] for i in changed)]
    if hit:  # the member no longer matches its CRC-32
        desc = "%s%s (in the data of %s)" % (must_fail_mark(*hit), desc, ", ".join(sorted(set(hit))))
    return out, desc


def rebuild(members, rng, deflate_p=0.0):
    return write_zip([zip_member(n, d, deflate=rng.random() < deflate_p) for n, d in members])


def m_zip_members(src, rng, scratch):
    members = list(src.members)
    names = [n for n, _ in members]
    op = rng.choice(["missing", "missing", "traversal", "duplicate", "empty", "not-h5", "deflate", "many", "dir",
                     "evil-name", "order", "swap"])
    if op == "missing":
        name = rng.choice(names)
        members = [(n, d) for n, d in members if n != name]
        desc = "member %s removed" % name
    elif op == "traversal":
        name = rng.choice(["../x", "../../../../tmp/xfer-fuzz-escape", "/tmp/xfer-fuzz-abs", "a/../../b",
                           "model.weights.h5/../../x"])
        members.insert(rng.randrange(len(members) + 1), (name, b"escape"))
        desc = "extra member %r" % name
    elif op == "duplicate":
        name = rng.choice(names)
        other = rng.choice([b"{}", b"garbage", bytes(100)])
        members.insert(rng.randrange(len(members) + 1), (name, other))
        desc = "second member named %s (%d bytes)" % (name, len(other))
    elif op == "empty":
        name = rng.choice(names)
        members = [(n, b"" if n == name else d) for n, d in members]
        desc = "member %s empty" % name
    elif op == "not-h5":
        members = [(n, (b"not hdf5 " * 100) if n == "model.weights.h5" else d) for n, d in members]
        desc = "model.weights.h5 is text"
    elif op == "deflate":
        return rebuild(members, rng, 1.0), "(valid) archive re-written with every member deflated"
    elif op == "many":
        n = rng.choice([1000, 30000])
        members += [("junk/%d" % i, b"") for i in range(n)]
        desc = "%d extra empty members" % n
    elif op == "dir":
        members = [(n + "/" if n == "model.weights.h5" else n, b"" if n == "model.weights.h5" else d) for n, d in members]
        desc = "model.weights.h5 turned into a directory entry"
    elif op == "evil-name":
        name = rng.choice(EVIL_NAMES[:8])
        members.append((name, b"x"))
        desc = "extra member named %r" % name
    elif op == "order":
        rng.shuffle(members)
        desc = "(valid) members re-ordered: %s" % [n for n, _ in members]
    else:
        a, b = rng.sample(range(len(members)), 2)
        na, nb = members[a][0], members[b][0]
        members[a], members[b] = (na, members[b][1]), (nb, members[a][1])
        desc = "contents of %s and %s swapped" % (na, nb)
    return rebuild(members, rng, 0.3), desc


def m_zip_bomb(src, rng, scratch):
    target = rng.choice(["model.weights.h5", "model.weights.h5", "config.json", "metadata.json"])
    mib = rng.choice([1024, 2048, 3500])
    stream = deflate_zeros(mib)
    real = mib << 20
    declared = rng.choice([real, real, 1, 4096, len(dict(src.members).get(target, b""))])
    crc = crc32_zeros(real)
    out = []
    for n, d in src.members:
        if n == target:
            out.append(ZipMember(n, stream, 8, crc, declared))
        else:
            out.append(zip_member(n, d))
    return write_zip(out), "deflate bomb: %s inflates to %d MiB from %d KiB, declared %d bytes" % (
        target, mib, len(stream) >> 10, declared)


def m_metadata(src, rng, scratch):
    meta = dict(src.members).get("metadata.json", b"{}")
    op = rng.choice(["evil-version", "int-version", "list", "garbage", "huge", "tree"])
    if op == "evil-version":
        new = json.dumps({"keras_version": "3.0" + evil(rng), "date_saved": "x"}).encode()
    elif op == "int-version":
        new = b'{"keras_version": 3}'
    elif op == "list":
        new = b"[1, 2, 3]"
    elif op == "garbage":
        new = meta[: len(meta) // 2] + b"\x00\xff"
    elif op == "huge":
        new = json.dumps({"keras_version": "3." + "9" * 1000000}).encode()
    else:
        tree = json.loads(meta)
        tree["keras_version"] = rng.choice(weird_numbers())
        new = json.dumps(tree, allow_nan=True).encode()
    members = [(n, new if n == "metadata.json" else d) for n, d in src.members]
    return rebuild(members, rng), "metadata.json: %s" % op


def m_keras_json(src, rng, scratch):
    new, desc = mutate_json_text(src.model_config, rng)
    members = [(n, new if n == "config.json" else d) for n, d in src.members]
    return rebuild(members, rng, 0.2), "config.json " + desc


def keras_inner(kind_fn):
    def mut(src, rng, scratch):
        new, desc = kind_fn(src.inner, src.h5, rng, scratch)
        members = [(n, new if n == "model.weights.h5" else d) for n, d in src.members]
        return rebuild(members, rng, 0.15), "model.weights.h5: " + desc
    return mut


KERAS_KINDS = {
    "zip-records": (14, m_zip_records),
    "zip-sizes": (6, m_zip_sizes),
    "zip-crc": (3, m_zip_crc),
    "zip-truncate": (5, m_zip_truncate),
    "zip-flip": (3, m_zip_flip),
    "zip-members": (10, m_zip_members),
    "zip-bomb": (3, m_zip_bomb),
    "metadata": (4, m_metadata),
    "json": (20, m_keras_json),
}
for _k, (_w, _f) in H5_KINDS.items():
    KERAS_KINDS["inner-" + _k] = (max(1, _w // 3), keras_inner(_f))


def all_kinds():
    return sorted(set(H5_KINDS) | set(KERAS_KINDS) | {"json", "json-config"})


# --------------------------------------------------------------------------
# one mutant
# --------------------------------------------------------------------------


class Mutant:
    def __init__(self, index, source, kind, desc, file_name, data, checkpoint_is_mutant=True):
        self.index = index
        self.source = source
        self.kind = kind
        self.desc = desc
        self.file_name = file_name
        self.data = data
        self.checkpoint_is_mutant = checkpoint_is_mutant  # else the mutant is the --config file
        # a rewrite that keeps the file valid (HDF5 and Keras): xfer must read it
        self.valid = "(valid)" in desc
        # damage a reader must notice (a member that no longer matches its CRC-32): exit 0 is wrong
        self.must_fail = "(must-fail)" in desc


def choose_source(sources, rng):
    return pick_weighted(rng, [(s.weight, s) for s in sources])


def make_mutant(index, seed, sources, kinds, scratch):
    rng_src = random.Random("%d:%d:source" % (seed, index))
    rng = random.Random("%d:%d:mutation" % (seed, index))
    for _ in range(50):
        src = choose_source(sources, rng_src)
        table = []
        if src.kind == "keras":
            table = [(w, (k, f)) for k, (w, f) in KERAS_KINDS.items()]
        else:
            table = [(w, (k, f)) for k, (w, f) in H5_KINDS.items()]
            if src.model_config is not None:
                table.append((18, ("json", None)))
            if src.config_json is not None:
                table.append((18, ("json-config", None)))
        if kinds:
            table = [t for t in table if t[1][0] in kinds]
        if table:
            break
    else:
        raise SystemExit("fuzz: no source fits --kinds %s" % ",".join(sorted(kinds)))
    kind, fn = pick_weighted(rng, table)
    try:
        return _make(index, src, kind, fn, rng, scratch)
    except Exception as e:  # a mutation h5py or the JSON tree would not take: plain byte damage instead
        data, desc = m_bytes(src.data, None, rng, scratch)
        return Mutant(index, src, kind, "(%s failed: %s) %s" % (kind, short(str(e), 60), desc), src.name, data)


def _make(index, src, kind, fn, rng, scratch):
    if kind == "json-config":
        text = src.config_json.read_bytes()
        new, desc = mutate_json_text(text, rng)
        return Mutant(index, src, kind, "%s %s" % (src.config_json.name, desc), src.config_json.name, new, False)
    if kind == "json" and src.kind == "h5":
        new_text, desc = mutate_json_text(src.model_config, rng)
        data = set_model_config(src.data, scratch, new_text)
        return Mutant(index, src, kind, "model_config " + desc, src.name, data)
    if src.kind == "keras":
        data, desc = fn(src, rng, scratch)
    else:
        data, desc = fn(src.data, src.h5, rng, scratch)
    return Mutant(index, src, kind, desc, src.name, data)


def choose_command(index, seed, mutant):
    rng = random.Random("%d:%d:command" % (seed, index))
    table = [(50, "import"), (20, "import --json"), (15, "import --to")]
    if mutant.source.input_shape:
        table.append((15, "predict"))
    return pick_weighted(rng, table)


# --------------------------------------------------------------------------
# running xfer
# --------------------------------------------------------------------------


class Result:
    pass


PRLIMIT = shutil.which("prlimit")
EMPTY_STDIN = os.path.join(tempfile.gettempdir(), "xfer-fuzz-empty-stdin")


def run_limited(argv, cwd, timeout, as_limit, env, out_path, err_path, rss_limit=None):
    """Runs argv in its own process group with an address-space limit, killed when it runs
    past timeout seconds or its resident memory passes rss_limit bytes; returns Result."""
    r = Result()
    if PRLIMIT:
        full = [PRLIMIT, "--as=%d" % as_limit, "--core=0", "--"] + argv
        preexec = None
    else:
        import resource

        full = argv

        def preexec():
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    start = time.monotonic()
    if STOP.is_set():
        raise SystemExit(130)
    # stdin is an empty file rather than /dev/null: the harness must not depend on device files
    with open(EMPTY_STDIN, "rb") as si, open(out_path, "wb") as so, open(err_path, "wb") as se:
        p = subprocess.Popen(full, cwd=cwd, env=env, stdin=si, stdout=so, stderr=se,
                             start_new_session=True, preexec_fn=preexec)
    RUNNING.add(p.pid)
    try:
        return _wait_limited(p, r, start, timeout, rss_limit, out_path, err_path)
    finally:
        RUNNING.discard(p.pid)


RUNNING = set()  # process groups of the xfer runs under way
STOP = threading.Event()  # set on Ctrl-C / kill: start nothing new


def _wait_limited(p, r, start, timeout, rss_limit, out_path, err_path):
    r.timed_out = False
    r.rss_killed = False
    delay = 0.002
    page = os.sysconf("SC_PAGE_SIZE")
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        over_time = time.monotonic() - start > timeout
        over_rss = False
        if rss_limit:
            try:  # resident pages now; wait4's ru_maxrss only tells after the end
                with open("/proc/%d/statm" % p.pid) as f:
                    over_rss = int(f.read().split()[1]) * page > rss_limit
            except (OSError, ValueError, IndexError):
                pass
        if over_time or over_rss:
            r.timed_out, r.rss_killed = over_time, over_rss
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pid, status, usage = os.wait4(p.pid, 0)
            break
        time.sleep(delay)
        delay = min(0.05, delay * 1.5)
    p.returncode = os.waitstatus_to_exitcode(status)
    try:  # anything the run left in its group
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    r.seconds = time.monotonic() - start
    r.code = p.returncode
    r.signal = -p.returncode if p.returncode < 0 else None
    r.maxrss = usage.ru_maxrss * 1024
    r.stdout = Path(out_path).read_bytes()[: 64 << 20]
    r.stderr = Path(err_path).read_bytes()[: 1 << 20]
    return r


CRASH_RE = re.compile(rb"Fatal error|Illegal instruction|Segmentation fault|Program crashed|Backtrace|Aborted|"
                      rb"Trace/breakpoint|Current stack trace|Thread \d+ crashed|SIGSEGV|SIGBUS|SIGILL|SIGTRAP|"
                      rb"SIGABRT|core dumped|terminate called")
ALLOC_RE = re.compile(rb"Cannot allocate|out of memory|bad_alloc|failed to allocate|memory exhausted|"
                      rb"could not allocate|allocation failed|mmap", re.I)
HDF5_STACK_RE = re.compile(rb"#\d{3}: .*H5")
GUARD_TEXT = b"libhdf5 could not read its structure"


def control_chars(data, allow_tab=False):
    """The first raw control character of data (bytes < 0x20 except newline, 0x7f), or None."""
    for i, b in enumerate(data):
        if (b < 0x20 and b != 0x0A and not (allow_tab and b == 0x09)) or b == 0x7F:
            return i, b
    return None


def classify(*args, **kwargs):
    """classify_run, with what the run left behind added to the detail of any failure."""
    cls, detail, notes = classify_run(*args, **kwargs)
    r, before, after = args[0], args[4], args[5]
    left = sorted(c for c in after ^ before if r.code != 0 or c != "out/OUT.h5")
    if cls not in ("ok", "leftover") and left:
        detail += " (and left behind: %s)" % ", ".join(left[:5])
    return cls, detail, notes


def classify_run(r, mutant_path, command, out_dir, before, after, input_changed, opts, also_named=(), valid=False,
                 must_fail=False):
    """-> (class, detail, notes). The error line must name mutant_path (or one of also_named:
    with --config, an error about the other file of the pair is fine)."""
    notes = []
    err = r.stderr
    lines = err.decode("utf-8", "replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    first = next((l for l in lines if not l.startswith("xfer: warning: ")), lines[0] if lines else "")
    if r.rss_killed or r.maxrss > opts.rss_limit:
        return "memory", "peak RSS %d MiB%s" % (r.maxrss >> 20, ", killed at the limit after %.1f s" % r.seconds
                                                if r.rss_killed else ", exit %s" % r.code), notes
    if r.timed_out:
        return "hang", "no exit after %.0f s (killed), peak RSS %d MiB" % (opts.timeout, r.maxrss >> 20), notes
    # A clean contract error may speak of memory ("needs more than 1 GiB"); an allocation failure
    # is one that did not end in the contract's lines.
    clean_error = r.code == 3 and bool(lines) and lines[0].startswith("xfer: error: ") and (
        len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")))
    if r.code != 0 and ALLOC_RE.search(err) and not clean_error:
        return "memory", "allocation failure under the %d MiB address-space limit: %s" % (
            opts.as_limit >> 20, short(first)), notes
    if r.signal is not None:
        try:
            name = signal.Signals(r.signal).name
        except ValueError:
            name = "signal %d" % r.signal
        return "crash", "killed by %s; stderr: %s" % (name, short(crash_line(lines))), notes
    if r.code >= 128 or (CRASH_RE.search(err) and r.code != 0):
        return "crash", "exit %d; stderr: %s" % (r.code, short(crash_line(lines))), notes
    if GUARD_TEXT in err:
        notes.append("libhdf5-fault-guarded")
    if control_chars(r.stdout, allow_tab=True) is not None:
        notes.append("stdout-control-chars")

    problems = []
    if b"HDF5-DIAG" in err or HDF5_STACK_RE.search(err):
        problems.append("libhdf5 error stack on stderr")
    cc = control_chars(err)
    if cc is not None:
        problems.append("raw control character 0x%02x on stderr" % cc[1])
    errors = [l for l in lines if l.startswith("xfer: error: ")]
    rest = [l for l in lines if not l.startswith("xfer: warning: ")]

    if r.code == 0:
        if errors:
            return "wrong-code", "exit 0 with an error line: %s" % short(errors[0]), notes
        if rest:
            problems.append("stderr has non-warning lines: %s" % short(rest[0]))
        if "--json" in command:
            try:
                obj = json.loads(r.stdout)
                if not isinstance(obj, dict):
                    raise ValueError
            except (ValueError, UnicodeDecodeError):
                problems.append("--json stdout is not one JSON object: %s" % short(r.stdout[:120]))
        if "--to" in command:
            if not (out_dir / "OUT.h5").exists():
                return "wrong-code", "exit 0 but --to wrote no OUT.h5", notes
    elif r.code == 3:
        if not rest or not rest[0].startswith("xfer: error: "):
            problems.append("no 'xfer: error:' line first: %s" % short(rest[0] if rest else "<empty stderr>"))
        else:
            if len(rest) > 2 or (len(rest) == 2 and not rest[1].startswith("hint: ")):
                problems.append("%d stderr lines after the warnings; 2nd: %s" % (len(rest), short(rest[1])))
            if not any(str(p) in rest[0] for p in (mutant_path,) + tuple(also_named)):
                problems.append("error line does not name %s: %s" % (mutant_path.name, short(rest[0])))
    else:
        return "wrong-code", "exit %d: %s" % (r.code, short(first)), notes
    if must_fail and r.code == 0:
        return "wrong-code", "exit 0 for a damaged file (the damage is one a reader must notice)", notes
    if valid and r.code != 0:
        return "wrong-code", "a valid rewrite of the file was rejected: exit %d: %s" % (r.code, short(first)), notes

    if problems:
        return "messy", "exit %d; %s" % (r.code, "; ".join(problems)), notes

    changed = sorted(after ^ before)
    if r.code != 0 and changed:
        return "leftover", "exit %d left %s" % (r.code, ", ".join(changed[:5])), notes
    if r.code == 0 and [c for c in changed if c not in ("out/OUT.h5",)]:
        return "leftover", "exit 0 but also left %s" % ", ".join(c for c in changed if c != "out/OUT.h5"), notes
    if input_changed:
        return "leftover", "the run changed its input file", notes
    return "ok", "exit %d" % r.code, notes


def crash_line(lines):
    for l in lines:
        if CRASH_RE.search(l.encode()):
            return l.strip()
    return lines[0] if lines else "<empty stderr>"


def command_argv(xfer, mutant, mutant_path, command, data_file, out_dir):
    src = mutant.source
    args = list(src.args)
    if mutant.checkpoint_is_mutant:
        checkpoint = str(mutant_path)
    else:
        checkpoint = str(src.path.resolve())
        args = [str(mutant_path) if a == str(src.config_json) else a for a in args]
    sub = command.split()[0]
    argv = [xfer, sub, checkpoint] + args
    if command == "import --json":
        argv.append("--json")
    elif command == "import --to":
        argv += ["--to", str(out_dir / "OUT.h5")]
    elif command == "predict":
        argv += ["--data", str(data_file)]
    return argv


class Harness:
    def __init__(self, opts):
        self.opts = opts
        self.work = Path(tempfile.mkdtemp(prefix="xfer-fuzz-"))
        self.scratch = self.work / "scratch"
        self.scratch.mkdir()
        global EMPTY_STDIN
        EMPTY_STDIN = str(self.work / "stdin")
        Path(EMPTY_STDIN).write_bytes(b"")
        self.env = dict(os.environ)
        self.env.pop("TERM", None)
        self.env["NO_COLOR"] = "1"
        if not opts.backtrace:
            self.env["SWIFT_BACKTRACE"] = "enable=no"
        self.data_files = {}
        self.lock = threading.Lock()
        self.kinds = set(opts.kinds.split(",")) if opts.kinds else set()
        self.sources = load_sources(opts.fixtures, not opts.no_fashion)

    def prepare(self):
        for s in self.sources:
            s.analyse(self.scratch)
            argv = [self.opts.xfer, "import", str(s.path)] + s.args + ["--json"]
            r = run_limited(argv, self.work, self.opts.timeout, self.opts.as_limit, self.env,
                            self.scratch / "b.out", self.scratch / "b.err")
            s.baseline = r
            if r.code == 0:
                try:
                    s.input_shape = json.loads(r.stdout).get("input_shape")
                except ValueError:
                    s.input_shape = None
            expected = 3 if s.expected_error else 0
            if r.code != expected:
                print("fuzz: warning: the unmutated %s gives exit %s (expected %d): %s"
                      % (s.name, r.code, expected, short(r.stderr[:200])), file=sys.stderr)
            if s.input_shape:
                key = "x".join(str(int(d)) for d in s.input_shape)
                if key not in self.data_files:
                    path = self.work / ("data-%s.h5" % key)
                    with h5py.File(path, "w") as f:
                        f["x"] = np.zeros([2] + [int(d) for d in s.input_shape], dtype=np.float32)
                    self.data_files[key] = path
                s.data_file = self.data_files[key]

    def one(self, index):
        opts = self.opts
        if STOP.is_set():
            raise SystemExit(130)
        mutant = make_mutant(index, opts.seed, self.sources, self.kinds, self.scratch)
        command = choose_command(index, opts.seed, mutant)
        mdir = self.work / ("m%06d" % index)
        mdir.mkdir()
        out_dir = mdir / "out"
        out_dir.mkdir()
        mpath = mdir / mutant.file_name
        mpath.write_bytes(mutant.data)
        digest = hashlib.sha256(mutant.data).hexdigest()
        data_file = getattr(mutant.source, "data_file", None)
        argv = command_argv(opts.xfer, mutant, mpath, command, data_file, out_dir)
        (mdir / "tmp").mkdir()  # TMPDIR of the run, so that stray temporary files show
        env = dict(self.env, TMPDIR=str(mdir / "tmp"))
        before = tree_listing(mdir)
        r = run_limited(argv, mdir, opts.timeout, opts.as_limit, env, self.scratch / ("%d.out" % index),
                        self.scratch / ("%d.err" % index), opts.rss_limit)
        after = tree_listing(mdir)
        changed_input = sha(mpath) != digest
        also = []
        if "--config" in mutant.source.args:
            also = [mutant.source.args[mutant.source.args.index("--config") + 1] if mutant.checkpoint_is_mutant
                    else str(mutant.source.path.resolve())]
        if data_file is not None:
            # A checkpoint damaged into taking another input shape meets data that do not fit it:
            # the line then rightly names the data file and the two shapes.
            also.append(str(data_file))
        cls, detail, notes = classify(r, mpath, command, out_dir, before, after, changed_input, opts, also,
                                      mutant.valid and mutant.source.baseline.code == 0, mutant.must_fail)
        rec = dict(index=index, source=mutant.source.name, kind=mutant.kind, desc=mutant.desc, command=command,
                   cls=cls, detail=detail, notes=notes, seconds=r.seconds, rss=r.maxrss, code=r.code,
                   argv=argv, kept=None, size=len(mutant.data))
        if (cls != "ok" or opts.only is not None) and opts.keep_dir:
            rec["kept"] = self.keep(rec, mutant, mpath, r, data_file)
        if opts.only is not None:
            rec["stdout"], rec["stderr"] = r.stdout, r.stderr
        for p in (self.scratch / ("%d.out" % index), self.scratch / ("%d.err" % index)):
            p.unlink(missing_ok=True)
        shutil.rmtree(mdir, ignore_errors=True)
        return rec

    def keep(self, rec, mutant, mpath, r, data_file):
        keep = Path(self.opts.keep_dir)
        keep.mkdir(parents=True, exist_ok=True)
        stem = "%06d-%s-%s" % (rec["index"], rec["cls"], mutant.file_name)
        kept = keep / stem
        shutil.copy(mpath, kept)
        argv = [str(kept) if a == str(mpath) else a for a in rec["argv"]]
        if data_file is not None and str(data_file) in argv:
            kd = keep / data_file.name
            if not kd.exists():
                shutil.copy(data_file, kd)
            argv = [str(kd) if a == str(data_file) else a for a in argv]
        if "--to" in argv:
            argv[argv.index("--to") + 1] = str(keep / (stem + ".OUT.h5"))
        rec["kept_argv"] = argv
        only = "python scripts/fuzz.py --seed %d --only %d%s" % (
            self.opts.seed, rec["index"], (" --kinds " + self.opts.kinds) if self.opts.kinds else "")
        text = ["index: %d" % rec["index"], "class: %s" % rec["cls"], "detail: %s" % rec["detail"],
                "source: %s" % mutant.source.path, "kind: %s" % rec["kind"], "mutation: %s" % rec["desc"],
                "command: %s" % " ".join(shell_quote(a) for a in argv),
                "exit: %s  signal: %s  seconds: %.2f  peak RSS: %d MiB" % (r.code, r.signal, r.seconds, r.maxrss >> 20),
                "re-make: %s" % only, "", "--- stderr (first 40 lines)"]
        text += r.stderr.decode("utf-8", "backslashreplace").split("\n")[:40]
        text += ["--- stdout (first 20 lines)"] + r.stdout.decode("utf-8", "backslashreplace").split("\n")[:20]
        (keep / (stem + ".txt")).write_text("\n".join(text) + "\n")
        return str(kept)

    def cleanup(self):
        for _ in range(5):  # a worker may still be writing into it
            shutil.rmtree(self.work, ignore_errors=True)
            if not self.work.exists():
                break
            time.sleep(0.1)


def shell_quote(a):
    return a if re.fullmatch(r"[A-Za-z0-9_./:,=+-]+", a) else "'" + a.replace("'", "'\\''") + "'"


def report_line(rec):
    cmd = " ".join(shell_quote(a) for a in rec.get("kept_argv") or rec["argv"])
    line = "[%s] #%d %s %s: %s | %s | %s" % (rec["cls"], rec["index"], rec["source"], rec["kind"], short(rec["desc"], 140),
                                             rec["detail"], cmd)
    return line


def main():
    ap = argparse.ArgumentParser(description="Fuzz xfer's checkpoint readers with damaged Keras files.",
                                 epilog="See the docstring of scripts/fuzz.py for the classes and durations.")
    ap.add_argument("--xfer", default=str(REPO / ".build" / "debug" / "xfer"), help="the xfer binary")
    ap.add_argument("--count", type=int, default=300, help="mutants to run (default 300, the CI mode)")
    ap.add_argument("--start", type=int, default=0, help="first mutant index (default 0)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1, help="xfer runs at the same time (default 1)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per run before it counts as a hang")
    ap.add_argument("--keep-dir", help="copy failing mutants here, each with a .txt")
    ap.add_argument("--only", type=int, help="re-make and re-run mutant INDEX, printing everything")
    ap.add_argument("--kinds", help="only these mutation kinds (comma-separated)")
    ap.add_argument("--list-kinds", action="store_true", help="print the mutation kinds and exit")
    ap.add_argument("--rss-limit", type=int, default=2048, help="MiB of peak RSS that count as 'memory'")
    ap.add_argument("--as-limit", type=int, default=4096, help="MiB of address space each run may map")
    ap.add_argument("--fixtures", default=str(REPO / "checkpoints" / "fixtures"))
    ap.add_argument("--no-fashion", action="store_true", help="leave out checkpoints/fashion/fashion_vgg.h5")
    ap.add_argument("--backtrace", action="store_true",
                    help="leave Swift's crash backtracer on (slower crashes; the default with --only)")
    ap.add_argument("--no-backtrace", action="store_true", help="with --only: Swift's backtracer off, as in a full run")
    ap.add_argument("--quiet", action="store_true", help="no per-failure lines, only the summary")
    opts = ap.parse_args()
    if opts.list_kinds:
        print("\n".join(all_kinds()))
        return 0
    opts.fixtures = Path(opts.fixtures)
    opts.rss_limit <<= 20
    opts.as_limit <<= 20
    opts.xfer = str(Path(opts.xfer).resolve())
    if not os.access(opts.xfer, os.X_OK):
        print("fuzz: no xfer binary at %s (run swift build, or give --xfer)" % opts.xfer, file=sys.stderr)
        return 2
    if opts.kinds:
        unknown = set(opts.kinds.split(",")) - set(all_kinds())
        if unknown:
            print("fuzz: unknown kinds %s (see --list-kinds)" % ", ".join(sorted(unknown)), file=sys.stderr)
            return 2
    if opts.only is not None:
        opts.count, opts.start = 1, opts.only
        if not opts.keep_dir:  # the mutant outlives the run so that it can be looked at
            opts.keep_dir = tempfile.mkdtemp(prefix="xfer-fuzz-only-")
        if not opts.no_backtrace:
            opts.backtrace = True
    h = Harness(opts)

    def on_signal(signum, frame):  # Ctrl-C or kill: stop the running xfer, remove the work directory
        STOP.set()
        for pid in list(RUNNING):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        h.cleanup()
        print("fuzz: interrupted", file=sys.stderr, flush=True)
        os._exit(130)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    try:
        h.prepare()
        if opts.only is not None:
            rec = h.one(opts.only)
            print("mutant #%d of seed %d: %s %s: %s" % (rec["index"], opts.seed, rec["source"], rec["kind"], rec["desc"]))
            print("file: %s (%d bytes)" % (rec["kept"], rec["size"]))
            print("command: %s" % " ".join(shell_quote(a) for a in rec.get("kept_argv") or rec["argv"]))
            print("exit: %s, %.2f s, peak RSS %d MiB" % (rec["code"], rec["seconds"], rec["rss"] >> 20))
            print("--- stderr\n%s--- stdout (first 30 lines)\n%s" % (
                rec["stderr"].decode("utf-8", "backslashreplace"),
                "\n".join(rec["stdout"].decode("utf-8", "backslashreplace").split("\n")[:30])))
            print("class: %s: %s%s" % (rec["cls"], rec["detail"], (" (notes: %s)" % ", ".join(rec["notes"])) if rec["notes"] else ""))
            print("fuzz: %d passed, %d failed" % ((1, 0) if rec["cls"] == "ok" else (0, 1)))
            return 0 if rec["cls"] == "ok" else 1
        records = []
        indices = range(opts.start, opts.start + opts.count)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, opts.jobs))
        try:
            futures = [pool.submit(h.one, i) for i in indices]
            for fut in concurrent.futures.as_completed(futures):
                rec = fut.result()
                records.append(rec)
                if rec["cls"] != "ok" and not opts.quiet:
                    print(report_line(rec), flush=True)
        finally:  # on an interrupt: drop the mutants not started, let the running ones end
            pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        print("fuzz: interrupted", file=sys.stderr)
        return 130
    finally:
        h.cleanup()
    elapsed = time.monotonic() - t0
    summarize(records, elapsed)
    passed = sum(1 for r in records if r["cls"] == "ok")
    print("fuzz: %d passed, %d failed" % (passed, len(records) - passed))
    return 0 if passed == len(records) else 1


CLASSES = ["ok", "messy", "wrong-code", "crash", "hang", "memory", "leftover"]


def summarize(records, elapsed):
    by_kind = collections.defaultdict(collections.Counter)
    total = collections.Counter()
    notes = collections.Counter()
    for r in records:
        by_kind[r["kind"]][r["cls"]] += 1
        total[r["cls"]] += 1
        if r["cls"] == "ok" and r["code"] == 0:  # how often a mutation left the file readable
            by_kind[r["kind"]]["(ok: exit 0)"] += 1
            total["(ok: exit 0)"] += 1
        notes.update(r["notes"])
    cols = [c for c in CLASSES if total[c] or c == "ok"] + ["(ok: exit 0)"]
    width = max([len(k) for k in by_kind] + [5])
    print()
    print("%-*s %s" % (width, "kind", " ".join("%12s" % c for c in cols)))
    for k in sorted(by_kind):
        print("%-*s %s" % (width, k, " ".join("%12d" % by_kind[k][c] for c in cols)))
    print("%-*s %s" % (width, "total", " ".join("%12d" % total[c] for c in cols)))
    if notes:
        print("notes (not failures): " + ", ".join("%s %d" % kv for kv in sorted(notes.items())))
    runs = [r["seconds"] for r in records]
    if runs:
        print("%d mutants in %.1f s (xfer runs: mean %.2f s, max %.2f s; peak RSS max %d MiB)" % (
            len(records), elapsed, sum(runs) / len(runs), max(runs), max(r["rss"] for r in records) >> 20))


if __name__ == "__main__":
    sys.exit(main())
