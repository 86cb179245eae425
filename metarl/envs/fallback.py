"""Batched API for plug-in families without a batched form: a loop over N single envs.

:class:`LoopBatchedEnv` gives any Gymnasium env with ``sample_tasks``/``set_task`` the
interface of the built-in batched classes (``set_tasks``, ``reset(seeds)``, ``step``,
``info["non_finite"]``, horizon truncation, masking of finished instances), so the
sampler needs no special case. It steps the envs one after another in Python: correct
and general, but a family that needs speed should provide a batched class (see
:mod:`metarl.envs.protocol`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs.base import BatchedEnvBase, NotATaskFamilyError, family_code, short_repr


class LoopBatchedEnv(BatchedEnvBase):
    """N single task envs behind the batched API.

    Args:
        make_env: builds one single env (called ``num_envs`` times).
        num_envs: number of instances.
        horizon: steps per episode; default: the env's ``horizon`` attribute, else its
            registration's ``max_episode_steps``.
        family: the family's name in error messages (default: the env's class name).
    """

    horizon = 0  # set per instance in __init__
    parallel_step = True  # each step is N Python env steps

    def __init__(self, make_env: Callable[[], gym.Env], num_envs: int, *,
                 horizon: int | None = None, num_threads: int | None = None,
                 truncate: bool = True, mask_done: bool = True, family: str | None = None):
        del num_threads  # the loop runs on the calling thread
        self.envs = [make_env() for _ in range(num_envs)]
        env = self.envs[0]
        self.family = family or type(env.unwrapped).__name__
        if horizon is None:
            horizon = getattr(env.unwrapped, "horizon", None) or (
                env.spec.max_episode_steps if env.spec is not None else None)
        if horizon is None:
            raise NotATaskFamilyError(f"{self.family} has no horizon: give the env class a "
                                      "`horizon` attribute (the steps of one episode), or "
                                      "register it with max_episode_steps")
        super().__init__(num_envs, horizon=int(horizon), truncate=truncate, mask_done=mask_done)
        if not isinstance(env.observation_space, gym.spaces.Box) or not isinstance(
                env.action_space, gym.spaces.Box):
            raise NotATaskFamilyError(f"{self.family}: batched sampling needs Box observation and action "
                            f"spaces, got {env.observation_space} and {env.action_space}")
        self.observation_size = int(np.prod(env.observation_space.shape))
        self.action_size = int(np.prod(env.action_space.shape))
        self.action_low = env.action_space.low.astype(np.float64).ravel()
        self.action_high = env.action_space.high.astype(np.float64).ravel()
        self._action_shape = env.action_space.shape
        self._action_dtype = env.action_space.dtype

    def _apply_tasks(self, tasks: list[dict]) -> None:
        with family_code(self.family, "set_task"):
            for env, task in zip(self.envs, tasks):
                env.unwrapped.set_task(task)

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        if self.tasks is None:
            raise RuntimeError(f"{type(self).__name__}: call set_tasks(tasks) before reset()")
        if seeds is not None and len(seeds) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} seeds, got {len(seeds)}")
        seeds = [None] * self.num_envs if seeds is None else [int(s) for s in seeds]
        self._seeds = seeds
        return self._reset_with(None)

    def _reset_instances(self, rngs) -> np.ndarray:
        with family_code(self.family, "reset"):
            results = [env.reset(seed=seed) for env, seed in zip(self.envs, self._seeds)]
        if any(not isinstance(r, tuple) or len(r) != 2 for r in results):
            raise NotATaskFamilyError(f"{self.family}: reset must return (obs, info) as "
                                      f"Gymnasium's API does, got {_shape_of(results)}")
        return self._observations([r[0] for r in results], "reset")

    def step(self, actions: np.ndarray):
        """As :meth:`BatchedEnvBase.step`; an env's own truncation also ends its episode."""
        self._env_truncated = np.zeros(self.num_envs, dtype=bool)
        obs, reward, terminated, truncated, info = super().step(actions)
        truncated |= self._env_truncated
        self._done |= truncated
        return obs, reward, terminated, truncated, info

    def _step_active(self, actions: np.ndarray, index):
        rows = range(self.num_envs)[index] if isinstance(index, slice) else index
        results = []
        try:
            with family_code(self.family, "step"):  # the family's code; what it returned: below
                for action, i in zip(actions, rows):
                    action = action.reshape(self._action_shape).astype(self._action_dtype)
                    results.append(self.envs[i].step(action))
        except NotATaskFamilyError as error:
            if _old_gym_step(error.__cause__):
                raise NotATaskFamilyError(
                    f"{self.family}: step returned 4 values, the old gym API's (obs, reward, "
                    f"done, info); Gymnasium's step returns 5: (obs, reward, terminated, "
                    f"truncated, info)") from error.__cause__
            raise
        obs, reward, terminated, non_finite = [], [], [], []
        for result, i in zip(results, rows):
            if not isinstance(result, tuple) or len(result) != 5:
                raise NotATaskFamilyError(
                    f"{self.family}: step must return (obs, reward, terminated, truncated, "
                    f"info) as Gymnasium's API does, got {_shape_of(result)}")
            o, r, term, trunc, info = result
            if not isinstance(info, Mapping):
                raise NotATaskFamilyError(f"{self.family}: step returned info "
                                          f"{short_repr(info)}; info must be a dict")
            obs.append(o)
            reward.append(self._reward(r))
            terminated.append(bool(term))
            non_finite.append(bool(info.get("non_finite", False)))
            self._env_truncated[i] = bool(trunc)
        info = {"non_finite": np.array(non_finite, dtype=bool)}
        return (self._observations(obs, "step"), np.array(reward, dtype=np.float64),
                np.array(terminated, dtype=bool), info)

    def _reward(self, value: Any) -> float:
        """A reward a step returned, as a float; ``NotATaskFamilyError`` unless it is one real
        number (a Python or numpy scalar, a bool such as ``dist < 0.1``, or an array of one
        value with no axes)."""
        array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
        if array is None or array.shape != () or array.dtype.kind not in "biuf":
            raise NotATaskFamilyError(f"{self.family}: step returned the reward "
                                      f"{short_repr(value)}; a reward must be one real number")
        return float(array)

    def _observations(self, obs: list, method: str) -> np.ndarray:
        """The instances' observations ``[k, observation_size]``; a ``NotATaskFamilyError``
        naming ``method`` when one does not hold the observation space's number of values."""
        flat = [np.ravel(np.asarray(o, dtype=np.float64)) for o in obs]
        sizes = {f.size for f in flat}
        if sizes != {self.observation_size}:
            raise NotATaskFamilyError(
                f"{self.family}: {method} returned observations of {sorted(sizes)} values; its "
                f"observation_space holds {self.observation_size}")
        return np.stack(flat)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _old_gym_step(error: BaseException | None) -> bool:
    """Whether ``error`` is Gymnasium's ``TimeLimit`` (the wrapper ``make`` adds) failing to
    unpack a step that returned the old gym API's 4-tuple."""
    return isinstance(error, ValueError) and "expected 5, got 4" in str(error)


def _shape_of(value) -> str:
    """``value`` described for an error: its type and, for a tuple, its length."""
    if isinstance(value, list):  # one result per instance: describe a wrong one
        value = next((v for v in value if not isinstance(v, tuple) or len(v) != 2), value[0])
    return (f"a tuple of {len(value)} values" if isinstance(value, tuple)
            else type(value).__name__)
