"""``evaluate`` for RL² runs: the return in each episode of a trial on held-out tasks.

RL² adapts by remembering, with no gradient step (Duan et al. 2016): its adaptation curve is the
mean return of episode k = 0 .. J-1 of a trial (``episodes_per_trial`` = J), episode 0 knowing
nothing of the task and each later one what the trial has shown so far. Per held-out task the
return of episode k is averaged over the run's ``trials_per_task`` trials; the curve's mean and
95% CI are over tasks, written through ``metarl.evaluation.report`` (x axis: the episodes of the
trial).

The held-out tasks are those a MAML-TRPO run of the same family and seed is evaluated on
(``metarl.rl.evaluate``): ``family.sample_tasks(num_tasks, seed=seed + EVALUATION_SEED_OFFSET)``,
40 by default; the trials' seeds come from ``derive_seed(seed + EVALUATION_SEED_OFFSET, 0,
"valid")``, the stream MAML-TRPO's evaluation samples its step-0 episodes from. Sampling runs
on this machine's CPU whatever ``--device`` says (there is no learner to move) and whichever
sampler the run trained with: in-process or over the run's ``num_workers`` processes, never
Ray (as MAML-TRPO's evaluation; the trials are the same from every sampler).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from metarl.checkpoint_format import check_run_state
from metarl.config import ConfigError, flag_name
from metarl.evaluation import EVALUATION_SEED_OFFSET, format_table, report
from metarl.evaluation_options import EvaluateOptions
from metarl.nonfinite import NonFiniteError
from metarl.rl.evaluate import log_curves
from metarl.rl.rl2 import CHECKPOINT_SCHEMA, build_policy, build_sampler
from metarl.rl.rl2_config import ARCHITECTURE_KEYS, RL2Config, task_family
from metarl.rl.trainer import derive_seed, env_sizes
from metarl.runs import check_compatible, load_state_dict_strict

#: Held-out tasks when ``--num-tasks`` is unset (MAML-TRPO's evaluation's 40).
DEFAULT_TASKS = 40
#: Options of a gradient-based evaluation that an RL² run has no use for: it takes no
#: adaptation step, and its trials are the batch (``trials_per_task`` x ``episodes_per_trial``).
NOT_FOR_RL2 = ("steps", "later_lr_scale", "baselines", "baseline_iterations",
               "episodes_per_task", "env_steps_per_task", "pretrained", "oracle", "shots")
#: The label of the run's curve.
METHOD = "rl2"


def check_options(options: EvaluateOptions) -> None:
    """A ConfigError naming the options set that an RL² evaluation does not take."""
    given = [name for name in NOT_FOR_RL2  # 0 is given; --no-baselines (False) is not
             if getattr(options, name) is not None and getattr(options, name) is not False]
    if given:
        raise ConfigError(f"{', '.join(flag_name(name) for name in given)}: not for RL2 runs, "
                          "which adapt within a trial with no gradient step (their curve is the "
                          "return of each episode of the trial; --num-tasks, --seed, --env, "
                          "--output, --torch-threads and --device apply)")


def trial_returns(config: RL2Config, state: dict[str, Any], tasks: list[dict], seed: int
                  ) -> np.ndarray:
    """Mean return of episode k of the trials of each task, ``[tasks, J]`` (``trials_per_task``
    trials per task), of the policy in checkpoint ``state``. A policy that acts non-finitely,
    or an episode that ended at a state the env flagged non-finite, is a ``NonFiniteError``
    (its return stops there and could read better than a complete episode)."""
    family = task_family(config)
    policy = build_policy(config, *env_sizes(family))
    load_state_dict_strict(policy, state["policy"], source="the evaluated checkpoint")
    with build_sampler(config, family, num_tasks=len(tasks)) as sampler:
        trials = sampler.sample(tasks, policy, seed)
    if not bool(np.isfinite(trials.actions.numpy()).all()):
        raise NonFiniteError("the policy's actions on the held-out tasks are non-finite")
    if bool(trials.non_finite.any()):
        raise NonFiniteError(f"{int(trials.non_finite.sum())} episodes on the held-out tasks "
                             "ended at a state the env flagged non-finite; no score is given")
    return trials.returns_per_episode().numpy().T.astype(np.float64)


def evaluate_rl2(config: RL2Config, state: dict[str, Any], out_dir: Path,
                 options: EvaluateOptions, *, source: str) -> dict[str, Any]:
    """The within-trial curve of the RL² run ``config`` saved in ``state``: curve.json, .csv,
    per_task.csv, .png and TensorBoard events in ``out_dir``; returns the JSON."""
    check_options(options)
    check_run_state(state, source=source, algo="rl2", schema=CHECKPOINT_SCHEMA)
    check_compatible(state["config"], dataclasses.asdict(config), ARCHITECTURE_KEYS,
                     source=source)
    num_tasks = options.num_tasks or DEFAULT_TASKS
    seed = config.seed if options.seed is None else options.seed
    tasks = task_family(config).sample_tasks(num_tasks, seed=seed + EVALUATION_SEED_OFFSET)
    returns = trial_returns(config, state, tasks,
                            derive_seed(seed + EVALUATION_SEED_OFFSET, 0, "valid"))
    curves = {METHOD: returns}
    log_curves(out_dir, curves)
    iteration = int(state["iteration"])
    meta = {"env": config.env, "method": METHOD, "num_tasks": num_tasks,
            "episodes_per_trial": config.episodes_per_trial,
            "trials_per_task": config.trials_per_task, "seed": seed, "run_seed": config.seed,
            "iteration": iteration, "hidden_size": config.hidden_size,
            "normalize_actions": config.normalize_actions,
            "steps": config.episodes_per_trial - 1}
    result = report(out_dir, curves, metric="mean return", table_metric="return", meta=meta,
                    title=f"{config.env}: RL2 on held-out tasks ({num_tasks} tasks, 95% CI)",
                    iterations=iteration, tasks=tasks, x_label="episodes of the trial")
    # the files keep the column "step" (what compare_rl.py reads beside MAML's curves); the
    # printed table says what a point is: an episode of the trial
    result["table"] = format_table(curves, metric="return", x_name="episode")
    return result
