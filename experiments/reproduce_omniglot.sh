#!/usr/bin/env bash
# Omniglot few-shot results of docs/results.md, on the two small background subsets in DATA_DIR
# (default data/omniglot-small; fetch them with `python -m metarl.supervised.omniglot.data
# data/omniglot-small --archives small`; a folder that also holds the full splits is refused):
# 242 characters, a seeded split of 75% of the characters for training and 25% held out, each
# with its 4 rotations as classes. Trains 5-way 1-shot, 5-way 5-shot and
# 20-way 1-shot (second order, paper hyperparameters except the budget), then evaluates each on
# 1000 held-out episodes after 0..3 steps against the non-meta classifier baseline.
#
#   bash experiments/reproduce_omniglot.sh [DATA_DIR] [OUT]
#
# Budgets default to the runs of docs/results.md, made on a 2-core CPU (meta-batch 8 or 4
# instead of 32, 1500 to 3000 meta-iterations instead of 60000); set ITERS_5W1S, ITERS_5W5S, ITERS_20W1S,
# META_BATCH (the 5-way runs), META_BATCH_20W (the 20-way run) and BASELINE_ITERS to change
# them, and CHECKPOINT_EVERY (default 100) for how many meta-iterations a run may lose when it
# is interrupted. Running the command again resumes unfinished runs from their last checkpoint
# (a run directory per setting under OUT; one stopped before its first checkpoint is deleted
# and started afresh), evaluates what changed, and prints the Markdown table of
# docs/results.md (experiments/omniglot_table.py).
set -euo pipefail
DATA=${1:-data/omniglot-small}
OUT=${2:-runs/omniglot}
if [ -e "$DATA/images_background.zip" ] || [ -e "$DATA/images_evaluation.zip" ]; then
    echo "error: $DATA holds the full Omniglot splits; every zip in it would be used, and the" \
         "results are on the two small background subsets only: give a folder holding just" \
         "those (python -m metarl.supervised.omniglot.data DIR --archives small)" >&2
    exit 2
fi
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-100}

train_and_evaluate() {
    local name=$1 iterations=$2
    shift 2
    local dir
    dir=$(ls -d "$OUT/$name"/maml__omniglot__* 2>/dev/null | tail -1 || true)
    if [ -n "$dir" ] && [ ! -f "$dir/checkpoint.pt" ]; then
        echo "$dir: stopped before its first checkpoint; starting $name afresh" >&2
        rm -rf -- "$dir"
        dir=""
    fi
    if [ -z "$dir" ]; then
        python -m metarl.run maml --task omniglot --data-dir "$DATA" --output-dir "$OUT/$name" \
            --seed 0 --num-batches "$iterations" --eval-every 100 --eval-tasks 100 \
            --checkpoint-every "$CHECKPOINT_EVERY" --no-progress "$@"
        dir=$(ls -d "$OUT/$name"/maml__omniglot__* | tail -1)
    else
        python -m metarl.run maml --resume "$dir" --num-batches "$iterations" \
            --checkpoint-every "$CHECKPOINT_EVERY" --no-progress
    fi
    if [ -f "$dir/evaluation/curve.json" ] && [ "$dir/evaluation/curve.json" -nt "$dir/checkpoint.pt" ]; then
        echo "$dir: evaluation is up to date"
    else
        python -m metarl.run evaluate --run "$dir" --baseline-iterations "${BASELINE_ITERS:-2000}" \
            --no-progress
    fi
}

train_and_evaluate 5way1shot "${ITERS_5W1S:-3000}" --ways 5 --shots 1 \
    --meta-batch-size "${META_BATCH:-8}"
train_and_evaluate 5way5shot "${ITERS_5W5S:-2000}" --ways 5 --shots 5 \
    --meta-batch-size "${META_BATCH:-8}"
train_and_evaluate 20way1shot "${ITERS_20W1S:-1500}" --ways 20 --shots 1 \
    --meta-batch-size "${META_BATCH_20W:-4}"

python experiments/omniglot_table.py "$OUT"
