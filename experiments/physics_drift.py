"""Whether two installs simulate the MuJoCo families alike: one fixed rollout per family and clock.

    python experiments/physics_drift.py OUT.npz [--families cheetah_vel ...]   # record
    python experiments/physics_drift.py --compare A.npz B.npz   # compare two records

Each record plays, for every built-in MuJoCo family on Gymnasium v5's clock and on the paper's
(``clock=paper``), one episode of up to 200 actions drawn uniformly from the action bounds (numpy
seed 0) from ``reset(seed=0)`` with the family's first task of ``sample_tasks(1, seed=0)``, and
saves the observations, the rewards and the MuJoCo version. ``--compare`` prints, per family and
clock, the largest observation difference after 1, 10 and 30 actions, the two episodes' lengths
and returns, as a Markdown table. Rollouts under random actions are chaotic: a difference of
rounding size (1e-15) after one action that grows later is the same physics; a larger one after
the first action is a change of the simulator. docs/results.md quotes the comparison of MuJoCo
3.17 and 4.0.
"""

from __future__ import annotations

import argparse

import mujoco
import numpy as np

from metarl import envs

FAMILIES = ("cheetah_vel", "cheetah_dir", "ant_vel", "ant_dir", "ant_goal")
CLOCKS = ("v5", "paper")
HORIZON = 200
CHECKPOINTS = (1, 10, 30)


def rollout(name: str, clock: str) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[1 + steps, obs]`` and rewards ``[steps]`` of the fixed episode."""
    family = envs.resolve(name).with_options(clock=clock)
    env = family.make()
    env.unwrapped.set_task(family.sample_tasks(1, seed=0)[0])
    obs, _ = env.reset(seed=0)
    actions = np.random.default_rng(0)
    observations, rewards = [obs], []
    for _ in range(HORIZON):
        obs, reward, terminated, truncated, _ = env.step(
            actions.uniform(env.action_space.low, env.action_space.high))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    env.close()
    return np.array(observations), np.array(rewards)


def record(path: str, families: tuple[str, ...] = FAMILIES) -> None:
    arrays = {"mujoco": np.array(mujoco.__version__), "families": np.array(families)}
    for name in families:
        for clock in CLOCKS:
            arrays[f"{name}:{clock}:obs"], arrays[f"{name}:{clock}:rewards"] = rollout(name, clock)
    np.savez(path, **arrays)
    print(f"recorded MuJoCo {mujoco.__version__} rollouts in {path}")


def compare(first: str, second: str) -> None:
    a, b = np.load(first), np.load(second)
    va, vb = str(a["mujoco"]), str(b["mujoco"])
    header = " | ".join(f"obs diff after {k}" for k in CHECKPOINTS)
    print(f"| family | clock | {header} | length {va} / {vb} | return {va} / {vb} |")
    print("|---|---|" + "---|" * (len(CHECKPOINTS) + 2))
    families = [name for name in a["families"] if name in set(b["families"])]
    if not families:
        raise SystemExit(f"{first} and {second} have no family in common")
    for name in families:
        for clock in CLOCKS:
            oa, ob = a[f"{name}:{clock}:obs"], b[f"{name}:{clock}:obs"]
            ra, rb = a[f"{name}:{clock}:rewards"], b[f"{name}:{clock}:rewards"]
            diffs = [f"{np.abs(oa[k] - ob[k]).max():.1e}" if k < min(len(oa), len(ob)) else "—"
                     for k in CHECKPOINTS]
            print(f"| {name} | {clock} | {' | '.join(diffs)} | {len(ra)} / {len(rb)} | "
                  f"{ra.sum():.1f} / {rb.sum():.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="record this install's rollouts to OUT.npz")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two records")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        help="families to record (default: all five)")
    args = parser.parse_args(argv)
    if (args.out is None) == (args.compare is None):
        parser.error("give OUT.npz to record, or --compare A.npz B.npz")
    if args.compare:
        compare(*args.compare)
    else:
        record(args.out, tuple(args.families))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
