"""The plug-in protocol: what a task family must provide to be trained with metarl.

A task family is **a Gymnasium environment with two more methods** (:class:`TaskEnv`)::

    class MyTaskEnv(gymnasium.Env):
        horizon = 100                      # episode length (or register max_episode_steps)

        def __init__(self, task: dict | None = None, **kwargs): ...
        def sample_tasks(self, n: int) -> list[dict]:
            # draw from self.np_random so tasks are reproducible from the seed
            return [{"goal": g} for g in self.np_random.uniform(-1, 1, size=n).tolist()]
        def set_task(self, task: dict) -> None:
            # validate; raise ValueError naming the bad key/value and the valid range
            ...
        # plus the usual reset(seed=..., options=...) and 5-tuple step(action) (info a dict);
        # Box observation and action spaces set in __init__.

Tasks are plain dicts (JSON/YAML-friendly values) so they log, save and compare.
Observations and rewards must be finite and within float32's range (the episode buffers'
type; a larger number counts as non-finite), and a reward one real number: a step whose state diverged says so with
``info["non_finite"] = True`` (its episode then ends there as terminated and is counted as
non-finite in the run's logs and in ``evaluate``'s output). A ``sample_tasks`` that returns
anything but a list of ``n`` task dicts its ``set_task`` accepts, or NaN/inf from ``reset`` or
from an unflagged ``step``, stops a run with one line naming the family and the method
(``NotATaskFamilyError``). That is all a family needs: select it with

- ``--env package.module:MyTaskEnv`` (imported on demand), or
- a Gymnasium id after ``gymnasium.register(id="my/Task-v0", entry_point=...,
  max_episode_steps=100)``, or
- a short name after ``metarl.envs.register_family("my_task", MyTaskEnv)`` in your own code
  (also registers the Gymnasium id ``metarl/my_task-v0`` unless you give ``env_id``).

**Optional batched form** (:class:`BatchedTaskEnv`): a class that steps N instances, one
task each, in one call. Without one, :class:`metarl.envs.fallback.LoopBatchedEnv` loops over N
single envs behind the same interface; with one (``register_family(...,
batched=MyBatched)`` or a class attribute ``batched_cls = MyBatched`` on the env), the
sampler gets the fast path. Its constructor is ``MyBatched(num_envs, *, num_threads=None,
horizon=None)``; it must reset instance i exactly as the single env's
``reset(seed=seeds[i])`` and produce the same transitions. A class attribute
``parallel_step = True`` says its step is heavy work (physics) that the sampler should share
over worker processes by default.

**Env options** (``--env-option KEY=VALUE``, a run's ``env_options``): keyword arguments that
every constructor of the family gets, single and batched (``MyTaskEnv(gravity=9.8)``). The
names a family takes are those its batched (else single) class declares in a class attribute
``env_options = {"gravity": "a float > 0"}``, else its constructors' keyword parameters; any
other name stops a run in one line. A constructor refuses a bad value with
:class:`metarl.envs.base.EnvOptionError` (or any ``ValueError``, reported as the family's). Deriving from
:class:`metarl.envs.base.BatchedEnvBase` gives the bookkeeping (task validation, seeding,
truncation, masking, non-finite flags) for free, and :class:`metarl.envs.base.BatchOfOneEnv` then
makes the single Gymnasium env out of the batched class, so the family is written once
(as the built-ins are; ``tests/envs/plugin_family.py`` has a small example of both ways).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class TaskEnv(Protocol):
    """A Gymnasium env that is a distribution of tasks (checked on ``env.unwrapped``)."""

    def sample_tasks(self, n: int) -> list[dict]:
        """A list of exactly ``n`` task dicts drawn from the family's distribution with
        ``self.np_random``."""
        ...

    def set_task(self, task: dict) -> None:
        """Make ``task`` the current task; ``ValueError`` if malformed or out of range."""
        ...


@runtime_checkable
class BatchedTaskEnv(Protocol):
    """N instances of a family, each with its own task, stepped in one call.

    Shapes: ``obs [N, observation_size]`` float64, ``reward/terminated/truncated [N]``.
    """

    num_envs: int
    observation_size: int
    action_size: int
    action_low: np.ndarray
    action_high: np.ndarray
    horizon: int

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        """One task per instance, ``len(tasks) == num_envs``."""
        ...

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Reset all instances (instance i as the single env's ``reset(seed=seeds[i])``)."""
        ...

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, dict[str, np.ndarray]]:
        """``actions [N, action_size]`` -> ``(obs, reward, terminated, truncated, info)``.

        ``info["non_finite"] [N]`` flags instances whose state diverged (their episode is
        terminated, their obs/reward zeroed); any other NaN/inf after a finite action is a
        fault of the family. ``truncated`` is True at ``horizon`` steps. Instances whose
        episode ended are not stepped until the next reset.
        """
        ...

    def close(self) -> None:
        """Release resources such as thread pools."""
        ...


def parallel_step(env: BatchedTaskEnv) -> bool:
    """The batched env's optional class attribute ``parallel_step`` (default False): whether
    its step is heavy work that the sampler should share over worker processes by default
    (``BatchedEnvBase`` declares it; MuJoCo families and the loop fallback set it)."""
    return bool(getattr(env, "parallel_step", False))
