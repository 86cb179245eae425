"""Seconds per meta-iteration of every few-shot method on the same Omniglot episodes, next to
MAML's.

    python bench/fewshot.py [--data-dir data/omniglot] [--ways 5] [--shots 1]
        [--queries 15] [--meta-batch-size 8] [--rounds 5] [--threads 1]
        [--methods maml fomaml ...]

Each method's trainer is built as ``python -m metarl.run METHOD --task omniglot`` builds it
(its shipped ``experiments/METHOD/omniglot.yaml``, then the episode shape and meta-batch given
here, no held-out evaluation) and one ``step()`` is timed: drawing the episodes, the forward
and backward passes and the optimiser step. Methods take turns, ``--rounds`` times each after
one warm-up step, and the median is reported, so a slow moment of a shared machine falls on
every method alike. The last printed line is one JSON object: per method its seconds per
iteration (wall clock and CPU seconds of this process) and the ratios of both to MAML's (on a
machine shared with other jobs, read the CPU seconds' ratio: the sharing inflates the wall
clock more).
"""

from __future__ import annotations

import argparse
import json
import sys

import common  # bench/common.py: bench/ is first on sys.path when run as a script

from metarl.scripts import positive_int, run_script

#: Every few-shot method, in the order of the README's table.
METHODS = ("maml", "fomaml", "reptile", "anil", "protonet", "matching", "relation", "siamese",
           "mann")


def build(method: str, args: argparse.Namespace):
    """The trainer ``python -m metarl.run METHOD`` would build, with this bench's episodes."""
    from metarl.algorithms import algorithm
    from metarl.experiment import make_config

    config = make_config(method, task="omniglot", data_dir=args.data_dir,
                         cache_dir=args.cache_dir or "", ways=args.ways, shots=args.shots,
                         queries=args.queries, meta_batch_size=args.meta_batch_size,
                         eval_every=0, torch_threads=args.threads, seed=0)
    return algorithm(method).build_trainer(config)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/omniglot",
                        help="the Omniglot zips (default: data/omniglot)")
    parser.add_argument("--cache-dir", default="")
    parser.add_argument("--ways", type=positive_int, default=5)
    parser.add_argument("--shots", type=positive_int, default=1)
    parser.add_argument("--queries", type=positive_int, default=15)
    parser.add_argument("--meta-batch-size", type=positive_int, default=8)
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--methods", nargs="+", default=None, choices=METHODS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from metarl.algorithms import ALGORITHMS

    methods = [m for m in (args.methods or METHODS) if m in ALGORITHMS]
    trainers = {method: build(method, args) for method in methods}
    wall, cpu = common.steps_in_turns(trainers, args.rounds)
    result = {"episodes": {"ways": args.ways, "shots": args.shots, "queries": args.queries,
                           "meta_batch_size": args.meta_batch_size},
              "rounds": args.rounds, "machine": common.machine(), "methods": {}}
    print(f"{'method':<10}{'s/iteration':>14}{'cpu s':>10}{'x MAML':>10}{'cpu x MAML':>12}")
    for method in methods:
        ratio, cpu_ratio = (None, None) if "maml" not in wall else (
            wall[method] / wall["maml"], cpu[method] / cpu["maml"])
        result["methods"][method] = {
            "seconds_per_iteration": round(wall[method], 4),
            "cpu_seconds_per_iteration": round(cpu[method], 4),
            "ratio_to_maml": None if ratio is None else round(ratio, 3),
            "cpu_ratio_to_maml": None if cpu_ratio is None else round(cpu_ratio, 3)}
        ratios = "" if ratio is None else f"{ratio:>10.2f}{cpu_ratio:>12.2f}"
        print(f"{method:<10}{wall[method]:>14.3f}{cpu[method]:>10.3f}{ratios}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
