#!/usr/bin/env bash
# The few-shot comparison of docs/results.md: every few-shot method on Omniglot 5-way 1-shot,
# 5-way 5-shot and 20-way 1-shot, on the two small background subsets in DATA_DIR (default
# data/omniglot-small; fetch them with `python -m metarl.supervised.omniglot.data
# data/omniglot-small --archives small`; a folder that also holds the full splits is
# refused), with the split, episodes and budgets of the MAML runs of docs/results.md (3000 x 8,
# 2000 x 8 and 1500 x 4 meta-iterations x episodes), each method otherwise with its paper's
# settings (experiments/METHOD/omniglot.yaml), then evaluated on the same 1000 held-out
# episodes. One experiments/grid.py per setting (Ray tasks, --cpus-per-run 1:
# as many runs at once as the machine has cores); running the command again resumes or skips
# finished runs. Prints the table (experiments/fewshot_table.py).
#
#   bash experiments/reproduce_fewshot.sh [DATA_DIR] [OUT] [METHOD ...]
#
# METHOD defaults to every method but maml (whose runs are reproduce_omniglot.sh's).
set -euo pipefail
DATA=${1:-data/omniglot-small}
OUT=${2:-runs/fewshot}
if [ -e "$DATA/images_background.zip" ] || [ -e "$DATA/images_evaluation.zip" ]; then
    echo "error: $DATA holds the full Omniglot splits; every zip in it would be used, and the" \
         "results are on the two small background subsets only: give a folder holding just" \
         "those (python -m metarl.supervised.omniglot.data DIR --archives small)" >&2
    exit 2
fi
shift $(( $# > 2 ? 2 : $# ))
METHODS=("$@")
if [ ${#METHODS[@]} -eq 0 ]; then
    METHODS=(fomaml reptile anil protonet matching relation siamese mann)
fi

grid() {
    local setting=$1 iterations=$2 batch=$3
    shift 3
    python experiments/grid.py --algo "${METHODS[@]}" --tasks omniglot --seeds 0 \
        --cpus-per-run 1 --output-dir "$OUT/$setting" --set data_dir="$DATA" \
        --set num_batches="$iterations" --set meta_batch_size="$batch" \
        --set eval_every=100 --set eval_tasks=100 --set checkpoint_every=100 "$@"
}

grid 5way1shot "${ITERS_5W1S:-3000}" 8 --set ways=5 --set shots=1
grid 20way1shot "${ITERS_20W1S:-1500}" 4 --set ways=20 --set shots=1
grid 5way5shot "${ITERS_5W5S:-2000}" 8 --set ways=5 --set shots=5
python experiments/fewshot_table.py "$OUT"
