"""Plug-in families with one fault each, for the tests of how the sampler and the CLI refuse them.

Importable as ``faulty_families:NAME`` once this folder is on sys.path (worker processes
import a plug-in by that name). Every one has a single task ``{"target": 0.0}``.

- ``DivergingLine``: its observation becomes NaN at the third step when the target is positive.
- ``UnboundedLine``: its actions are unbounded (no [-1, 1] -> [low, high] map).
- ``MismatchedLine``: its batched form observes two numbers, its single env one.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from metarl.envs.fallback import LoopBatchedEnv


class DivergingLine(gym.Env):
    horizon = 20
    obs_size = 1

    def __init__(self, task: dict | None = None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.obs_size,),
                                                dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.task = task or {"target": 0.0}

    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": 0.0}] * n

    def set_task(self, task: dict) -> None:
        self.task = dict(task)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(self.obs_size), {}

    def step(self, action):
        self._t += 1
        value = np.nan if self._t == 3 and self.task["target"] > 0 else float(self._t)
        return np.full(self.obs_size, value), -1.0, False, False, {}


class UnboundedLine(DivergingLine):
    def __init__(self, task: dict | None = None):
        super().__init__(task)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)


class WideLine(DivergingLine):
    obs_size = 2


class MismatchedLine(DivergingLine):
    @staticmethod
    def batched_cls(num_envs, *, num_threads=None, horizon=None):
        return LoopBatchedEnv(WideLine, num_envs, horizon=horizon or DivergingLine.horizon)
