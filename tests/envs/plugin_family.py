"""A plug-in task family for the tests: not a built-in, no batched form.

A point on a line moves towards a target ``{"target": t}``, t ~ U[-1, 1]:
``x' = x + clip(a, -0.2, 0.2)``, reward ``-|x' - t|``, terminated when ``|x' - t| < 0.05``,
horizon 30. Importable as ``plugin_family:LineTargetEnv`` once this folder is on sys.path.
``LineTargetEnv`` is the minimal plug-in (no batched form); ``BatchedLineTarget`` +
``LineTargetFromBatch`` are the same family written with the optional batched form.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from metarl.envs.base import BatchedEnvBase, BatchOfOneEnv
from metarl.envs.tasks import TaskSpace, Uniform


class LineTargetEnv(gym.Env):
    horizon = 30

    def __init__(self, task: dict | None = None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-0.2, 0.2, shape=(1,), dtype=np.float32)
        self.task = {"target": 0.5}
        if task is not None:
            self.set_task(task)
        self._x = 0.0

    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": t} for t in self.np_random.uniform(-1.0, 1.0, size=n).tolist()]

    def set_task(self, task: dict) -> None:
        if set(task) != {"target"} or not -1.0 <= float(task["target"]) <= 1.0:
            raise ValueError(f"task must be {{'target': float in [-1, 1]}}, got {task!r}")
        self.task = {"target": float(task["target"])}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._x = float(self.np_random.uniform(-0.1, 0.1))  # uses the seeded generator
        return np.array([self._x]), {}

    def step(self, action):
        self._x += float(np.clip(action[0], -0.2, 0.2))
        distance = abs(self._x - self.task["target"])
        return np.array([self._x]), -distance, distance < 0.05, False, {}


class BatchedLineTarget(BatchedEnvBase):
    """The same family written once in batched form (the fast path of the protocol)."""

    family = "line_target_batched"
    task_space = TaskSpace("line_target_batched", {"target": Uniform(-1.0, 1.0)})
    horizon = 30
    observation_size = 1
    action_size = 1
    action_low = np.array([-0.2])
    action_high = np.array([0.2])

    def __init__(self, num_envs, *, num_threads=None, horizon=None, **kwargs):
        super().__init__(num_envs, horizon=horizon, **kwargs)

    def _apply_tasks(self, tasks):
        self._target = np.array([task["target"] for task in tasks])

    def _reset_instances(self, rngs):
        self._x = np.array([rng.uniform(-0.1, 0.1) for rng in rngs])
        return self._x[:, None].copy()

    def _step_active(self, actions, index):
        self._x[index] += np.clip(actions[:, 0], -0.2, 0.2)
        distance = np.abs(self._x[index] - self._target[index])
        return self._x[index, None].copy(), -distance, distance < 0.05, {}


class LineTargetFromBatch(BatchOfOneEnv):
    """Its Gymnasium env: the batched class with one instance."""

    batched_cls = BatchedLineTarget
    horizon = 30
