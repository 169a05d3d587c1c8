#!/usr/bin/env bash
# Runs the Keras fine-tuning recipe (keras_recipe.py, see RECIPE.md) for seeds 0, 1, 2 and
# prints each run's JSON line, then the mean test accuracy and the mean wall time. The wall
# time of a seed is the whole Python process (start-up, imports, data, training, evaluation),
# measured with time.perf_counter() around the subprocess.
#
#   bash checkpoints/fashion/keras_recipe.sh [--freeze-until block4|block3|all] [--epochs E]
#
# Extra arguments go to keras_recipe.py. SEEDS="0 1 2" picks other seeds. The Python
# environment is $XFER_VENV (default: <repo root>/.venv-keras), made by scripts/keras-venv.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$("$root/scripts/keras-venv.sh")"

# Deterministic, CPU only, quiet.
export CUDA_VISIBLE_DEVICES=""
export TF_DETERMINISTIC_OPS=1
export TF_CPP_MIN_LOG_LEVEL=3
export TF_ENABLE_ONEDNN_OPTS=0
export PYTHONHASHSEED=0

exec "$venv/bin/python" - "$here/keras_recipe.py" "${SEEDS:-0 1 2}" "$@" <<'EOF'
import json
import subprocess
import sys
import time

script, seeds, extra = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
runs = []
for seed in seeds:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, script, seed] + extra,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        sys.exit(f"keras_recipe.py {seed}: exit code {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_seconds"] = round(wall, 2)
    print(json.dumps(result), flush=True)
    runs.append(result)

mean_acc = sum(r["test_accuracy"] for r in runs) / len(runs)
mean_wall = sum(r["process_wall_seconds"] for r in runs) / len(runs)
print(f"freeze_until {runs[0]['freeze_until']}, {runs[0]['epochs']} epochs, seeds {' '.join(seeds)}: "
      f"mean test accuracy {mean_acc:.4f}, mean wall time {mean_wall:.1f} s")
EOF
