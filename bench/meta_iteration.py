"""Seconds per MAML-TRPO meta-iteration and its split, next to raw physics.

    python bench/meta_iteration.py --env navigation_2d [--iterations 3] [--hvp-subsample 0.2]
    python bench/meta_iteration.py --env ant_dir --compare-paper-clock --torch-threads 1

Runs real meta-iterations of ``MetaRLTrainer`` with the shipped config
``experiments/maml_trpo/{env}.yaml`` (flags override it), after one warm-up iteration, and
reports medians: ``sampling_s`` (both meta-batches), ``adaptation_s`` (the inner step for the
post-update sampling), ``trpo_s`` (baselines, GAE, meta-gradient, conjugate gradient, line
search). For MuJoCo families ``raw_physics_s`` is bare ``mujoco.rollout`` of the same number of
env-steps (same batch size, same physics threads), measured in the same run. The last printed
line is one JSON object.

``--env-option KEY=VALUE`` (repeatable) sets the run's env options. ``--compare-paper-clock``
builds two trainers, one on Gymnasium v5's clock and one on the MAML paper's
(``clock=paper``), and alternates their iterations (load hits both alike); the JSON line then
holds one result per clock (``v5``, ``paper``) and ``paper_over_v5``, the ratios of their
medians (seconds per iteration, sampling seconds, env-steps: the ant's episodes may end early).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys

import common  # bench/common.py: bench/ is first on sys.path when run as a script

from metarl.scripts import non_negative_int, positive_float, positive_int, run_script


def measure(trainer) -> dict:
    """One timed meta-iteration's values, with the env-steps it sampled."""
    values = trainer.step()
    values["env_steps"] = values["time/sampling_s"] * values["time/env_steps_per_s"]
    return values


def summary(config, rows: list[dict]) -> dict:
    """Medians over the timed iterations, and raw physics for the same env-steps."""
    from metarl.rl.config import task_family

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    env_steps = int(round(median("env_steps")))
    result = {
        "env_options": config.env_options,
        "seconds_per_iteration": round(median("time/iteration_s"), 4),
        "sampling_s": round(median("time/sampling_s"), 4),
        "adaptation_s": round(median("time/adaptation_s"), 4),
        "trpo_s": round(median("time/optimisation_s"), 4),
        "env_steps": env_steps,
        "raw_physics_s": None,
    }
    batch = task_family(config).make_batched(1)
    physics = getattr(batch, "physics", None)
    if physics is not None:
        num_envs = config.meta_batch_size * config.fast_batch_size
        steps = max(1, env_steps // num_envs)
        threads = common.machine()["cpus"]
        rate, _ = common.time_raw_physics(physics.model, num_envs, steps, physics.frame_skip,
                                          threads, seed=0)
        result["raw_physics_s"] = round(env_steps / rate, 4)
        result["ratio_to_raw_physics"] = round(result["seconds_per_iteration"]
                                               / result["raw_physics_s"], 3)
    batch.close()
    return result


def main() -> None:
    from metarl.config import resolve
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.trainer import MetaRLTrainer

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--iterations", type=positive_int, default=3, help="timed iterations")
    parser.add_argument("--hvp-subsample", type=positive_float, default=None)
    parser.add_argument("--num-workers", type=positive_int, default=None)
    parser.add_argument("--meta-batch-size", type=positive_int, default=None)
    parser.add_argument("--fast-batch-size", type=positive_int, default=None)
    parser.add_argument("--curvature", default=None)
    parser.add_argument("--torch-threads", type=non_negative_int, default=None,
                        help="PyTorch threads of the learner (0: PyTorch's default)")
    parser.add_argument("--env-option", action="append", default=None, metavar="KEY=VALUE",
                        help="an env option of the run, repeatable (as a run's)")
    parser.add_argument("--compare-paper-clock", action="store_true",
                        help="time v5's clock and clock=paper in one run, alternating")
    args = parser.parse_args()
    flags = {k: v for k, v in vars(args).items()
             if k in ("hvp_subsample", "num_workers", "meta_batch_size", "fast_batch_size",
                      "curvature", "torch_threads") and v is not None}
    if args.env_option:
        flags["env_options"] = args.env_option
    config = resolve(MAMLTRPOConfig, algo="maml_trpo", task=args.env, config_file=None,
                     flags={"env": args.env, **flags})
    configs = {"run": config}
    if args.compare_paper_clock:
        configs = {clock: dataclasses.replace(config, env_options={**config.env_options,
                                                                   "clock": clock})
                   for clock in ("v5", "paper")}

    trainers = {name: MetaRLTrainer(each) for name, each in configs.items()}
    rows: dict[str, list[dict]] = {name: [] for name in trainers}
    try:
        for trainer in trainers.values():
            trainer.step()  # warm-up: worker start, first allocations
        for _ in range(args.iterations):  # alternating: load hits every clock alike
            for name, trainer in trainers.items():
                rows[name].append(measure(trainer))
    finally:
        for trainer in trainers.values():
            trainer.close()
    results = {name: summary(configs[name], rows[name]) for name in trainers}

    result = {"env": args.env}
    if args.compare_paper_clock:
        v5, paper = results["v5"], results["paper"]
        result.update(results)
        result["paper_over_v5"] = {key: round(paper[key] / v5[key], 3) for key in (
            "seconds_per_iteration", "sampling_s", "trpo_s", "env_steps")}
    else:
        result.update(results["run"])
    result.update({
        "iterations": args.iterations,
        "meta_batch_size": config.meta_batch_size, "fast_batch_size": config.fast_batch_size,
        "hvp_subsample": config.hvp_subsample, "curvature": config.curvature,
        "cg_iters": config.cg_iters, "hidden_sizes": list(config.hidden_sizes),
        "num_workers": config.num_workers,
    })
    result.update(common.machine())
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
