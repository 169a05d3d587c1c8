#!/usr/bin/env bash
# Inference benchmark (BENCHMARKS.md, "Inference engine"): VGG16's convolutional base
# at 224×224, batch 16, random weights, run by
#   sgemm       the GEMM calls of xfer's convolutions alone, through the same SGEMM
#   xfer        xfer's forward pass (Network.predict)
#   tensorflow  Keras model.predict on TensorFlow-CPU
# for each thread count, the three in turn for ROUNDS rounds (so a drift of the
# machine's speed hits all three alike), each a separate process under /usr/bin/time -v
# (peak RSS). Prints the medians over the rounds and the ratios.
#
#   Benchmarks/run_inference_bench.sh                 # THREADS="1 2" ROUNDS=3 RUNS=3 BATCH=16
#   THREADS=2 ROUNDS=5 Benchmarks/run_inference_bench.sh
#
# Python side: the venv at ${XFER_VENV:-<repo>/.venv-keras}, created from
# checkpoints/requirements.txt when missing. Swift side: a release build in
# ${XFER_BUILD:-<repo>/.build}. Raw lines go to ${XFER_BENCH_LOG:-/tmp/xfer-inference-bench.log}.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${XFER_VENV:-$repo/.venv-keras}
build=${XFER_BUILD:-$repo/.build}
log=${XFER_BENCH_LOG:-${TMPDIR:-/tmp}/xfer-inference-bench.log}
threads_list=${THREADS:-"1 2"}
rounds=${ROUNDS:-3}
runs=${RUNS:-3}
batch=${BATCH:-16}
size=${SIZE:-224}

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv from checkpoints/requirements.txt" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$repo/checkpoints/requirements.txt"
fi

swift build -c release --package-path "$repo" --scratch-path "$build" --product xfer-bench >&2
bench="$(swift build -c release --package-path "$repo" --scratch-path "$build" --show-bin-path)/xfer-bench"

mkdir -p "$(dirname "$log")"
: >"$log"

# Runs one command under /usr/bin/time -v; appends its figures line plus peak_rss_kb to the log.
measure() {
    local timing
    timing=$(mktemp)
    local line
    line=$(/usr/bin/time -v -o "$timing" "$@" 2>/dev/null | grep '^mode=')
    local rss
    rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$timing")
    rm -f "$timing"
    echo "$line time_v_peak_rss_kb=$rss" | tee -a "$log" >&2
}

for t in $threads_list; do
    for r in $(seq "$rounds"); do
        echo "threads $t, round $r/$rounds" >&2
        common=(--batch "$batch" --size "$size" --threads "$t" --runs "$runs" --warmup 1)
        measure "$bench" sgemm "${common[@]}"
        measure "$bench" xfer "${common[@]}"
        measure "$venv/bin/python" "$repo/Benchmarks/tf_predict_vgg16.py" "${common[@]}"
    done
done

"$venv/bin/python" - "$log" <<'EOF'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()) for line in open(sys.argv[1]) if line.startswith("mode=")]
def med(mode, threads, key):
    v = [float(r[key]) for r in rows if r["mode"] == mode and r["threads"] == str(threads)]
    return statistics.median(v) if v else float("nan")
threads = sorted({int(r["threads"]) for r in rows})
print("| threads | mode | img/s | GFLOP/s | peak RSS (MB) |")
print("|---|---|---|---|---|")
for t in threads:
    for mode in ["sgemm", "xfer", "tensorflow"]:
        print(f"| {t} | {mode} | {med(mode, t, 'img_per_s'):.2f} | {med(mode, t, 'gflops'):.1f} | "
              f"{med(mode, t, 'time_v_peak_rss_kb') / 1024:.0f} |")
print()
# Ratios round by round (the three ran back to back), then their median.
def paired(t, a, b, key):
    xs = [r for r in rows if r["threads"] == str(t)]
    va = [float(r[key]) for r in xs if r["mode"] == a]
    vb = [float(r[key]) for r in xs if r["mode"] == b]
    return statistics.median(x / y for x, y in zip(va, vb))
for t in threads:
    print(f"threads {t}: xfer/sgemm GFLOP/s {paired(t, 'xfer', 'sgemm', 'gflops'):.3f}, "
          f"xfer/tensorflow img/s {paired(t, 'xfer', 'tensorflow', 'img_per_s'):.3f}, "
          f"peak RSS xfer/tensorflow {paired(t, 'xfer', 'tensorflow', 'time_v_peak_rss_kb'):.3f} "
          f"(medians of per-round ratios)")
if len(threads) > 1:
    lo, hi = threads[0], threads[-1]
    for mode in ["sgemm", "xfer", "tensorflow"]:
        print(f"{mode}: {hi}-thread speed-up over {lo} thread(s) {med(mode, hi, 'img_per_s') / med(mode, lo, 'img_per_s'):.2f}x")
print(f"rounds per figure: {len([r for r in rows if r['mode'] == 'xfer' and r['threads'] == str(threads[0])])}, "
      f"timed runs per round: {rows[0]['runs']} (median of them), batch {rows[0]['batch']}, size {rows[0]['size']}")
EOF
