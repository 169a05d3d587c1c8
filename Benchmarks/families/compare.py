"""Driver of the families benchmark (BENCHMARKS.md, "Families"); run.sh calls it.

    python compare.py XFER_BENCH PYTHON MODELS_DIR [ROUNDS] [THREADS] [FMA_PEAK]

Each round runs, as separate processes in turn for ResNet50, MobileNetV2 and EfficientNetB0
(make_models.py: tf_keras.applications, include_top=False, weights=None, 224x224x3): xfer's
forward (`xfer-bench xfer --checkpoint`, Network.predict on a random batch of 16; --conv auto,
then --conv im2col, the im2col + SGEMM core, for reference) and Keras `predict` on TensorFlow
(Benchmarks/tf_predict_vgg16.py --checkpoint: tf_keras.models.load_model, the same batch size),
each timing 3 runs after 1 warm-up and reporting the median. THREADS threads on both sides.
Peak RSS of each process from os.wait4. Prints every run's line, then per model: images/s
(medians over the rounds), the median of the per-round ratios xfer / TensorFlow with the rounds'
ratios, and peak RSS; with FMA_PEAK (Benchmarks/peak/fma_peak.c, run at the start of each round
on THREADS threads) also the machine's float32 multiply-add peak and xfer's share of it (its
model FLOPs, counted as direct convolution, over its time).
"""
import os
import re
import statistics
import subprocess
import sys

bench, python, models = sys.argv[1:4]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
threads = sys.argv[5] if len(sys.argv) > 5 else "2"
fma = sys.argv[6] if len(sys.argv) > 6 else None
here = os.path.dirname(os.path.abspath(__file__))
tf_script = os.path.join(here, "..", "tf_predict_vgg16.py")
env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
# FAMILIES (make_models.py's names) measures others.
families = os.environ.get("FAMILIES", "ResNet50,MobileNetV2,EfficientNetB0").lower().split(",")
common = ["--batch", "16", "--runs", "3", "--warmup", "1", "--threads", threads]


def run_rss(cmd):
    """stdout's last line and the process's peak RSS (MiB) from os.wait4."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    stdout = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}")
    return stdout.strip().splitlines()[-1], usage.ru_maxrss / 1024


def field(line, key):
    return float(re.search(rf"\b{key}=([0-9.]+)", line).group(1))


runs = {}  # (model, side) -> [(images/s, peak RSS MiB)]
gflops = {}  # model -> [xfer's GFLOP/s]
peaks = []  # the FMA peak of each round, GFLOP/s
for r in range(rounds):
    if fma:
        line = subprocess.run([fma, threads], capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(f"round {r + 1} {line}", flush=True)
        peaks.append(field(line, "gflops"))
    for model in families:
        ckpt = os.path.join(models, f"{model}_notop.h5")
        sides = [("xfer", [bench, "xfer", "--checkpoint", ckpt, "--conv", "auto"]),
                 ("xfer im2col", [bench, "xfer", "--checkpoint", ckpt, "--conv", "im2col"]),
                 ("tensorflow", [python, tf_script, "--checkpoint", ckpt])]
        for side, cmd in sides:
            line, rss = run_rss(cmd + common)
            print(f"round {r + 1} {model} ({side}) {line} rss_mib={rss:.0f}", flush=True)
            runs.setdefault((model, side), []).append((field(line, "img_per_s"), rss))
            if side == "xfer":
                gflops.setdefault(model, []).append(field(line, "gflops"))

med = statistics.median
print()
print("| model | xfer images/s | --conv im2col | TensorFlow predict | ratio (rounds) | im2col ratio "
      "| peak RSS xfer / TF (MiB) | RSS ratio |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for model in families:
    xs, ims, tfs = runs[(model, "xfer")], runs[(model, "xfer im2col")], runs[(model, "tensorflow")]
    ratios = [a[0] / b[0] for a, b in zip(xs, tfs)]
    im2col = [a[0] / b[0] for a, b in zip(ims, tfs)]
    rss = [a[1] / b[1] for a, b in zip(xs, tfs)]
    print(f"| {model} | {med([a[0] for a in xs]):.2f} | {med([a[0] for a in ims]):.2f} | {med([b[0] for b in tfs]):.2f} "
          f"| **{med(ratios):.2f}x** ({', '.join(f'{x:.2f}' for x in ratios)}) | {med(im2col):.2f}x "
          f"| {med([a[1] for a in xs]):.0f} / {med([b[1] for b in tfs]):.0f} | {med(rss):.2f} |")
if peaks:
    peak = med(peaks)
    print()
    print(f"float32 FMA peak ({threads} threads, rounds {', '.join(f'{p:.1f}' for p in peaks)}): {peak:.1f} GFLOP/s")
    for model in families:
        g = med(gflops[model])
        print(f"  {model}: xfer {g:.1f} GFLOP/s (model FLOPs as direct convolution), {100 * g / peak:.0f} % of the peak")
