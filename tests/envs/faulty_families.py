"""Plug-in families with one fault each, for the tests of how the sampler and the CLI refuse them.

Importable as ``faulty_families:NAME`` once this folder is on sys.path (worker processes
import a plug-in by that name). Tasks are ``{"target": t}``; ``sample_tasks(n)`` cycles through
the class's ``targets`` (``{"target": 0.0}`` only, unless a class says otherwise).

- ``DivergingLine``: its observation becomes NaN at the third step when the target is positive,
  without flagging it (a protocol fault); ``DivergingTasksLine`` draws such targets.
- ``FlaggedLine``: the same NaN, flagged with ``info["non_finite"] = True`` (a declared
  divergence: the episode ends there as terminated and counts as non-finite).
- ``NanRewardLine``: its reward is NaN at the second step, unflagged.
- ``NanResetLine``: ``reset`` returns a NaN observation.
- ``TooFewTasks``, ``NoTasks``, ``NoneTasks``, ``NotDictTasks``, ``RefusedTasks``:
  ``sample_tasks(n)`` returns ``n - 1`` tasks, ``[]``, ``None``, floats, or tasks that its own
  ``set_task`` refuses.
- ``RawBatchedLine``: ``DivergingTasksLine`` with a batched form of its own that returns the
  NaN unflagged (the sampler's check, not ``BatchedEnvBase``'s, finds it).
- ``UnboundedLine``: its actions are unbounded (no [-1, 1] -> [low, high] map).
- ``MismatchedLine``: its batched form observes two numbers, its single env one.
- ``CrashingBatchedLine``: its batched form raises in ``step`` (a worker's traceback).
- ``BrokenInit``, ``BrokenSampleTasks``, ``BrokenSetTask``, ``CrashingStep``: the family's own
  code raises (in ``__init__``, ``sample_tasks``, ``set_task``, ``step``).
- ``FourTupleStep``, ``WrongSizeStep``: ``step`` returns 4 values, or an observation of 3
  numbers where its space holds 1.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from metarl.envs.fallback import LoopBatchedEnv


class DivergingLine(gym.Env):
    horizon = 20
    obs_size = 1
    targets = (0.0,)

    def __init__(self, task: dict | None = None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(self.obs_size,),
                                                dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.task = task or {"target": 0.0}

    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": self.targets[i % len(self.targets)]} for i in range(n)]

    def set_task(self, task: dict) -> None:
        if not isinstance(task.get("target"), float):
            raise ValueError(f"task['target'] must be a float, got {task!r}")
        self.task = dict(task)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(self.obs_size), {}

    def step(self, action):
        self._t += 1
        value = np.nan if self._t == 3 and self.task["target"] > 0 else float(self._t)
        return np.full(self.obs_size, value), -1.0, False, False, {}


class DivergingTasksLine(DivergingLine):
    targets = (1.0, -1.0)


class FlaggedLine(DivergingTasksLine):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {"non_finite": bool(np.isnan(obs).any())}


class NanRewardLine(DivergingLine):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, (np.nan if self._t == 2 else -1.0), terminated, truncated, info


class NanResetLine(DivergingLine):
    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return np.full(self.obs_size, np.nan), info


class HugeObsLine(DivergingLine):  # finite, but inf once stored in the float32 buffers
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return np.full(self.obs_size, 1e300 if self._t == 2 else 0.0), reward, terminated, \
            truncated, info


class TooFewTasks(DivergingLine):
    def sample_tasks(self, n: int) -> list[dict]:
        return super().sample_tasks(n)[:-1]


class NoTasks(DivergingLine):
    def sample_tasks(self, n: int) -> list[dict]:
        return []


class NoneTasks(DivergingLine):
    def sample_tasks(self, n: int):
        return None


class NotDictTasks(DivergingLine):
    def sample_tasks(self, n: int):
        return [0.0] * n


class RefusedTasks(DivergingLine):
    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": "far"}] * n


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


class RawBatchedLine(DivergingTasksLine):
    """Its batched form, not derived from ``BatchedEnvBase``, returns the NaN unflagged."""

    @staticmethod
    def batched_cls(num_envs, *, num_threads=None, horizon=None):
        return _RawBatch(num_envs, horizon or DivergingLine.horizon)


class _RawBatch:
    """A minimal batched form written from the protocol alone (no masking, no checks)."""

    observation_size = action_size = 1
    action_low, action_high = np.array([-1.0]), np.array([1.0])

    def __init__(self, num_envs, horizon):
        self.num_envs, self.horizon = num_envs, horizon

    def set_tasks(self, tasks):
        self.targets = np.array([task["target"] for task in tasks])

    def reset(self, seeds=None):
        self.t = 0
        return np.zeros((self.num_envs, 1))

    def step(self, actions):
        self.t += 1
        obs = np.full((self.num_envs, 1), float(self.t))
        obs[(self.targets > 0) & (self.t == 3)] = np.nan
        n = self.num_envs
        return obs, -np.ones(n), np.zeros(n, bool), np.full(n, self.t >= self.horizon), {}

    def close(self):
        pass


class CrashingBatchedLine(DivergingTasksLine):
    """Its own batched form raises in ``step`` at the third step: an error of batched code,
    which a worker reports with its traceback."""

    @staticmethod
    def batched_cls(num_envs, *, num_threads=None, horizon=None):
        return _CrashingBatch(num_envs, horizon or DivergingLine.horizon)


class _CrashingBatch(_RawBatch):
    def step(self, actions):
        if self.t >= 2 and (self.targets > 0).any():  # before the NaN of step 3
            raise ValueError(f"boom at step {self.t + 1}")
        return super().step(actions)


class BrokenInit(DivergingLine):
    def __init__(self, task: dict | None = None):
        raise RuntimeError("no licence file")


class BrokenSampleTasks(DivergingLine):
    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": 0.0} for _ in range(n // 0)]


class BrokenSetTask(DivergingLine):
    def set_task(self, task: dict) -> None:
        raise AttributeError("'NoneType' object has no attribute 'target'")


class FourTupleStep(DivergingLine):
    def step(self, action):
        obs, reward, terminated, _, _ = super().step(action)
        return obs, reward, terminated, {}


class WrongSizeStep(DivergingLine):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return np.zeros(3), reward, terminated, truncated, info


class CrashingStep(DivergingLine):
    def step(self, action):
        raise KeyError("velocity")


class VectorReward(DivergingLine):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, np.array([-1.0, -2.0]), terminated, truncated, info


class NoneReward(DivergingLine):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, None, terminated, truncated, info


class ListInfo(DivergingLine):
    def step(self, action):
        obs, reward, terminated, truncated, _ = super().step(action)
        return obs, reward, terminated, truncated, []


class NoObservationSpace(DivergingLine):
    def __init__(self, task: dict | None = None):
        super().__init__(task)
        del self.observation_space


class ZeroHorizon(DivergingLine):
    horizon = 0


class TextHorizon(DivergingLine):
    horizon = "20"


class NotAnEnv:  # the two methods, but not a gymnasium.Env
    horizon = 20

    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": 0.0}] * n

    def set_task(self, task: dict) -> None:
        self.task = task


def not_a_class(task: dict | None = None):  # a factory: --env must name the class
    return DivergingLine(task)


class WordTasks(DivergingLine):  # fine for MAML; its oracle cannot observe a word
    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": 0.0, "corner": "ne"} for _ in range(n)]

    def set_task(self, task: dict) -> None:
        self.task = dict(task)


class RefusedDefaultTask(DivergingLine):  # its .task is one its own set_task refuses
    def __init__(self, task: dict | None = None):
        super().__init__(task)
        self.task = {"target": "unset"}


class KeyErrorSetTask(DivergingLine):
    def set_task(self, task: dict) -> None:
        self.goal = task["goal"]


class BoolReward(DivergingLine):  # a sparse reward written as a comparison: fine
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, np.bool_(self._t % 2 == 1), terminated, truncated, info
