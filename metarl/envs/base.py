"""Shared machinery of the task families: the batched base class and the single env.

Every built-in family is written once, as a batched class deriving from
:class:`BatchedEnvBase` (N instances, one task each, stepped with array operations);
its Gymnasium environment is :class:`BatchOfOneEnv`, the same class run with N = 1.
Single and batched transitions therefore come from the same observation, reward and
reset-noise code.

:class:`BatchedEnvBase` does the bookkeeping that is the same for every family:

- ``set_tasks`` validates one task per instance against the family's ``task_space``;
- ``reset(seeds)`` gives instance i the generator ``np_random(seeds[i])``, the one a
  Gymnasium env gets from ``reset(seed=seeds[i])``;
- ``step`` counts steps per instance and reports ``truncated`` at the horizon; it skips
  instances whose episode has ended (``info["active"]`` is False, reward 0, observation
  repeated) until the next reset; any instance whose physics diverged (the subclass flags
  it in ``info["non_finite"]``) or whose action was non-finite is flagged in
  ``info["non_finite"]``, terminated, and its observation and reward are replaced by zeros so
  it cannot poison the batch. NaN/inf observations or rewards after a finite action that the
  subclass did not flag are a fault of the family: :class:`NotATaskFamilyError` naming it.

Subclasses implement ``_apply_tasks(tasks)``, ``_reset_instances(rngs) -> obs [N, obs]``
and ``_step_active(actions [k, act], index) -> (obs [k, obs], reward [k], terminated [k],
info {key: [k]})`` for the k active instances ``index`` (a slice when all are active).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from metarl.envs.tasks import TaskError, TaskSpace


class NotATaskFamilyError(ValueError):
    """An env that does not follow the task-family protocol (see ``metarl.envs.protocol``); raised
    with a one-line message saying what is missing (re-exported by ``metarl.envs.registry``)."""


class EnvOptionError(ValueError):
    """An env option (``--env-option KEY=VALUE``) that the family does not take, or a value it
    refuses; the one-line message names the option, the family and the valid options."""


def env_option_error(family: str, message: str, valid: Mapping[str, str] | None) -> EnvOptionError:
    """``EnvOptionError("{family}: {message}; valid env options: ...")`` listing ``valid``
    (option name -> what it takes), or saying the family takes none."""
    if valid:
        choices = "; ".join(f"{name} ({rule})" if rule else name for name, rule in valid.items())
        return EnvOptionError(f"{family}: {message}; valid env options: {choices}")
    return EnvOptionError(f"{family}: {message}; {family} takes no env options")


@contextlib.contextmanager
def family_code(family: str, method: str) -> Iterator[None]:
    """Run the family's own ``method`` (its ``__init__``, ``sample_tasks``, ``set_task``,
    ``reset`` or ``step``): whatever it raises becomes a :class:`NotATaskFamilyError` naming the
    family, the method and the error, so a plug-in that breaks is one line, not a traceback from
    inside the sampler (the original stays chained as ``__cause__``). A ``TaskError`` (a task
    the caller gave that the family refuses) and an ``EnvOptionError`` (an env option it
    refuses) pass as they are."""
    try:
        yield
    except (NotATaskFamilyError, TaskError, EnvOptionError, MemoryError):  # not the family's
        raise
    except Exception as error:  # the family's code, not ours: any failure is the family's
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise NotATaskFamilyError(f"{family}: {method} raised {type(error).__name__}"
                                  f"{': ' + detail[:200] if detail else ''}") from error


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` on one line (runs of whitespace, newlines included, become one space),
    cut to ``limit`` characters: a value a family returned, quoted in an error line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


#: The largest magnitude the episode buffers (float32) hold: a larger finite number would turn
#: into inf there, so the checks of a family's output treat it as non-finite.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def storable(values: np.ndarray) -> np.ndarray:
    """Elementwise: finite and within float32's range (NaN is not)."""
    return np.abs(values) <= FLOAT32_MAX


def non_finite_output_error(family: str, method: str, count: int, total: int, *,
                            at: np.ndarray | None = None) -> NotATaskFamilyError:
    """The error for a family whose ``method`` (``"reset"`` or ``"step"``) returned NaN/inf (or
    numbers too large for float32) observations or rewards in ``count`` of ``total`` instances without flagging them (``at``:
    the episode steps where it did)."""
    where = "" if at is None or not len(at) else (
        f" at episode step {int(np.min(at))}" if np.min(at) == np.max(at)
        else f" at episode steps {int(np.min(at))}-{int(np.max(at))}")
    return NotATaskFamilyError(
        f"{family}: {method} returned non-finite (NaN/inf, or beyond float32's ±3.4e38) "
        f"observations or rewards in {count} of "
        f"{total} instances{where}" + (" after finite actions" if method == "step" else "")
        + "; a task family must return finite values"
        + (", or flag a diverged state with info['non_finite'] = True (its episode then ends "
           "as terminated, counted as non-finite)" if method == "step" else ""))


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask; all CPUs where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BatchedEnvBase:
    """N instances of one task family stepped together; see the module docstring.

    Args:
        num_envs: number of instances N.
        horizon: episode length; default: the family's (class attribute ``horizon``).
        truncate: report ``truncated`` at ``horizon`` steps (the single env leaves that to
            Gymnasium's ``TimeLimit``).
        mask_done: do not step instances whose episode has ended until the next reset.
    """

    family: str
    task_space: ClassVar[TaskSpace | None] = None
    #: Whether one step is heavy work that worker processes share well (MuJoCo physics, a
    #: loop of Python envs); False for array maths whose per-step cost is fixed overhead, which
    #: extra processes only duplicate. The sampler's default number of processes follows it.
    parallel_step: ClassVar[bool] = False
    #: The env options its constructor takes as keywords (``--env-option KEY=VALUE``): name ->
    #: what it takes, for error messages; the single env (``BatchOfOneEnv``) takes the same.
    #: None: not declared, the constructor's keyword parameters are the options.
    env_options: ClassVar[Mapping[str, str] | None] = None
    horizon: int
    observation_size: int
    action_size: int
    action_low: np.ndarray
    action_high: np.ndarray

    def __init__(self, num_envs: int, *, horizon: int | None = None, truncate: bool = True,
                 mask_done: bool = True):
        if not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if horizon is not None and (not isinstance(horizon, int | np.integer) or horizon < 1):
            raise ValueError(f"horizon must be a positive int or None, got {horizon!r}")
        self.num_envs = int(num_envs)
        self.horizon = int(horizon) if horizon is not None else type(self).horizon
        self.truncate = truncate
        self.mask_done = mask_done
        self.tasks: list[dict] | None = None
        self._rngs: list[np.random.Generator] | None = None
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._obs: np.ndarray | None = None

    # -- tasks -------------------------------------------------------------------------
    def set_tasks(self, tasks: Sequence[dict]) -> None:
        """One task per instance (``len(tasks) == num_envs``); takes effect immediately."""
        tasks = list(tasks)
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_tasks needs {self.num_envs} tasks (one per instance), "
                             f"got {len(tasks)}")
        if self.task_space is not None:
            # A meta-batch repeats each task for its episodes: validate each distinct one once.
            valid: dict[int, dict] = {}
            for task in tasks:
                if id(task) not in valid:
                    valid[id(task)] = self.task_space.validate(task)
            tasks = [valid[id(task)] for task in tasks]
        self._apply_tasks(tasks)
        self.tasks = tasks

    # -- episodes ----------------------------------------------------------------------
    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        """Start an episode in every instance; ``obs [N, observation_size]`` (float64).

        Instance i is reset exactly like the single env's ``reset(seed=seeds[i])``; with
        ``seeds=None`` each instance keeps drawing from its previous generator.
        """
        if self.tasks is None:
            raise RuntimeError(f"{type(self).__name__}: call set_tasks(tasks) before reset()")
        if seeds is not None:
            seeds = [int(s) for s in seeds]
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset needs {self.num_envs} seeds, got {len(seeds)}")
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        elif self._rngs is None:
            self._rngs = [seeding.np_random()[0] for _ in range(self.num_envs)]
        return self._reset_with(self._rngs)

    def _reset_with(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self._elapsed[:] = 0
        self._done[:] = False
        self._obs = np.asarray(self._reset_instances(rngs), dtype=np.float64)
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, dict[str, np.ndarray]]:
        """Advance every active instance by one control step.

        Args:
            actions: ``[N, action_size]``; rows of inactive instances are ignored.
        Returns:
            ``obs [N, obs]`` float64, ``reward [N]`` float64, ``terminated [N]`` bool,
            ``truncated [N]`` bool, ``info`` dict of ``[N]`` arrays with at least
            ``non_finite`` and ``active``.
        """
        if self._obs is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.action_size):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.action_size}), "
                             f"got {actions.shape}")
        active = ~self._done if self.mask_done else np.ones(self.num_envs, dtype=bool)
        if active.all():
            obs, reward, terminated, info = self._step_active(actions, slice(None))
            index: slice | np.ndarray = slice(None)
        elif active.any():
            index = np.flatnonzero(active)
            obs, reward, terminated, info = self._scatter(index, *self._step_active(
                actions[index], index))
        else:  # every episode has ended: nothing to step
            index = np.flatnonzero(active)
            obs, reward, terminated, info = self._scatter(
                index, np.empty((0, self.observation_size)), np.empty(0), np.empty(0, bool), {})
        non_finite = info.get("non_finite", np.zeros(self.num_envs, dtype=bool))
        # rare: the per-row checks below cost nothing where every number is finite (the
        # whole-array test is one reduction, the per-row one a slow reduction over a short axis)
        if not (storable(obs).all() and storable(reward).all()):
            bad_values = active & ~(storable(obs).all(axis=1) & storable(reward))
            undeclared = bad_values & ~non_finite & np.isfinite(actions).all(axis=1)
            if undeclared.any():
                raise non_finite_output_error(self.family, "step", int(undeclared.sum()),
                                              self.num_envs, at=self._elapsed[undeclared] + 1)
            non_finite = non_finite | bad_values
        if non_finite.any():
            obs[non_finite] = 0.0
            reward[non_finite] = 0.0
            terminated |= non_finite
        info["non_finite"] = non_finite
        info["active"] = active

        self._elapsed += active  # the active rows' step counts, one more
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.truncate:
            np.logical_and(active, self._elapsed >= self.horizon, out=truncated)
        self._done |= terminated | truncated
        self._obs = obs
        return obs.copy(), reward, terminated, truncated, info

    def _scatter(self, index: np.ndarray, obs_k, reward_k, terminated_k, info_k):
        """Full ``[N]`` arrays from the results of the active rows ``index``; inactive rows
        repeat their last observation with reward 0 and no flags."""
        obs = self._obs.copy()
        obs[index] = obs_k
        reward = np.zeros(self.num_envs)
        reward[index] = reward_k
        terminated = np.zeros(self.num_envs, dtype=bool)
        terminated[index] = terminated_k
        info = {}
        for key, value in info_k.items():
            info[key] = np.zeros(self.num_envs, dtype=np.asarray(value).dtype)
            info[key][index] = value
        return obs, reward, terminated, info

    def close(self) -> None:
        """Release resources (thread pools); the env cannot be stepped afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- subclass hooks ----------------------------------------------------------------
    def _apply_tasks(self, tasks: list[dict]) -> None:
        raise NotImplementedError

    def _reset_instances(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        raise NotImplementedError

    def _step_active(self, actions: np.ndarray, index: slice | np.ndarray):
        raise NotImplementedError


class BatchOfOneEnv(gym.Env):
    """The Gymnasium env of a family: its batched class run with one instance.

    ``__init__(task=None, **kwargs)``: ``kwargs`` go to the batched class. Without a task,
    the env uses ``task_space.default()`` (the centre of the distribution) until
    ``set_task``; ``reset(options={"task": t})`` sets a task before resetting. Episodes are
    not truncated here: ``gymnasium.make`` adds the ``TimeLimit`` of ``horizon`` steps
    (``max_episode_steps`` of the registration). ``info["non_finite"]`` flags a diverged
    step (then terminated, observation and reward zero).
    """

    batched_cls: ClassVar[type[BatchedEnvBase]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, task: dict | None = None, render_mode: str | None = None, **kwargs):
        if render_mode is not None:
            raise ValueError(f"{type(self).__name__} does not render; got render_mode="
                             f"{render_mode!r}")
        self._batch = self.batched_cls(1, truncate=False, mask_done=False, **kwargs)
        self.horizon = self._batch.horizon
        self.task_space = self.batched_cls.task_space
        self.observation_space = gym.spaces.Box(
            -np.inf, np.inf, shape=(self._batch.observation_size,), dtype=np.float64)
        self.action_space = gym.spaces.Box(
            self._batch.action_low.astype(np.float32), self._batch.action_high.astype(np.float32),
            dtype=np.float32)
        self.task: dict = {}
        self.set_task(task if task is not None else self.task_space.default())

    def sample_tasks(self, n: int) -> list[dict]:
        """``n`` tasks drawn from the family's distribution with ``self.np_random``."""
        return self.task_space.sample(self.np_random, n)

    def set_task(self, task: dict) -> None:
        """Use ``task`` from the next step on; raises ``TaskError`` (a ValueError) if invalid."""
        self._batch.set_tasks([task])
        self.task = self._batch.tasks[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if options and "task" in options:
            self.set_task(options["task"])
        obs = self._batch._reset_with([self.np_random])[0]
        return obs, {"task": dict(self.task)}

    def step(self, action):
        obs, reward, terminated, _, info = self._batch.step(np.asarray(action)[None])
        info = {key: value[0].item() for key, value in info.items() if key != "active"}
        return obs[0], float(reward[0]), bool(terminated[0]), False, info

    def close(self) -> None:
        self._batch.close()
        super().close()
