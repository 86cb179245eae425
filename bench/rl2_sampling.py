"""Sampling one RL² meta-iteration: the recurrent trial sampler next to the feed-forward sampler.

    python bench/rl2_sampling.py --env cheetah_vel [--rounds 3] [--threads 1]

Both in this process, on the same env steps: K tasks x M trials x J episodes for
``metarl.rl.trial_sampler.TrialSampler`` (a GRU policy, ``--hidden-size``, carried across the
episodes of a trial) and K tasks x M·J episodes for ``metarl.rl.sampler.BatchedSampler`` (the
64-64 tanh Gaussian MLP, task-stacked parameters, as MAML-TRPO samples). Defaults: the shipped
``experiments/rl2/{env}.yaml`` sizes (navigation_2d 20 x 20 x 2, MuJoCo families 40 x 20 x 2:
MAML-TRPO's episodes per meta-iteration). One warm-up call each, then alternating rounds; the
medians and ``ratio = recurrent / feed-forward`` are reported. The last printed line is one
JSON object.

The trial sampler takes J·H lock-step steps of K·M rows where the feed-forward sampler takes H
steps of K·M·J rows (a trial's episodes follow one another). Where a step costs its fixed
overhead and the policy's forward pass (navigation_2d: no physics) the ratio is J times the
cost of one step of K·M rows with the GRU against one of K·M·J rows with the MLP
(``per_step_ratio``: the ratio divided by J); where the physics dominates (MuJoCo), the same
per env step in either, it tends to 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import common  # noqa: F401  bench/common.py: the allocator settings of training
import torch

from metarl import envs
from metarl.core.maml import stack_params
from metarl.rl.policy import GaussianMLPPolicy
from metarl.rl.recurrent_policy import GRUGaussianPolicy
from metarl.rl.sampler import BatchedSampler, PolicySpec
from metarl.rl.trial_sampler import TrialSampler
from metarl.scripts import positive_int, run_script

DEFAULT_SIZES = {"navigation_2d": (20, 20, 2)}  # (tasks, trials, episodes); others (40, 20, 2)


def sizes(args) -> tuple[int, int, int]:
    """(tasks, trials per task, episodes per trial): each flag given, else the env's
    default."""
    given = (args.tasks, args.trials, args.episodes)
    defaults = DEFAULT_SIZES.get(args.env, (40, 20, 2))
    return tuple(default if value is None else value for value, default in zip(given, defaults))


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="navigation_2d")
    parser.add_argument("--tasks", type=positive_int, default=None,
                        help="default: 20 for navigation_2d, else 40")
    parser.add_argument("--trials", type=positive_int, default=None, help="default: 20")
    parser.add_argument("--episodes", type=positive_int, default=None,
                        help="episodes per trial (default: 2)")
    parser.add_argument("--hidden-size", type=positive_int, default=64)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="physics threads of each env")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks_n, trials, episodes = sizes(args)
    family = envs.resolve(args.env)
    normalize = args.env == "navigation_2d"
    tasks = family.sample_tasks(tasks_n, seed=0)
    recurrent = TrialSampler(family, num_tasks=tasks_n, trials_per_task=trials,
                             episodes_per_trial=episodes, normalize_actions=normalize,
                             num_threads=args.threads)
    torch.manual_seed(0)
    gru = GRUGaussianPolicy(recurrent.obs_size, recurrent.act_size, args.hidden_size)
    spec = PolicySpec(recurrent.obs_size, recurrent.act_size, (64, 64),
                      normalize_actions=normalize)
    feed_forward = BatchedSampler(family, spec, num_tasks=tasks_n,
                                  episodes_per_task=trials * episodes, num_threads=args.threads)
    mlp = GaussianMLPPolicy(spec.obs_size, spec.act_size, spec.hidden_sizes)
    params = stack_params({k: v.detach() for k, v in mlp.named_parameters()}, tasks_n)

    def run_recurrent(seed: int) -> int:
        return recurrent.sample(tasks, gru, seed).num_steps

    def run_feed_forward(seed: int) -> int:
        return feed_forward.sample(tasks, params, seed).num_steps

    times: dict[str, list[float]] = {"recurrent": [], "feed_forward": []}
    steps = {}
    run_recurrent(0)  # warm-up
    run_feed_forward(0)
    for r in range(args.rounds):
        for name, run in (("recurrent", run_recurrent), ("feed_forward", run_feed_forward)):
            start = time.perf_counter()
            steps[name] = run(r + 1)
            times[name].append(time.perf_counter() - start)
    recurrent.close()
    feed_forward.close()
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {"bench": "rl2_sampling", "env": args.env, "tasks": tasks_n, "trials": trials,
              "episodes_per_trial": episodes, "horizon": family.horizon,
              "hidden_size": args.hidden_size, "physics_threads": args.threads,
              "recurrent_s": round(medians["recurrent"], 4),
              "feed_forward_s": round(medians["feed_forward"], 4),
              "ratio": round(medians["recurrent"] / medians["feed_forward"], 3),
              "per_step_ratio": round(medians["recurrent"] / medians["feed_forward"]
                                      / episodes, 3),
              "env_steps": steps, "rounds": args.rounds, "machine": platform.machine(),
              "python": platform.python_version(), "torch": torch.__version__}
    print(f"{args.env}: recurrent {medians['recurrent']:.3f} s, feed-forward "
          f"{medians['feed_forward']:.3f} s per meta-iteration's sampling "
          f"(ratio {result['ratio']:.2f})")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
