#!/usr/bin/env bash
# Sine regression, the paper's settings (70k meta-iterations), one model per K = 5, 10, 20,
# each evaluated on 600 held-out tasks against the pretrained baseline and the oracle.
# Usage: bash experiments/reproduce_sine.sh [OUTPUT_DIR] [SEED]     (about 6 min per K, 1 core)
set -euo pipefail
out=${1:-runs/sine_reproduction}
seed=${2:-0}
export OMP_NUM_THREADS=1   # tiny networks: one thread is fastest and leaves a core free
for k in 5 10 20; do
  python -m metarl.run maml --task sine --shots "$k" --queries "$k" --seed "$seed" \
    --output-dir "$out/k$k" --no-progress
  run=$(ls -d "$out/k$k"/maml__sine__"$seed"__* | tail -n 1)
  python -m metarl.run evaluate --run "$run"
done
