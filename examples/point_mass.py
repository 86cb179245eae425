"""A complete plug-in task family: a 1-D point mass pushed to a target position.

Tasks differ in the goal *and* in the dynamics: ``{"target": x*, "mass": m}`` with
x* ~ U[-1, 1] and m ~ U[0.5, 2]. State (position x, velocity v); action: a force
f ∈ [-1, 1]; per step (dt = 0.1)::

    v' = 0.9 v + dt f / m,    x' = x + dt v'
    r  = -|x' - x*| - 0.01 f²

Observation (x, v); horizon 100; it never terminates. Train it with
``python -m metarl.run maml_trpo --env examples.point_mass:PointMassEnv`` (from the
repository root), or register a short name with ``metarl.envs.register_family``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

DT = 0.1


class PointMassEnv(gym.Env):
    """The single env; metarl steps N of them through its generic batched fallback."""

    horizon = 100

    def __init__(self, task: dict | None = None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.task = {"target": 0.5, "mass": 1.0}
        if task is not None:
            self.set_task(task)
        self._state = np.zeros(2)

    def sample_tasks(self, n: int) -> list[dict]:
        targets = self.np_random.uniform(-1.0, 1.0, size=n)
        masses = self.np_random.uniform(0.5, 2.0, size=n)
        return [{"target": float(t), "mass": float(m)} for t, m in zip(targets, masses)]

    def set_task(self, task: dict) -> None:
        if set(task) != {"target", "mass"}:
            raise ValueError(f"a point_mass task has keys target and mass, got {sorted(task)}")
        target, mass = float(task["target"]), float(task["mass"])
        if not -1.0 <= target <= 1.0 or not 0.5 <= mass <= 2.0:
            raise ValueError(f"target must be in [-1, 1] and mass in [0.5, 2], got {task}")
        self.task = {"target": target, "mass": mass}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._state = np.array([self.np_random.uniform(-0.05, 0.05), 0.0])
        return self._state.copy(), {}

    def step(self, action):
        force = float(np.clip(action[0], -1.0, 1.0))
        x, v = self._state
        v = 0.9 * v + DT * force / self.task["mass"]
        x = x + DT * v
        self._state = np.array([x, v])
        reward = -abs(x - self.task["target"]) - 0.01 * force**2
        return self._state.copy(), reward, False, False, {}
