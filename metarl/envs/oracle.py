"""Oracle families: every observation followed by its task's parameters (the oracle of docs/protocol.md).

The MAML paper measures adaptation against an *oracle*: a policy that receives the task as
input, trained on all tasks jointly. It needs no adaptation and bounds what a few gradient
steps can reach. The oracle of family ``NAME`` is the env name ``"NAME+oracle"`` (or
:func:`oracle_family`): the family's own tasks, rewards, resets and seeding, with each
observation followed by the instance's :func:`task_features`, the task dict's values flattened
in key order (``{"velocity": 1.3}`` -> ``[1.3]``, ``{"goal": [x, y]}`` -> ``[x, y]``). An oracle
episode is therefore the family's episode with longer observations, and the same seed draws the
same tasks, so oracle and MAML curves are measured on the same held-out tasks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs.base import NotATaskFamilyError, family_code
from metarl.envs.family import TaskFamily, UnknownEnvError
from metarl.envs.protocol import BatchedTaskEnv, parallel_step

ORACLE_SUFFIX = "+oracle"


def task_features(task: Mapping[str, Any], family: str = "the family") -> np.ndarray:
    """The task's values flattened in key order, float64: what the oracle observes. A task
    with no values or a value that is not numeric is the family's fault (``family`` names it):
    ``NotATaskFamilyError``."""
    oracle = family + ORACLE_SUFFIX
    if not isinstance(task, Mapping) or not task:
        raise NotATaskFamilyError(f"{oracle}: an oracle needs a non-empty task dict, got "
                                  f"{task!r}")
    try:
        return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in task.values()])
    except (TypeError, ValueError) as error:
        raise NotATaskFamilyError(f"{oracle}: an oracle observes numeric task values (numbers "
                                  f"or arrays of numbers); got task {task!r}") from error


@dataclass(frozen=True)
class OracleFamily(TaskFamily):
    """``inner`` with task features appended to its observations (see the module docstring)."""

    inner: TaskFamily | None = None

    @property
    def env_options(self) -> dict[str, Any]:
        """The inner family's bound env options."""
        return self.inner.env_options

    def with_options(self, **options: Any) -> OracleFamily:
        """The oracle of the inner family with ``options`` bound."""
        return oracle_family(self.inner.with_options(**options))

    def option_rules(self) -> dict[str, str] | None:
        return self.inner.option_rules()

    @property
    def feature_size(self) -> int:
        return task_features(self.inner.sample_tasks(1, seed=0)[0], self.inner.name).size

    def make(self, *, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
        return OracleEnv(self.inner, max_episode_steps=max_episode_steps, **kwargs)

    def make_batched(self, num_envs: int, *, num_threads: int | None = None,
                     horizon: int | None = None, **kwargs: Any) -> BatchedTaskEnv:
        batch = self.inner.make_batched(num_envs, num_threads=num_threads, horizon=horizon,
                                        **kwargs)
        return OracleBatchedEnv(batch, self.feature_size)

    def sample_tasks(self, n: int, seed: int) -> list[dict]:
        """The inner family's tasks: the same seed draws the same tasks."""
        return self.inner.sample_tasks(n, seed)


def oracle_family(family: TaskFamily) -> OracleFamily:
    """The oracle of ``family`` (the family resolved from ``"NAME+oracle"``)."""
    if isinstance(family, OracleFamily):
        raise UnknownEnvError(f"unknown env {family.name + ORACLE_SUFFIX!r}: {family.name!r} "
                              "is already an oracle family")
    return OracleFamily(family.name + ORACLE_SUFFIX, None, None, None, family.horizon,
                        inner=family)


class OracleBatchedEnv:
    """A batched env whose observations end with each instance's task features.

    Other attributes (``physics``, ``tasks``, ...) are the wrapped env's; so is its
    ``parallel_step``.
    """

    def __init__(self, inner: BatchedTaskEnv, feature_size: int):
        self.inner = inner
        self.parallel_step = parallel_step(inner)
        self.feature_size = int(feature_size)
        self.observation_size = inner.observation_size + self.feature_size
        self._features: np.ndarray | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        self.inner.set_tasks(tasks)
        validated = getattr(self.inner, "tasks", None) or list(tasks)
        family = str(getattr(self.inner, "family", "the family"))
        features = [task_features(task, family) for task in validated]
        if any(f.size != self.feature_size for f in features):
            sizes = sorted({f.size for f in features})
            raise NotATaskFamilyError(
                f"{family}{ORACLE_SUFFIX}: oracle observations have {self.feature_size} task "
                f"features, but these tasks give {sizes}: every task of a family must have the "
                "same keys and shapes")
        self._features = np.stack(features)

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        if self._features is None:
            raise RuntimeError("OracleBatchedEnv: call set_tasks(tasks) before reset()")
        return self._observe(self.inner.reset(seeds))

    def step(self, actions: np.ndarray):
        obs, reward, terminated, truncated, info = self.inner.step(actions)
        return self._observe(obs), reward, terminated, truncated, info

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> OracleBatchedEnv:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, self._features], axis=1)


class OracleEnv(gym.Env):
    """The single Gymnasium env of an oracle family: ``inner``'s env (with its time limit)
    observing the task too. Without ``task``, the inner env's current task (or, if it does
    not expose one as ``.task``, the first task of seed 0) until :meth:`set_task`."""

    metadata = {"render_modes": []}

    def __init__(self, inner: TaskFamily, *, task: dict | None = None,
                 max_episode_steps: int | None = None, **kwargs: Any):
        self.env = inner.make(max_episode_steps=max_episode_steps, **kwargs)
        self.horizon = inner.horizon
        base = self.env.unwrapped
        self.family = inner.name
        start = task if task is not None else getattr(base, "task", None)
        if task is not None:  # the caller's task: a refusal is the caller's
            self.set_task(task)
        else:
            with family_code(inner.name, "set_task"):  # the env's own .task may be refused
                self.set_task(start if start else inner.sample_tasks(1, seed=0)[0])
        space = self.env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"an oracle needs a Box observation space; {inner.name} has {space}")
        size = int(np.prod(space.shape)) + self._features.size
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float64)
        self.action_space = self.env.action_space

    def sample_tasks(self, n: int) -> list[dict]:
        """``n`` tasks of the inner family, drawn with this env's ``np_random``."""
        base = self.env.unwrapped
        base.np_random = self.np_random
        return base.sample_tasks(n)

    def set_task(self, task: dict) -> None:
        base = self.env.unwrapped
        base.set_task(task)
        self.task = dict(getattr(base, "task", None) or task)
        self._features = task_features(self.task, self.family)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
            options = {k: v for k, v in options.items() if k != "task"}
        obs, info = self.env.reset(seed=seed, options=options or None)
        return self._observe(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._observe(obs), reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()
        super().close()

    def _observe(self, obs) -> np.ndarray:
        return np.concatenate([np.ravel(np.asarray(obs, dtype=np.float64)), self._features])
