"""Driver of the training benchmark (BENCHMARKS.md, "Training"); run.sh calls it.

    python compare.py XFER XFER_TRAIN_BENCH PYTHON OUT_DIR [ROUNDS] [JOBS] [XFER_BENCH FMA_PEAK]

Per-step figures: ROUNDS rounds, each running xfer then TensorFlow for (a) the base
frozen and (b) --freeze-until block5, every run a separate process (xfer-train-bench /
tf_train_vgg16.py steps, --no-cache set-up, batch 16, first 2 steps skipped).
Limits, in the same rounds when XFER_BENCH and FMA_PEAK are given: `xfer-bench sgemm`
(the GEMM calls of the base's forward pass at batch 16, alone: what im2col + this SGEMM
can reach at most in (a)) and `fma_peak` (the machine's float32 multiply-add peak on
every core); TensorFlow's (a) step and xfer's are set against both.
Forward pass, in the same rounds when XFER_BENCH is given: `xfer-bench xfer` (VGG16's base at
224x224, batch 16; --conv auto, and --conv im2col for reference) against Keras `predict`
(tf_predict_vgg16.py), then the ResNet50 and InceptionV3 bases (make_data.py) the same way.
Whole job: 512 images x 10 epochs, setting (a), `xfer finetune` (feature cache on)
and Keras model.fit, alternately, JOBS times each. Wall clock and peak RSS of each
process come from os.wait4. Prints every run's line, then medians and ratios.
"""
import os
import re
import statistics
import subprocess
import sys
import time

xfer, bench, python, out = sys.argv[1:5]
rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
jobs = int(sys.argv[6]) if len(sys.argv) > 6 else 1
limits = sys.argv[7:9] if len(sys.argv) > 8 else None
here = os.path.dirname(os.path.abspath(__file__))
ckpt = os.path.join(out, "vgg16_notop.h5")
data = os.path.join(out, "train_512.h5")
env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def run_rss(cmd):
    """Like run, with the peak RSS (MiB) from os.wait4."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    stdout = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}")
    return stdout, wall, usage.ru_maxrss / 1024


def field(line, key):
    return float(re.search(rf"\b{key}=([0-9.]+)", line).group(1))


forward = {}  # (model, side) -> [(images/s, GFLOP/s, peak RSS MiB)]
step = {}  # (side, setting) -> [images/s]
step_rss = {}
ceiling = {"sgemm_img_s": [], "gflop_per_img": [], "peak_gflops": []}
for r in range(rounds):
    if limits:
        stdout, _, _ = run_rss([limits[0], "sgemm", "--batch", "16", "--runs", "3"])
        line = stdout.strip().splitlines()[-1]
        print(f"round {r + 1} (limit) {line}", flush=True)
        ceiling["sgemm_img_s"].append(field(line, "img_per_s"))
        ceiling["gflop_per_img"].append(field(line, "gflops") / field(line, "img_per_s"))
        stdout, _, _ = run_rss([limits[1], str(os.cpu_count()), "3"])
        line = stdout.strip().splitlines()[-1]
        print(f"round {r + 1} (limit) {line}", flush=True)
        ceiling["peak_gflops"].append(field(line, "gflops"))
        fwd = [("vgg16", "xfer", [limits[0], "xfer"]), ("vgg16", "xfer_im2col", [limits[0], "xfer", "--conv", "im2col"]),
               ("vgg16", "tensorflow", [python, os.path.join(here, "..", "tf_predict_vgg16.py")])]
        for name in ["resnet50", "inceptionv3"]:
            path = os.path.join(out, f"{name}_notop.h5")
            fwd += [(name, "xfer", [limits[0], "xfer", "--checkpoint", path]),
                    (name, "tensorflow", [python, os.path.join(here, "..", "tf_predict_vgg16.py"), "--checkpoint", path])]
        for model, side, cmd in fwd:
            stdout, _, rss = run_rss(cmd + ["--batch", "16", "--runs", "3", "--warmup", "1", "--threads", str(os.cpu_count())])
            line = stdout.strip().splitlines()[-1]
            print(f"round {r + 1} (forward {model}) {line} rss_mib={rss:.0f}", flush=True)
            forward.setdefault((model, side), []).append((field(line, "img_per_s"), field(line, "gflops"), rss))
    for setting, extra in [("a", []), ("b", ["--freeze-until", "block5"])]:
        for side in ["xfer", "tensorflow"]:
            if side == "xfer":
                cmd = [bench, ckpt, data, "--steps", "6", "--warmup", "2"] + extra
            else:
                cmd = [python, os.path.join(here, "tf_train_vgg16.py"), ckpt, data, "steps", "--steps", "6", "--warmup", "2"] + extra
            stdout, wall, rss = run_rss(cmd)
            line = stdout.strip().splitlines()[-1]
            print(f"round {r + 1} ({setting}) {line} wall_s={wall:.1f} rss_mib={rss:.0f}", flush=True)
            step.setdefault((side, setting), []).append(field(line, "images_per_s"))
            step_rss.setdefault((side, setting), []).append(rss)

job = {}
for j in range(jobs):
    for side in ["xfer", "tensorflow"]:
        if side == "xfer":
            cmd = [xfer, "finetune", ckpt, "--data", data, "--batch-size", "16", "--epochs", "10",
                   "--output", os.path.join(out, "vgg16_notop-finetuned.h5")]
        else:
            cmd = [python, os.path.join(here, "tf_train_vgg16.py"), ckpt, data, "job", "--epochs", "10"]
        stdout, wall, rss = run_rss(cmd)
        last = stdout.strip().splitlines()[-1]
        print(f"job {j + 1} side={side} wall_s={wall:.1f} rss_mib={rss:.0f} | {last}", flush=True)
        job.setdefault(side, []).append((wall, rss))

med = statistics.median
print("\nmedians")
for setting, name in [("a", "base frozen"), ("b", "--freeze-until block5")]:
    x, t = med(step[("xfer", setting)]), med(step[("tensorflow", setting)])
    print(f"step ({setting}) {name}: xfer {x:.2f} images/s ({16 / x:.2f} s/step), TF {t:.2f} images/s "
          f"({16 / t:.2f} s/step), xfer/TF {x / t:.2f}x (rounds {', '.join(f'{a / b:.2f}' for a, b in zip(step[('xfer', setting)], step[('tensorflow', setting)]))}); "
          f"peak RSS xfer {med(step_rss[('xfer', setting)]):.0f} MiB, TF {med(step_rss[('tensorflow', setting)]):.0f} MiB")
if limits:
    limit, per_img, peak = med(ceiling["sgemm_img_s"]), med(ceiling["gflop_per_img"]), med(ceiling["peak_gflops"])
    x, t = med(step[("xfer", "a")]), med(step[("tensorflow", "a")])
    print(f"limits (a): float32 FMA peak {peak:.0f} GFLOP/s; the base's forward is {per_img:.2f} GFLOP per image")
    print(f"  its GEMMs alone (im2col + SGEMM limit): {limit:.2f} images/s = {limit * per_img / peak:.0%} of peak")
    print(f"  xfer step {x:.2f} images/s = {x * per_img / peak:.0%} of peak, {x / limit:.2f} of the SGEMM limit")
    print(f"  TF step {t:.2f} images/s = {t * per_img / peak:.0%} of peak, {t / limit:.2f}x the SGEMM limit")
if forward:
    print("forward, batch 16 (medians; ratios are medians of the per-round ratios)")
    peak = med(ceiling["peak_gflops"])
    for model in ["vgg16", "resnet50", "inceptionv3"]:
        tf = forward[(model, "tensorflow")]
        for side in ["xfer", "xfer_im2col"]:
            if (model, side) not in forward:
                continue
            xs = forward[(model, side)]
            ratio = med([a[0] / b[0] for a, b in zip(xs, tf)])
            rss = med([a[2] / b[2] for a, b in zip(xs, tf)])
            share = f", {med([a[1] for a in xs]):.0f} GFLOP/s effective = {med([a[1] for a in xs]) / peak:.0%} of the FMA peak" if model == "vgg16" else ""
            print(f"  {model} {side}: {med([a[0] for a in xs]):.2f} images/s, TF predict {med([b[0] for b in tf]):.2f}: "
                  f"{ratio:.2f}x (rounds {', '.join(f'{a[0] / b[0]:.2f}' for a, b in zip(xs, tf))}){share}; "
                  f"peak RSS {med([a[2] for a in xs]):.0f} MiB vs {med([b[2] for b in tf]):.0f} MiB = {rss:.2f}")
if job:
    xw, tw = med([w for w, _ in job["xfer"]]), med([w for w, _ in job["tensorflow"]])
    xr, tr = med([r for _, r in job["xfer"]]), med([r for _, r in job["tensorflow"]])
    print(f"job 512x10 (a): xfer (cache) {xw:.1f} s, Keras fit {tw:.1f} s, speed-up {tw / xw:.2f}x (target >= 15x); "
          f"peak RSS xfer {xr:.0f} MiB, TF {tr:.0f} MiB, ratio {xr / tr:.2f} (target <= 0.5)")
