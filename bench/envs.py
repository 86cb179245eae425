"""Env-steps per second of a family's batched form, next to raw physics and SyncVectorEnv.

    python bench/envs.py --env cheetah_vel [--num-tasks 40] [--per-task 20] [--steps 100]

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
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np

from metarl import envs
from metarl.allocator import tune_malloc


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
        [lambda task=task: gym.make(family.env_id, task=task) for task in tasks])
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


def main() -> None:
    tune_malloc()  # the allocator settings of training (metarl.allocator)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="task family, e.g. cheetah_vel")
    parser.add_argument("--num-tasks", type=int, default=40)
    parser.add_argument("--per-task", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100, help="steps per batched round")
    parser.add_argument("--sync-steps", type=int, default=10, help="steps of SyncVectorEnv")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="physics threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    family = envs.resolve(args.env)
    num_envs = args.num_tasks * args.per_task
    tasks = [t for t in family.sample_tasks(args.num_tasks, args.seed)
             for _ in range(args.per_task)]
    batch = family.make_batched(num_envs, num_threads=args.threads)
    rng = np.random.default_rng(args.seed)
    actions = rng.uniform(batch.action_low, batch.action_high,
                          size=(args.steps, num_envs, batch.action_size))
    threads = batch.physics.num_threads if hasattr(batch, "physics") else 0

    rounds = [run_round(batch, family, tasks, actions, args.sync_steps)
              for _ in range(args.rounds)]
    batch.close()

    def rate(method):
        steps = sum(r[method][0] for r in rounds)
        seconds = sum(r[method][1] for r in rounds)
        return steps / seconds if steps else None

    batched, raw, sync = rate("batched"), rate("raw"), rate("sync")
    result = {
        "env": args.env,
        "num_envs": num_envs,
        "num_threads": threads,
        "steps": args.steps * args.rounds,
        "batched_steps_per_s": round(batched),
        "raw_physics_steps_per_s": round(raw) if raw else None,
        "sync_vector_steps_per_s": round(sync),
        "ratio_vs_raw": round(batched / raw, 3) if raw else None,
        "ratio_vs_sync_vector": round(batched / sync, 2),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),  # other work on the machine
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "mujoco": mujoco.__version__,
    }
    print(f"{args.env}: batched {result['batched_steps_per_s']} steps/s, raw physics "
          f"{result['raw_physics_steps_per_s']}, SyncVectorEnv {result['sync_vector_steps_per_s']}"
          f" ({num_envs} instances, {threads} threads)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
