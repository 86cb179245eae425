"""Batched multi-task rollouts: E episodes for each of K tasks, every task with its own policy.

One call of :meth:`BatchedSampler.sample` runs the ``K·E`` episodes of a meta-batch together::

    for t in 0 .. T-1:                                    (T = the env's horizon)
        μ, log σ = policy(params_k, o_t)                  one task-stacked forward for all K tasks
        a_t      = μ + σ ε_t,   ε_t ~ N(0, I)             the stored (unclipped) action
        o_t+1, r_t, ... = env.step(clip(a_t, low, high))  one batched env step for all K·E instances

and returns an :class:`~metarl.rl.episodes.Episodes` batch ``[T, K, E, ...]``. Instance
``k·E + e`` of the batched env plays episode e of task k. An episode ends at termination,
truncation or a non-finite state (counted as terminated, and marked in ``Episodes.non_finite``);
later steps are masked (mask 0, zeros in every array) and the instance is no longer stepped. An
env that returns NaN/inf from ``reset``, or from ``step`` after a finite action without
flagging the state in ``info["non_finite"]``, breaks the protocol: ``NotATaskFamilyError``
naming the family, the method and how many instances did so.

Seeding: episode e of task k depends only on ``(seed, task_offset + k, e)`` and the parameters.
Per task, ``SeedSequence(seed, spawn_key=(k, 0))`` gives the env reset seeds of its E episodes
and ``SeedSequence(seed, spawn_key=(k, 1))`` the generator of its action noise ``ε [E, T, act]``
(episode e takes the e-th block). The policy is always evaluated in the task-stacked form (shared
parameters are expanded to ``[K, ...]``): a batched matmul computes every task's rows with the same
kernel whatever K is, whereas one ``linear`` over all rows may round differently for different
row counts. Together, the episodes are bitwise identical however the tasks are split over worker
processes.

The process-sharded form is in :mod:`metarl.rl.workers`, and so is ``make_sampler``, which
chooses between the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from metarl import envs
from metarl.config import ConfigError
from metarl.core.maml import stack_params
from metarl.core.mlp import NONLINEARITIES
from metarl.envs.base import non_finite_output_error, storable, usable_cores
from metarl.envs.registry import NotATaskFamilyError, TaskFamily
from metarl.nonfinite import NonFiniteError, all_finite, non_finite_summary
from metarl.rl.episodes import Episodes
from metarl.rl.policy import HALF_LOG_2PI, mean_and_log_std

_RESET_STREAM, _NOISE_STREAM = 0, 1


@dataclass(frozen=True)
class PolicySpec:
    """The shape of the Gaussian MLP policy the sampler evaluates (``GaussianMLPPolicy``'s)."""

    obs_size: int
    act_size: int
    hidden_sizes: tuple[int, ...] = (64, 64)
    nonlinearity: str = "tanh"
    #: The policy acts in [-1, 1] per dimension, mapped affinely onto the env's action bounds
    #: before clipping (rllab's ``normalize``, which the MAML paper's envs were wrapped in);
    #: otherwise its actions go to the env as they are, clipped to the bounds.
    normalize_actions: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        sizes = (self.obs_size, *self.hidden_sizes, self.act_size)
        if any(not isinstance(s, int | np.integer) or s < 1 for s in sizes):
            raise ValueError(f"PolicySpec sizes must be positive ints, got obs_size="
                             f"{self.obs_size!r}, hidden_sizes={self.hidden_sizes}, "
                             f"act_size={self.act_size!r}")
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"unknown nonlinearity {self.nonlinearity!r}; valid choices: "
                             f"{', '.join(NONLINEARITIES)}")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter names and (shared) shapes, in ``GaussianMLPPolicy.named_parameters`` order."""
        sizes = (self.obs_size, *self.hidden_sizes, self.act_size)
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"layers.{i}.weight"] = (n_out, n_in)
            shapes[f"layers.{i}.bias"] = (n_out,)
        shapes["log_std"] = (self.act_size,)
        return shapes


def check_params(params: Mapping[str, Tensor], spec: PolicySpec,
                 num_tasks: int) -> tuple[dict[str, Tensor], bool]:
    """Validate sampling parameters; returns ``(params, shared)``.

    ``params`` are either all shared (``{name: shape}``) or all task-stacked
    (``{name: [num_tasks, *shape]}``), CPU float32, with the names of ``spec.param_shapes()``,
    and finite (``NonFiniteError`` otherwise: a non-finite policy has nothing to sample).
    """
    shapes = spec.param_shapes()
    if set(params) != set(shapes):
        raise KeyError(f"params must have exactly the keys {sorted(shapes)} (GaussianMLPPolicy "
                       f"with {spec}); got {sorted(params)}")
    first = params["log_std"]
    shared = first.dim() == 1
    out = {}
    for name, shape in shapes.items():
        p = params[name]
        want = shape if shared else (num_tasks, *shape)
        if tuple(p.shape) != want:
            form = "shared params" if shared else f"task-stacked params for {num_tasks} tasks"
            raise ValueError(f"params[{name!r}] has shape {tuple(p.shape)}; {form} (as "
                             f"log_std {tuple(first.shape)} says) need {want}")
        if p.dtype != torch.float32 or p.device.type != "cpu":
            raise TypeError(f"params[{name!r}] must be a CPU float32 tensor, got {p.dtype} on "
                            f"{p.device}")
        out[name] = p.detach()
    if not all_finite(out.values()):
        raise NonFiniteError(f"the policy parameters to sample with are non-finite "
                             f"({non_finite_summary(out)})")
    return out, shared


def check_call(tasks: Sequence[dict], params: Mapping[str, Tensor], seed: int,
               spec: PolicySpec, num_tasks: int) -> tuple[list[dict], dict[str, Tensor], bool]:
    """The arguments of a sharded sampler's ``sample`` call checked before any shard starts:
    ``(tasks as a list, params, shared)`` (see :func:`check_params`)."""
    tasks = list(tasks)
    if len(tasks) != num_tasks:
        raise ValueError(f"sampler was built for {num_tasks} tasks, got {len(tasks)}")
    params, shared = check_params(params, spec, num_tasks)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return tasks, params, shared


def check_env_sizes(family: TaskFamily, env: envs.BatchedTaskEnv, spec: PolicySpec) -> None:
    """``NotATaskFamilyError`` (a ``ValueError``) unless the batched env's observation and action
    sizes are the policy's.

    The trainer takes the policy's sizes from the family's single env, so from the command line
    this fails only for a plug-in family whose batched form (``batched_cls``) disagrees with its
    single env: an error of the family, reported in one line.
    """
    if (env.observation_size, env.action_size) != (spec.obs_size, spec.act_size):
        raise NotATaskFamilyError(
            f"{family.name}'s batched env has observations of size {env.observation_size} and "
            f"actions of size {env.action_size}, but the policy spec says obs_size="
            f"{spec.obs_size}, act_size={spec.act_size}")


def check_action_bounds(family: TaskFamily, env: envs.BatchedTaskEnv, spec: PolicySpec) -> None:
    """``ConfigError`` if ``spec.normalize_actions`` but the env's action bounds are not finite
    (the [-1, 1] -> [low, high] map needs them)."""
    low, high = np.asarray(env.action_low), np.asarray(env.action_high)
    if spec.normalize_actions and not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ConfigError(
            f"normalize_actions=True (--normalize-actions) needs finite action bounds, but "
            f"{family.name} has low={low.tolist()}, high={high.tolist()}; use "
            f"--no-normalize-actions for this env")


def episode_seeds(seed: int, task_index: int, episodes: int,
                  horizon: int, act_size: int) -> tuple[list[int], np.ndarray]:
    """Env reset seeds ``[E]`` and action noise ``ε [E, T, act]`` (float32) of one task.

    Both depend only on ``(seed, task_index)``; episode e's seed and noise are the e-th entries,
    so they do not depend on how many episodes follow.
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    reset = np.random.SeedSequence(int(seed), spawn_key=(task_index, _RESET_STREAM))
    noise_rng = np.random.default_rng(
        np.random.SeedSequence(int(seed), spawn_key=(task_index, _NOISE_STREAM)))
    noise = noise_rng.standard_normal((episodes, horizon, act_size), dtype=np.float32)
    return reset.generate_state(episodes, np.uint32).tolist(), noise


@dataclass
class EpisodeBuffers:
    """Numpy arrays the sampler writes: ``[T, K, E, ...]``; ``lengths``, ``terminated`` and
    ``non_finite`` ``[K, E]``.

    They may be views into shared memory (one worker's slice of tasks); :meth:`to_episodes`
    turns them into an :class:`Episodes` batch.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    log_probs: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    non_finite: np.ndarray

    @staticmethod
    def shapes(horizon: int, num_tasks: int, episodes: int, obs_size: int, act_size: int
               ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        tke = (horizon, num_tasks, episodes)
        return {"observations": ((*tke, obs_size), np.dtype(np.float32)),
                "actions": ((*tke, act_size), np.dtype(np.float32)),
                "rewards": (tke, np.dtype(np.float32)),
                "log_probs": (tke, np.dtype(np.float32)),
                "lengths": (tke[1:], np.dtype(np.int64)),
                "terminated": (tke[1:], np.dtype(np.bool_)),
                "non_finite": (tke[1:], np.dtype(np.bool_))}

    @classmethod
    def allocate(cls, *dims: int) -> EpisodeBuffers:
        return cls(**{name: np.empty(shape, dtype) for name, (shape, dtype)
                      in cls.shapes(*dims).items()})

    def tasks(self, start: int, stop: int) -> EpisodeBuffers:
        """Views of the tasks ``start:stop``."""
        return EpisodeBuffers(
            self.observations[:, start:stop], self.actions[:, start:stop],
            self.rewards[:, start:stop], self.log_probs[:, start:stop],
            self.lengths[start:stop], self.terminated[start:stop], self.non_finite[start:stop])

    def to_episodes(self, copy: bool = True) -> Episodes:
        """An :class:`Episodes` batch (copies unless ``copy=False``; mask from ``lengths``)."""
        def tensor(a: np.ndarray) -> Tensor:
            t = torch.from_numpy(a)
            return t.clone() if copy else t
        lengths = tensor(self.lengths)
        steps = torch.arange(self.rewards.shape[0]).view(-1, 1, 1)
        return Episodes(observations=tensor(self.observations), actions=tensor(self.actions),
                        rewards=tensor(self.rewards), log_probs=tensor(self.log_probs),
                        mask=(steps < lengths).to(torch.float32), lengths=lengths,
                        terminated=tensor(self.terminated), non_finite=tensor(self.non_finite))


class BatchedSampler:
    """Samples ``episodes_per_task`` episodes of each of ``num_tasks`` tasks in this process.

    Args:
        env: task family name (see ``metarl.envs.registry.resolve``) or a resolved ``TaskFamily``.
        spec: the policy's shape.
        num_tasks: K, tasks per ``sample`` call.
        episodes_per_task: E.
        num_threads: physics threads of the batched env (None: the usable cores).
        task_offset: index of this sampler's first task in the meta-batch (for seeding, when
            the meta-batch is split over processes).
    """

    def __init__(self, env: str | TaskFamily, spec: PolicySpec, *, num_tasks: int,
                 episodes_per_task: int, num_threads: int | None = None, task_offset: int = 0):
        for name, value in (("num_tasks", num_tasks), ("episodes_per_task", episodes_per_task)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.family = env if isinstance(env, TaskFamily) else envs.resolve(env)
        self.spec = spec
        self.num_tasks, self.episodes_per_task = int(num_tasks), int(episodes_per_task)
        self.task_offset = int(task_offset)
        self.num_threads = usable_cores() if num_threads is None else int(num_threads)
        self._env: envs.BatchedTaskEnv | None = self.family.make_batched(
            self.num_tasks * self.episodes_per_task, num_threads=self.num_threads)
        try:
            check_env_sizes(self.family, self._env, spec)
            check_action_bounds(self.family, self._env, spec)
        except BaseException:
            self.close()
            raise
        env = self._env
        self.horizon = int(env.horizon)
        self._low, self._high = np.asarray(env.action_low), np.asarray(env.action_high)
        self._scale = self._offset = None
        if spec.normalize_actions:
            self._scale = (self._high - self._low) / 2.0
            self._offset = (self._high + self._low) / 2.0
        self._alive = np.zeros(env.num_envs, dtype=bool)  # [K·E] episode still running
        self._obs: np.ndarray | None = None  # [K·E, obs] float64 current observation
        self._clipped = np.empty((env.num_envs, env.action_size))  # [K·E, act] given to the env
        self._params: dict[str, Tensor] = {}  # task-stacked [K, ...]
        self._closed = False

    def sample(self, tasks: Sequence[dict], params: Mapping[str, Tensor], seed: int,
               out: EpisodeBuffers | None = None) -> Episodes | None:
        """Roll out E episodes of every task, task k with its own parameters.

        Args:
            tasks: K task dicts.
            params: shared ``{name: [...]}`` or task-stacked ``{name: [K, ...]}`` float32.
            seed: non-negative int; see the module docstring.
            out: buffers ``[T, K, E, ...]`` to fill (then returns None); default: new ones,
                returned as an ``Episodes`` batch.
        """
        if self._closed:
            raise RuntimeError("BatchedSampler.sample() after close()")
        tasks = list(tasks)
        if len(tasks) != self.num_tasks:
            raise ValueError(f"sampler was built for {self.num_tasks} tasks, got {len(tasks)}")
        params, shared = check_params(params, self.spec, self.num_tasks)
        if shared:  # the stacked forward rounds the same whatever K: see the module docstring
            params = stack_params(params, self.num_tasks)
        t, k, e = self.horizon, self.num_tasks, self.episodes_per_task
        result = None
        if out is None:
            out = EpisodeBuffers.allocate(t, k, e, self.spec.obs_size, self.spec.act_size)
            result = out
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny ops; a second thread only competes with the physics
        try:
            noise = self._prepare(tasks, params, seed, out)
            with torch.no_grad():
                self._run(noise, out)
            self._finish(params["log_std"], noise, out)
            return result.to_episodes(copy=False) if result is not None else None
        finally:
            torch.set_num_threads(threads)

    # -- one meta-batch ---------------------------------------------------------------
    def _prepare(self, tasks: list[dict], params: Mapping[str, Tensor], seed: int,
                 out: EpisodeBuffers) -> np.ndarray:
        """Set tasks and parameters, reset every instance, zero the counters; returns the
        action noise ``ε [T, K, E, act]``."""
        t, e, act = self.horizon, self.episodes_per_task, self.spec.act_size
        noise = np.empty((self.num_tasks, e, t, act), dtype=np.float32)
        seeds = []
        for k in range(self.num_tasks):  # once per call, not per step
            reset_seeds, noise[k] = episode_seeds(seed, self.task_offset + k, e, t, act)
            seeds.append(reset_seeds)
        out.lengths[...] = 0
        out.terminated[...] = False
        out.non_finite[...] = False
        self._params = dict(params)
        self._env.set_tasks([task for task in tasks for _ in range(e)])
        self._obs = self._env.reset([s for row in seeds for s in row])
        finite = storable(self._obs).all(axis=1)
        if not finite.all():
            raise non_finite_output_error(self.family.name, "reset", int((~finite).sum()),
                                          len(finite))
        self._alive[:] = True
        return np.ascontiguousarray(noise.transpose(2, 0, 1, 3))

    def _run(self, noise: np.ndarray, out: EpisodeBuffers) -> None:
        """Steps 0 .. T-1, in lock-step for all K·E instances, until every episode ended."""
        for t in range(self.horizon):
            if not self._alive.any():
                break
            self._act(t, noise, out)
            self._record(t, self._env.step(self._clipped), out)

    def _act(self, t: int, noise: np.ndarray, out: EpisodeBuffers) -> None:
        """The policy of every task at step t: stores o_t and a_t, fills ``self._clipped``."""
        obs = out.observations[t]  # [K, E, obs] view, contiguous
        _rows(obs)[...] = self._obs
        mean, log_std = mean_and_log_std(self._params, torch.from_numpy(obs),
                                         self.spec.nonlinearity)
        actions = torch.from_numpy(out.actions[t])
        torch.addcmul(mean, log_std.exp(), torch.from_numpy(noise[t]), out=actions)
        actions = _rows(out.actions[t])
        if self._scale is not None:  # [-1, 1] -> [low, high]
            actions = actions * self._scale + self._offset
        np.clip(actions, self._low, self._high, out=self._clipped)

    def _record(self, t: int, step, out: EpisodeBuffers) -> None:
        """Book-keeping of one env step: rewards, lengths, termination."""
        obs, reward, terminated, truncated, info = step
        alive = self._alive
        bad_values = ~(storable(reward) & storable(obs).all(axis=1))
        non_finite = np.asarray(info.get("non_finite", False)) | bad_values
        if non_finite.any():  # keep the arrays finite; the env should have zeroed these
            flagged = np.asarray(info.get("non_finite", False))
            undeclared = alive & bad_values & ~flagged & np.isfinite(self._clipped).all(axis=1)
            if undeclared.any():  # envs derived from BatchedEnvBase raise this themselves
                raise non_finite_output_error(self.family.name, "step", int(undeclared.sum()),
                                              len(alive), at=np.array([t + 1]))
            obs = np.where(non_finite[:, None], 0.0, obs)
            reward = np.where(non_finite, 0.0, reward)
            _rows(out.non_finite)[...] |= alive & non_finite
        _rows(out.rewards[t])[...] = reward
        ended = terminated | non_finite
        _rows(out.lengths)[...] += alive
        _rows(out.terminated)[...] |= alive & ended
        alive &= ~(ended | truncated)
        self._obs = obs

    def _finish(self, log_std: Tensor, noise: np.ndarray, out: EpisodeBuffers) -> None:
        """Log-probabilities of the stored actions, then zeros at every masked step."""
        # log π(a|o) with a = μ + σε:  -½ Σ_d ε_d² - Σ_d log σ_d - (act/2) log 2π
        constant = log_std.sum(-1).numpy() + self.spec.act_size * HALF_LOG_2PI  # [K]
        np.einsum("tkea,tkea->tke", noise, noise, out=out.log_probs)
        out.log_probs *= -0.5
        out.log_probs -= constant[:, None]
        first_invalid = int(out.lengths.min())  # every episode is valid before this step
        if first_invalid < self.horizon:
            invalid = np.arange(first_invalid, self.horizon)[:, None, None] >= out.lengths
            for array in (out.observations, out.actions, out.rewards, out.log_probs):
                array[first_invalid:][invalid] = 0.0

    def close(self) -> None:
        """Release the batched env (idempotent)."""
        self._closed = True
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> BatchedSampler:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _rows(array: np.ndarray) -> np.ndarray:
    """View of ``[k, E, ...]`` as ``[k·E, ...]`` (instance rows); raises rather than copy."""
    view = array.reshape(-1, *array.shape[2:])
    if not np.may_share_memory(view, array):
        raise ValueError(f"buffer of shape {array.shape} and strides {array.strides} cannot be "
                         "written through a [k*E, ...] view")
    return view
