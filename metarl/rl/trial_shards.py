"""RL²'s trials sampled in shards of tasks: over worker processes (:class:`ProcessTrialSampler`)
or Ray actors (:class:`RayTrialSampler`), with the machinery of the feed-forward sampler
(``workers.ShardedProcesses``, ``ray_sampler.RayShards``) and :class:`TrialPlan` as the shard.

Each shard of the tasks ``[start, stop)`` runs a :class:`~metarl.rl.trial_sampler.TrialSampler`
with ``task_offset = start`` and a copy of the policy; the driver sends the policy's parameters
once per call (they are shared by every task) and gets back the arrays of the shard's trials
``[T, k, M, ...]``, ``[J, k, M]``. A trial depends only on the seed, its task's index in the
meta-batch, its index m and the policy (``trial_sampler``'s seeding), so the result is the
in-process sampler's for any number of shards: the same tasks, seeds and noise, and the policy's
outputs to float32 rounding (a ``GRUCell`` call over fewer rows may round differently). Failures are the
feed-forward sampler's: a worker or actor that raises or dies is a ``WorkerError``
(``RaySamplerError``), faults of the task family come back as themselves, ``close()`` reaps.
:func:`make_trial_sampler` chooses between the in-process sampler and worker processes as
``workers.make_sampler`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from metarl.envs.base import usable_cores
from metarl.envs.protocol import parallel_step
from metarl.envs.registry import TaskFamily
from metarl.nonfinite import require_finite
from metarl.rl.ray_sampler import RayShards
from metarl.rl.recurrent_policy import GRUGaussianPolicy
from metarl.rl.trial_sampler import Trials, TrialSampler, action_map, slot_mask
from metarl.rl.workers import ShardedProcesses


@dataclass
class TrialBuffers:
    """The arrays of some tasks' trials: ``[T, K, M, ...]`` and, for ``lengths``,
    ``terminated`` and ``non_finite``, ``[J, K, M]`` (``Trials``' layout without the mask,
    which the lengths give). They may be views into shared memory (one worker's tasks)."""

    inputs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray
    non_finite: np.ndarray

    @staticmethod
    def shapes(horizon: int, num_tasks: int, trials: int, episodes: int, input_size: int,
               act_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        tkm, jkm = (episodes * horizon, num_tasks, trials), (episodes, num_tasks, trials)
        f32 = np.dtype(np.float32)
        return {"inputs": ((*tkm, input_size), f32), "actions": ((*tkm, act_size), f32),
                "rewards": (tkm, f32), "log_probs": (tkm, f32), "values": (tkm, f32),
                "lengths": (jkm, np.dtype(np.int64)), "terminated": (jkm, np.dtype(np.bool_)),
                "non_finite": (jkm, np.dtype(np.bool_))}

    def tasks(self, start: int, stop: int) -> TrialBuffers:
        """Views of the tasks ``start:stop`` (axis 1 of every array)."""
        return TrialBuffers(**{f.name: getattr(self, f.name)[:, start:stop]
                               for f in fields(self)})

    def fill(self, trials: Trials) -> None:
        """Copy ``trials`` (of exactly these tasks) in."""
        for f in fields(self):
            getattr(self, f.name)[...] = getattr(trials, f.name).numpy()

    def to_trials(self, copy: bool = True) -> Trials:
        """A :class:`Trials` batch (copies unless ``copy=False``; mask from ``lengths``)."""
        def tensor(a: np.ndarray) -> Tensor:
            t = torch.from_numpy(a)
            return t.clone() if copy else t
        arrays = {f.name: tensor(getattr(self, f.name)) for f in fields(self)}
        horizon = self.rewards.shape[0] // self.lengths.shape[0]
        return Trials(**arrays, mask=slot_mask(arrays["lengths"], horizon))


@dataclass(frozen=True)
class TrialPlan:
    """The ``shard_plan.ShardPlan`` of RL²'s trials: a :class:`TrialSampler` and a
    :class:`GRUGaussianPolicy` of these sizes per shard; the parameters are the policy's,
    shared by every task."""

    obs_size: int
    act_size: int
    hidden_size: int
    trials_per_task: int
    episodes_per_trial: int
    normalize_actions: bool = False
    stacked = False

    def policy(self) -> GRUGaussianPolicy:
        """A policy of the plan's sizes (its parameters are overwritten before each use)."""
        return GRUGaussianPolicy(self.obs_size, self.act_size, self.hidden_size)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(p.shape) for name, p in self.policy().named_parameters()}

    def buffer_shapes(self, horizon: int, num_tasks: int
                      ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return TrialBuffers.shapes(horizon, num_tasks, self.trials_per_task,
                                   self.episodes_per_trial, self.obs_size + self.act_size + 2,
                                   self.act_size)

    def buffers(self, arrays: Mapping[str, np.ndarray]) -> TrialBuffers:
        return TrialBuffers(**arrays)

    def open(self, family: TaskFamily, *, num_tasks: int, task_offset: int,
             num_threads: int) -> TrialShard:
        return TrialShard(self, TrialSampler(
            family, num_tasks=num_tasks, trials_per_task=self.trials_per_task,
            episodes_per_trial=self.episodes_per_trial,
            normalize_actions=self.normalize_actions, num_threads=num_threads,
            task_offset=task_offset))

    def result(self, buffers: TrialBuffers, copy: bool) -> Trials:
        return buffers.to_trials(copy=copy)

    def params(self, policy: GRUGaussianPolicy) -> dict[str, Tensor]:
        """``policy``'s parameters to send, CPU float32; a ValueError where its sizes are not
        the plan's, a ``NonFiniteError`` where they are non-finite."""
        sizes = (policy.obs_size, policy.act_size, policy.hidden_size)
        if sizes != (self.obs_size, self.act_size, self.hidden_size):
            raise ValueError(f"the sampler was built for a policy of obs, act, hidden sizes "
                             f"{(self.obs_size, self.act_size, self.hidden_size)}, got {sizes}")
        params = {name: p.detach().to("cpu", torch.float32)
                  for name, p in policy.named_parameters()}
        require_finite(params, "the policy to sample with")
        return params


class TrialShard:
    """One shard's :class:`TrialSampler` and its copy of the policy."""

    def __init__(self, plan: TrialPlan, sampler: TrialSampler):
        self.sampler, self.policy, self.horizon = sampler, plan.policy(), sampler.horizon

    def sample(self, tasks: Sequence[dict], params: Mapping[str, Tensor], seed: int,
               out: TrialBuffers) -> None:
        with torch.no_grad():
            for name, p in self.policy.named_parameters():
                p.copy_(params[name])
        out.fill(self.sampler.sample(tasks, self.policy, seed))

    def close(self) -> None:
        self.sampler.close()


def _checked(sampler: ShardedProcesses | RayShards, tasks: Sequence[dict],
             policy: GRUGaussianPolicy, seed: int) -> tuple[list[dict], dict[str, Tensor]]:
    tasks = list(tasks)
    if len(tasks) != sampler.num_tasks:
        raise ValueError(f"sampler was built for {sampler.num_tasks} tasks, got {len(tasks)}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return tasks, sampler.plan.params(policy)


class ProcessTrialSampler(ShardedProcesses):
    """:class:`TrialSampler` over worker processes; ``sample(tasks, policy, seed)`` gives the
    same trials (``keep_hidden`` is the in-process sampler's only)."""

    def __init__(self, family: TaskFamily, plan: TrialPlan, *, num_tasks: int,
                 num_workers: int, num_threads: int = 2):
        super().__init__(family, plan, num_tasks=num_tasks, num_workers=num_workers,
                         num_threads=num_threads)

    def sample(self, tasks: Sequence[dict], policy: GRUGaussianPolicy, seed: int) -> Trials:
        tasks, params = _checked(self, tasks, policy, seed)
        return self._sample(tasks, params, True, seed)


class RayTrialSampler(RayShards):
    """:class:`TrialSampler` over Ray actors (options: ``ray_sampler.RayShards``); the same
    trials."""

    def sample(self, tasks: Sequence[dict], policy: GRUGaussianPolicy, seed: int) -> Trials:
        tasks, params = _checked(self, tasks, policy, seed)
        return self._run(tasks, params, True, seed)


def trial_plan(family: TaskFamily, *, hidden_size: int, trials_per_task: int,
               episodes_per_trial: int, normalize_actions: bool = False
               ) -> tuple[TrialPlan, bool]:
    """The plan of ``family``'s trials (sizes from its batched env, whose action bounds are
    checked for ``normalize_actions`` before any worker starts) and whether the env declares a
    heavy, parallel step (``envs.protocol.parallel_step``)."""
    probe = family.make_batched(1, num_threads=1)
    try:
        action_map(family, probe, normalize_actions)
        plan = TrialPlan(int(probe.observation_size), int(probe.action_size), int(hidden_size),
                         int(trials_per_task), int(episodes_per_trial), bool(normalize_actions))
        return plan, parallel_step(probe)
    finally:
        probe.close()


def make_trial_sampler(family: TaskFamily, *, hidden_size: int, num_tasks: int,
                       trials_per_task: int, episodes_per_trial: int,
                       normalize_actions: bool = False, num_workers: int | None = None,
                       num_threads: int | None = None) -> TrialSampler | ProcessTrialSampler:
    """In-process (``num_workers=1``) or over processes, with ``workers.make_sampler``'s
    defaults: ``num_workers`` None gives the usable cores for a family with a heavy step, 1
    otherwise; ``num_threads`` None gives the usable cores in-process, 2 per worker."""
    plan, heavy_step = trial_plan(family, hidden_size=hidden_size,
                                  trials_per_task=trials_per_task,
                                  episodes_per_trial=episodes_per_trial,
                                  normalize_actions=normalize_actions)
    if num_workers is None:
        num_workers = usable_cores() if heavy_step else 1
    if not isinstance(num_workers, int | np.integer) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive int or None, got {num_workers!r}")
    if num_workers == 1:
        return TrialSampler(family, num_tasks=num_tasks, trials_per_task=trials_per_task,
                            episodes_per_trial=episodes_per_trial,
                            normalize_actions=normalize_actions, num_threads=num_threads)
    return ProcessTrialSampler(family, plan, num_tasks=num_tasks, num_workers=int(num_workers),
                               num_threads=min(2, usable_cores()) if num_threads is None
                               else num_threads)
