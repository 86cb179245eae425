"""How long a randomly acting ant stays within its healthy height, by action noise and clock.

    python experiments/ant_survival.py [--sigmas 1 0.5 0.3] [--control-steps 0.02 0.05]
        [--episodes 30] [--seed 0] [--policies 1:1 0.3:1 0.3:0.01]

The ant families end an episode when the torso height leaves [0.2, 1.0] (docs/tasks.md).
A Gaussian policy starts by acting almost at random, with its initial standard deviation σ
(``--init-std``, 1.0 by default as in rllab). This script plays episodes of 200 actions
drawn from N(0, σ²) (clipped to the action bounds) on the ant model of ``metarl.envs.ant``, each
action held for one control step (Gymnasium v5: 0.05 s, five 0.01 s physics steps; rllab's
ant of the MAML paper: 0.02 s), from the same kind of perturbed start, and prints per σ and
control step the mean and median episode length and the share of episodes that last all 200
steps, as a Markdown table.

``--policies STD:SCALE ...`` adds a second table: episodes of ``ant_dir`` (direction +1, the
env's own resets) played by freshly initialised MAML-TRPO policies (``build_policy``, 64-64
tanh, seed 0) with ``--init-std STD --init-mean-scale SCALE``, whose mean action also moves
the ant: with the default Xavier output layer it does so about as much as σ = 1 noise.
docs/results.md (ant_dir) quotes both tables.
"""

from __future__ import annotations

import argparse
import math
import sys

import mujoco
import numpy as np

from metarl.scripts import non_negative_int, positive_float, positive_int, run_script

HORIZON = 200
#: The most physics steps one action is held for (10 s of the model's 0.01 s timestep).
MAX_SUBSTEPS = 1000


def episode_length(model: mujoco.MjModel, data: mujoco.MjData, sigma: float, substeps: int,
                   rng: np.random.Generator) -> int:
    """Actions survived (1..HORIZON) by one episode of N(0, sigma²) actions."""
    from metarl.envs.ant import HEALTHY_Z_RANGE

    mujoco.mj_resetData(model, data)
    data.qpos[:] = model.qpos0 + rng.uniform(-0.1, 0.1, model.nq)
    data.qvel[:] = rng.normal(0.0, 0.1, model.nv)
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    for t in range(HORIZON):
        data.ctrl[:] = np.clip(rng.normal(0.0, sigma, model.nu), low, high)
        mujoco.mj_step(model, data, substeps)
        if not HEALTHY_Z_RANGE[0] <= data.qpos[2] <= HEALTHY_Z_RANGE[1]:
            return t + 1
    return HORIZON


def parse_policies(parser: argparse.ArgumentParser, pairs: list[str]) -> list[tuple[float, float]]:
    """``--policies`` as (init_std, init_mean_scale) pairs; a parser error naming a pair that is
    not STD:SCALE of finite numbers with STD > 0 and SCALE >= 0."""
    policies = []
    for pair in pairs:
        try:
            std, scale = (float(v) for v in pair.split(":"))
        except ValueError:
            parser.error(f"--policies {pair}: give STD:SCALE, e.g. 0.3:0.01")
        if not (math.isfinite(std) and math.isfinite(scale) and std > 0 and scale >= 0):
            parser.error(f"--policies {pair}: STD must be a finite number > 0 and SCALE a "
                         "finite number >= 0")
        policies.append((std, scale))
    return policies


def substeps_of(parser: argparse.ArgumentParser, steps: list[float],
                timestep: float) -> dict[float, int]:
    """Physics steps per action for each control step; a parser error naming a control step
    that is not a positive multiple of ``timestep`` (of at most MAX_SUBSTEPS steps)."""
    substeps = {}
    for step in steps:
        count = round(step / timestep) if math.isfinite(step) else 0
        if not 1 <= count <= MAX_SUBSTEPS or abs(count * timestep - step) > 1e-9:
            parser.error(f"--control-steps {step:g}: must be a positive multiple of the model's "
                         f"timestep {timestep:g} s, at most {MAX_SUBSTEPS * timestep:g} s")
        substeps[step] = count
    return substeps


def main(argv: list[str] | None = None) -> int:
    from metarl.envs.ant import ant_model

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", type=positive_float, nargs="+", default=[1.0, 0.5, 0.3],
                        help="standard deviations of the random actions, finite and > 0")
    parser.add_argument("--control-steps", type=float, nargs="+", default=[0.02, 0.05],
                        help="seconds each action is held (multiples of the 0.01 s timestep)")
    parser.add_argument("--episodes", type=positive_int, default=30)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--policies", nargs="*", default=[],
                        help="STD:SCALE pairs of --init-std and --init-mean-scale")
    args = parser.parse_args(argv)
    policies = parse_policies(parser, args.policies)
    model = ant_model()
    substeps = substeps_of(parser, args.control_steps, model.opt.timestep)
    data = mujoco.MjData(model)
    print("| control step (s) | σ | mean length | median length | full episodes |")
    print("|---|---|---|---|---|")
    for step, count in substeps.items():
        for sigma in args.sigmas:
            rng = np.random.default_rng(args.seed)
            lengths = np.array([episode_length(model, data, sigma, count, rng)
                                for _ in range(args.episodes)])
            print(f"| {step:g} | {sigma:g} | {lengths.mean():.0f} | {np.median(lengths):.0f} | "
                  f"{np.mean(lengths == HORIZON):.0%} |")
    if policies:
        print("\n| --init-std | --init-mean-scale | mean length | median length | full episodes |")
        print("|---|---|---|---|---|")
        for std, scale in policies:
            lengths = policy_lengths(std, scale, args.episodes, args.seed)
            print(f"| {std:g} | {scale:g} | {lengths.mean():.0f} | {np.median(lengths):.0f} | "
                  f"{np.mean(lengths == HORIZON):.0%} |")
    return 0


def policy_lengths(init_std: float, init_mean_scale: float, episodes: int,
                   seed: int) -> np.ndarray:
    """Episode lengths of ant_dir (direction +1) under a fresh policy of these settings."""
    import torch

    from metarl.envs.ant import AntDirEnv
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.trainer import build_policy

    config = MAMLTRPOConfig(env="ant_dir", init_std=init_std, init_mean_scale=init_mean_scale)
    env = AntDirEnv()
    env.set_task({"direction": 1.0})
    obs_size, act_size = env.observation_space.shape[0], env.action_space.shape[0]
    policy = build_policy(config, obs_size, act_size)
    generator = torch.Generator().manual_seed(seed)
    lengths = []
    with torch.no_grad():
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            length, terminated = 0, False
            while length < HORIZON and not terminated:
                mean, log_std = policy(torch.as_tensor(obs, dtype=torch.float32))
                action = mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
                obs, _, terminated, _, _ = env.step(action.numpy())
                length += 1
            lengths.append(length)
    env.close()
    return np.array(lengths)


if __name__ == "__main__":
    sys.exit(run_script(main))
