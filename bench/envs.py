"""Env-steps per second of a family's batched form, next to raw physics and SyncVectorEnv.

    python bench/envs.py --env cheetah_vel [--num-tasks 40] [--per-task 20] [--steps 100]
    python bench/envs.py --env ant_dir --env-option clock=paper      # another control clock
    python bench/envs.py --env ant_dir --compare-paper-clock         # v5's and the paper's

Measured in one process, with the same tasks, seeds and (uniform random) actions:

- ``batched``: ``envs.make_batched(NAME, N)``; counts the instance-steps actually taken
  (instances whose episode ended are not stepped);
- ``raw_physics`` (MuJoCo families): ``mujoco.rollout`` of the same compiled model, same
  batch, same thread pool size, ``frame_skip`` substeps per env-step, open loop (controls
  precomputed, no observations or rewards) -- the ceiling the batched form can approach;
- ``sync_vector``: ``gymnasium.vector.SyncVectorEnv`` over N single envs
  (``gymnasium.make(id, task=...)``), only the first ``--sync-steps`` steps of each round
  since it is slow.

Each step is timed for the three methods one after another (interleaved), and rates are
totals over ``--rounds`` rounds, so load from other processes affects all three alike. The
last printed line is one JSON object.

``--env-option KEY=VALUE`` (repeatable) builds the family with env options, as a run's
``--env-option`` does. ``--compare-paper-clock`` measures Gymnasium v5's clock and the MAML
paper's (``clock=paper``) in one run, their rounds alternating; the JSON line then holds one
result per clock (``v5``, ``paper``) and ``paper_over_v5``: the ratio of their env-steps per
second and of their simulated seconds per wall-clock second (an env-step of the paper's clock
simulates 0.01 s or 0.02 s, one of v5's 0.05 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np
import yaml

from metarl import envs
from metarl.allocator import tune_malloc
from metarl.scripts import non_negative_int, positive_int, run_script


class RawPhysics:
    """Bare ``mujoco.rollout`` on the batched env's model, batch size and thread count."""

    def __init__(self, physics):
        self.model, self.frame_skip = physics.model, physics.frame_skip
        self.num_envs, self.num_threads = physics.num_envs, physics.num_threads
        self.state = physics.state.copy()  # the batched env's reset states
        self.out_state = np.empty((self.num_envs, self.frame_skip, self.state.shape[1]))
        self.out_sensor = np.empty((self.num_envs, self.frame_skip, self.model.nsensordata))
        self.datas = [mujoco.MjData(self.model) for _ in range(max(1, self.num_threads))]
        self.models = [self.model] * self.num_envs
        self.rollout = mujoco.rollout.Rollout(
            nthread=self.num_threads if self.num_threads > 1 else 0)

    def step(self, control: np.ndarray) -> None:
        """One env-step of every instance; ``control [N, frame_skip, nu]`` precomputed."""
        self.rollout.rollout(
            self.models, self.datas, self.state, control, skip_checks=True,
            nstep=self.frame_skip, control_spec=int(mujoco.mjtState.mjSTATE_CTRL),
            state=self.out_state,
            sensordata=self.out_sensor if self.model.nsensordata else None,
            initial_warmstart=None, chunk_size=None)
        self.state = np.ascontiguousarray(self.out_state[:, -1])


def run_round(batch, family, tasks, actions, sync_steps):
    """One episode segment; returns ``{method: (env_steps, seconds)}``.

    Per step, the batched env, the raw physics and (first ``sync_steps`` steps) the
    SyncVectorEnv are timed one after another, so load from other processes hits all alike.
    """
    batch.set_tasks(tasks)
    batch.reset(seeds=range(len(tasks)))
    totals = {"batched": [0, 0.0], "raw": [0, 0.0], "sync": [0, 0.0]}
    raw = RawPhysics(batch.physics) if hasattr(batch, "physics") else None
    if raw is not None:
        controls = np.repeat(actions[:, :, None, :], raw.frame_skip, axis=2)
    sync = gym.vector.SyncVectorEnv(
        [lambda task=task: family.make(task=task) for task in tasks])
    sync.reset(seed=list(range(len(tasks))))
    for t, action in enumerate(actions):
        start = time.perf_counter()
        *_, info = batch.step(action)
        totals["batched"][0] += int(info["active"].sum())
        totals["batched"][1] += time.perf_counter() - start
        if raw is not None:
            control = np.ascontiguousarray(controls[t])
            start = time.perf_counter()
            raw.step(control)
            totals["raw"][0] += len(tasks)
            totals["raw"][1] += time.perf_counter() - start
        if t < sync_steps:
            sync_action = action.astype(sync.single_action_space.dtype)
            start = time.perf_counter()
            sync.step(sync_action)
            totals["sync"][0] += len(tasks)
            totals["sync"][1] += time.perf_counter() - start
    sync.close()
    if raw is not None:
        raw.rollout.close()
    return totals


def env_option(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> ``(key, value)``, the value read as a YAML scalar (as ``--env-option``
    of a run)."""
    key, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, yaml.safe_load(value)


class Clock:
    """One family with its env options: its batched env, actions and measured rounds."""

    def __init__(self, family, tasks, args):
        self.family = family
        self.batch = family.make_batched(len(tasks), num_threads=args.threads)
        rng = np.random.default_rng(args.seed)
        self.actions = rng.uniform(self.batch.action_low, self.batch.action_high,
                                   size=(args.steps, len(tasks), self.batch.action_size))
        self.rounds = []

    def result(self, args) -> dict:
        def rate(method):
            steps = sum(r[method][0] for r in self.rounds)
            seconds = sum(r[method][1] for r in self.rounds)
            return steps / seconds if steps else None

        batched, raw, sync = rate("batched"), rate("raw"), rate("sync")
        physics = getattr(self.batch, "physics", None)
        dt = getattr(self.batch, "dt", None)
        return {
            "env_options": self.family.env_options,
            "seconds_per_env_step": dt,
            "num_threads": physics.num_threads if physics is not None else 0,
            "batched_steps_per_s": round(batched),
            "simulated_s_per_s": round(batched * dt, 1) if dt else None,
            "raw_physics_steps_per_s": round(raw) if raw else None,
            "sync_vector_steps_per_s": round(sync) if sync else None,
            "ratio_vs_raw": round(batched / raw, 3) if raw else None,
            "ratio_vs_sync_vector": round(batched / sync, 2) if sync else None,
        }


def main() -> None:
    tune_malloc()  # the allocator settings of training (metarl.allocator)
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="task family, e.g. cheetah_vel")
    parser.add_argument("--num-tasks", type=positive_int, default=40)
    parser.add_argument("--per-task", type=positive_int, default=20)
    parser.add_argument("--steps", type=positive_int, default=100,
                        help="steps per batched round")
    parser.add_argument("--sync-steps", type=non_negative_int, default=10,
                        help="steps of SyncVectorEnv (0: not measured)")
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="physics threads (default: the CPUs available)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--env-option", type=env_option, action="append", default=[],
                        metavar="KEY=VALUE", help="an env option of the family, repeatable")
    parser.add_argument("--compare-paper-clock", action="store_true",
                        help="measure v5's clock and clock=paper in one run, alternating")
    args = parser.parse_args()

    family = envs.resolve(args.env).with_options(**dict(args.env_option))
    num_envs = args.num_tasks * args.per_task
    tasks = [t for t in family.sample_tasks(args.num_tasks, args.seed)
             for _ in range(args.per_task)]
    clocks = {"run": family}
    if args.compare_paper_clock:
        clocks = {"v5": family.with_options(clock="v5"), "paper": family.with_options(clock="paper")}
    measured = {name: Clock(each, tasks, args) for name, each in clocks.items()}
    for _ in range(args.rounds):  # the clocks' rounds alternate: load hits them alike
        for clock in measured.values():
            clock.rounds.append(run_round(clock.batch, clock.family, tasks, clock.actions,
                                          args.sync_steps))
    for clock in measured.values():
        clock.batch.close()
    results = {name: clock.result(args) for name, clock in measured.items()}

    result = {"env": args.env, "num_envs": num_envs, "steps": args.steps * args.rounds}
    if args.compare_paper_clock:
        v5, paper = results["v5"], results["paper"]
        result.update(results)
        result["paper_over_v5"] = {
            "env_steps_per_s": round(paper["batched_steps_per_s"] / v5["batched_steps_per_s"], 3),
            "simulated_s_per_s": round(paper["simulated_s_per_s"] / v5["simulated_s_per_s"], 3)}
    else:
        result.update(results["run"])
    result.update({
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),  # other work on the machine
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "mujoco": mujoco.__version__,
    })
    for name, each in results.items():
        print(f"{args.env} ({name} clock, {each['seconds_per_env_step']} s per step): batched "
              f"{each['batched_steps_per_s']} steps/s, raw physics "
              f"{each['raw_physics_steps_per_s']}, SyncVectorEnv "
              f"{each['sync_vector_steps_per_s']} ({num_envs} instances, "
              f"{each['num_threads']} threads)")
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
