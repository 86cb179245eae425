"""Seconds per MAML-TRPO meta-iteration and its split, next to raw physics.

    python bench/meta_iteration.py --env navigation_2d [--iterations 3] [--hvp-subsample 0.2]

Runs real meta-iterations of ``MetaRLTrainer`` with the shipped config
``experiments/maml_trpo/{env}.yaml`` (flags override it), after one warm-up iteration, and
reports medians: ``sampling_s`` (both meta-batches), ``adaptation_s`` (the inner step for the
post-update sampling), ``trpo_s`` (baselines, GAE, meta-gradient, conjugate gradient, line
search). For MuJoCo families ``raw_physics_s`` is bare ``mujoco.rollout`` of the same number of
env-steps (same batch size, same physics threads), measured in the same run. The last printed
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics

import common  # bench/common.py: bench/ is first on sys.path when run as a script


def main() -> None:
    from metarl import envs
    from metarl.config import resolve
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.trainer import MetaRLTrainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations")
    parser.add_argument("--hvp-subsample", type=float, default=None)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--meta-batch-size", type=int, default=None)
    parser.add_argument("--fast-batch-size", type=int, default=None)
    parser.add_argument("--curvature", default=None)
    parser.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args()
    flags = {k: v for k, v in vars(args).items()
             if k in ("hvp_subsample", "num_workers", "meta_batch_size", "fast_batch_size",
                      "curvature", "torch_threads") and v is not None}
    config = resolve(MAMLTRPOConfig, algo="maml_trpo", task=args.env, config_file=None,
                     flags={"env": args.env, **flags})

    rows = []
    with MetaRLTrainer(config) as trainer:
        trainer.step()  # warm-up: worker start, first allocations
        for _ in range(args.iterations):
            values = trainer.step()
            values["env_steps"] = values["time/sampling_s"] * values["time/env_steps_per_s"]
            rows.append(values)

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    env_steps = int(round(median("env_steps")))
    result = {
        "env": args.env,
        "seconds_per_iteration": round(median("time/iteration_s"), 4),
        "sampling_s": round(median("time/sampling_s"), 4),
        "adaptation_s": round(median("time/adaptation_s"), 4),
        "trpo_s": round(median("time/optimisation_s"), 4),
        "env_steps": env_steps,
        "raw_physics_s": None,
        "iterations": args.iterations,
        "meta_batch_size": config.meta_batch_size, "fast_batch_size": config.fast_batch_size,
        "hvp_subsample": config.hvp_subsample, "curvature": config.curvature,
        "cg_iters": config.cg_iters, "hidden_sizes": list(config.hidden_sizes),
        "num_workers": config.num_workers,
    }
    batch = envs.make_batched(args.env, 1)
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
    result.update(common.machine())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
