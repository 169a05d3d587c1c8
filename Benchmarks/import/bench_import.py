"""Times `xfer import FILE` against `cat FILE > /dev/null` (warm page cache), alternating.

Usage: python bench_import.py XFER FILE [RUNS]
Prints per-command median wall time and peak RSS (from wait4), and the median of the
per-pair ratios xfer/cat, so a drift in machine speed cancels out.
"""
import os
import statistics
import subprocess
import sys
import time


def run(argv, stdout):
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"{argv} failed with status {status}")
    return wall, usage.ru_maxrss / 1024.0  # MiB


xfer, path = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 15
size_mib = os.path.getsize(path) / 2**20
devnull = open(os.devnull, "w")
for _ in range(2):  # warm the page cache and both binaries
    run(["cat", path], devnull)
    run([xfer, "import", path], devnull)
cat_t, xfer_t, ratios, xfer_rss = [], [], [], []
for _ in range(runs):
    c, _ = run(["cat", path], devnull)
    x, rss = run([xfer, "import", path], devnull)
    cat_t.append(c); xfer_t.append(x); ratios.append(x / c); xfer_rss.append(rss)
print(f"file: {path} ({size_mib:.1f} MiB), {runs} alternating runs, medians")
print(f"cat FILE >/dev/null   wall {statistics.median(cat_t):.3f} s")
print(f"xfer import FILE      wall {statistics.median(xfer_t):.3f} s   peak RSS {statistics.median(xfer_rss):.1f} MiB")
print(f"ratio xfer/cat (median of pairs)   {statistics.median(ratios):.2f}x   (target <= 1.5x)")
print(f"peak RSS / file size               {statistics.median(xfer_rss) / size_mib:.2f}x   (target <= 1.2x)")
