"""Seconds per meta-iteration of MAML-TRPO, ProMP and RL² at the same sample budget, side by
side.

    python bench/meta_rl.py [--env navigation_2d] [--meta-batch-size 20] [--episodes 20]
        [--rounds 3] [--threads 1]

Each method's trainer is built as ``python -m metarl.run METHOD --env ENV`` builds it (its
shipped YAML), then given the same tasks and episodes per meta-iteration: MAML-TRPO and ProMP
sample ``--episodes`` episodes of each of ``--meta-batch-size`` tasks before and again after
adaptation; RL² samples ``--episodes`` trials of 2 episodes of each task, the same number of
episodes. Sampling runs in this process (``num_workers`` 1) for all three, so the comparison
is of the methods, not of the machine's cores. One ``step()`` (sampling, adaptation, outer
update) is timed per method per round, the methods taking turns, after one warm-up step each;
medians. The last printed line is one JSON object: per method its seconds per iteration (wall
and CPU seconds of this process) and the ratio to MAML-TRPO's.
"""

from __future__ import annotations

import argparse
import json
import sys

import common  # bench/common.py: bench/ is first on sys.path when run as a script

from metarl.scripts import positive_int, run_script

METHODS = ("maml_trpo", "promp", "rl2")


def build(method: str, args: argparse.Namespace):
    """The trainer ``python -m metarl.run METHOD`` would build, at this bench's budget."""
    from metarl.algorithms import algorithm
    from metarl.experiment import make_config

    sizes = ({"trials_per_task": args.episodes, "episodes_per_trial": 2} if method == "rl2"
             else {"fast_batch_size": args.episodes, "num_workers": 1})
    config = make_config(method, env=args.env, meta_batch_size=args.meta_batch_size,
                         torch_threads=args.threads, seed=0, **sizes)
    return algorithm(method).build_trainer(config)


def check_rl2_trials(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse sizes that give RL² fewer trials per meta-iteration (``--meta-batch-size`` x
    ``--episodes``) than the minibatches its shipped config splits them into, naming this
    script's flags rather than RL²'s options."""
    from metarl.experiment import make_config

    num_minibatches = make_config("rl2", env=args.env).num_minibatches
    trials = args.meta_batch_size * args.episodes
    if trials < num_minibatches:
        parser.error(f"--meta-batch-size {args.meta_batch_size} x --episodes {args.episodes} "
                     f"gives RL² {trials} trial(s) per meta-iteration, fewer than the "
                     f"num_minibatches={num_minibatches} of its shipped config; choose sizes "
                     f"whose product is at least {num_minibatches}")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="navigation_2d")
    parser.add_argument("--meta-batch-size", type=positive_int, default=20)
    parser.add_argument("--episodes", type=positive_int, default=20)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args()
    check_rl2_trials(parser, args)
    torch.set_num_threads(args.threads)
    trainers = {method: build(method, args) for method in METHODS}
    try:
        wall, cpu = common.steps_in_turns(trainers, args.rounds)
    finally:
        for trainer in trainers.values():
            trainer.close()
    reference = wall["maml_trpo"]
    result = {"env": args.env, "meta_batch_size": args.meta_batch_size,
              "episodes_per_task": 2 * args.episodes, "rounds": args.rounds,
              "machine": common.machine(), "methods": {}}
    print(f"{'method':<10}{'s/iteration':>14}{'cpu s':>10}{'x MAML-TRPO':>13}")
    for method in METHODS:
        seconds, cpu_s = wall[method], cpu[method]
        result["methods"][method] = {"seconds_per_iteration": round(seconds, 3),
                                     "cpu_seconds_per_iteration": round(cpu_s, 3),
                                     "ratio_to_maml_trpo": round(seconds / reference, 3)}
        print(f"{method:<10}{seconds:>14.3f}{cpu_s:>10.3f}{seconds / reference:>13.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
