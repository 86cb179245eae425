"""What a sharded sampler runs on each shard of a meta-batch's tasks: the :class:`ShardPlan`
protocol, and :class:`EpisodePlan`, the batched feed-forward sampler's.

A sharded sampler (``workers.ShardedProcesses``, ``ray_sampler.RayShards``) splits the K tasks
of a call into contiguous shards; shard ``[start, stop)`` runs the plan's in-process sampler
built with ``task_offset = start``, writes its output arrays, and the sharded sampler hands the
whole meta-batch's arrays to the plan's ``result``. Since every in-process sampler seeds task k
by its index in the meta-batch, the result is the in-process sampler's: the feed-forward
sampler's bit for bit (its task-stacked matmuls round alike in any shard), RL²'s to the float32
rounding of its ``GRUCell`` over fewer rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from metarl.envs.registry import TaskFamily
from metarl.rl.episodes import Episodes
from metarl.rl.sampler import BatchedSampler, EpisodeBuffers, PolicySpec


class ShardPlan(Protocol):
    """What a sharded sampler (:class:`ShardedProcesses`, ``ray_sampler.RayShards``) runs on
    each shard of a meta-batch's tasks, and the arrays it fills. Picklable: it travels to the
    workers and actors.

    Implementations: :class:`EpisodePlan` (the batched feed-forward sampler),
    ``trial_shards.TrialPlan`` (RL²'s trials).
    """

    #: Whether a call may send task-stacked parameters ``{name: [K, ...]}`` (else shared only).
    stacked: bool

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The float32 parameters a call sends, by name, with their shared shapes."""

    def buffer_shapes(self, horizon: int, num_tasks: int
                      ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Shapes and dtypes of the output arrays of ``num_tasks`` tasks."""

    def buffers(self, arrays: Mapping[str, np.ndarray]) -> Any:
        """The arrays as the buffers object ``open(...).sample`` writes (with ``tasks(start,
        stop)``: the views of those tasks)."""

    def open(self, family: TaskFamily, *, num_tasks: int, task_offset: int,
             num_threads: int) -> Any:
        """The in-process sampler of one shard: ``horizon``, ``sample(tasks, params, seed,
        out=buffers)`` and ``close()``."""

    def result(self, buffers: Any, copy: bool) -> Any:
        """What ``sample`` returns, from the filled buffers of the whole meta-batch."""


@dataclass(frozen=True)
class EpisodePlan:
    """:class:`ShardPlan` of the feed-forward sampler: a :class:`BatchedSampler` per shard."""

    spec: PolicySpec
    episodes_per_task: int
    stacked = True

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.spec.param_shapes()

    def buffer_shapes(self, horizon: int, num_tasks: int
                      ) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return EpisodeBuffers.shapes(horizon, num_tasks, self.episodes_per_task,
                                     self.spec.obs_size, self.spec.act_size)

    def buffers(self, arrays: Mapping[str, np.ndarray]) -> EpisodeBuffers:
        return EpisodeBuffers(**arrays)

    def open(self, family: TaskFamily, *, num_tasks: int, task_offset: int,
             num_threads: int) -> BatchedSampler:
        return BatchedSampler(family, self.spec, num_tasks=num_tasks,
                              episodes_per_task=self.episodes_per_task,
                              num_threads=num_threads, task_offset=task_offset)

    def result(self, buffers: EpisodeBuffers, copy: bool) -> Episodes:
        return buffers.to_episodes(copy=copy)


def allocate(plan: ShardPlan, horizon: int, num_tasks: int) -> Any:
    """New buffers of ``plan`` for ``num_tasks`` tasks."""
    return plan.buffers({name: np.empty(shape, dtype) for name, (shape, dtype)
                         in plan.buffer_shapes(horizon, num_tasks).items()})
