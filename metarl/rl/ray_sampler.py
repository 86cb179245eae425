"""Samplers sharded over Ray actors, on a local Ray runtime or across a Ray cluster:
:class:`RayShards` runs a :class:`~metarl.rl.shard_plan.ShardPlan`'s in-process sampler in every
actor; :class:`RaySampler` is the batched feed-forward sampler's form (``trial_shards`` has
RL²'s).

Layout: the K tasks of a meta-batch are split into contiguous shards, one per actor, exactly as
:class:`~metarl.rl.workers.ShardedProcesses` splits them over processes; each actor runs the
plan's sampler (e.g. a :class:`~metarl.rl.sampler.BatchedSampler`: batched physics, task-stacked
policy) on its shard with ``task_offset`` = the shard's first task, so its output is bitwise that
of the same tasks in an in-process sampler: whatever the number of actors, their nodes, or a
retry.

Per ``sample`` call, the parameters go out once: one ``ray.put`` of ``{name: array}`` that each
actor reads from its node's object store (zero-copy on the node; one transfer per node). Each
actor returns its episode arrays ``[T, k, E, ...]``; the driver copies them once into the
meta-batch's buffers (the arrays it gets are read-only views of the object store).

Placement: actors ask for ``cpus_per_actor`` CPUs each and are spread over the cluster's nodes
(``scheduling_strategy="SPREAD"``). By default there is one actor per ``cpus_per_actor`` CPUs
free in the cluster when the sampler starts (at least one), at most one per task.

Faults: an actor that dies while sampling (its process killed, its node removed, the node out of
memory) has its shard sampled again, with the same seeds, on a replacement actor (so the result
is unchanged), up to ``max_retries`` times per shard and call; replacements are started
together, while the other shards sample, and one that the cluster cannot place within
``placement_timeout_s`` is dropped and its shard goes to a surviving actor.
Beyond that, a :class:`RaySamplerError` (a :class:`~metarl.rl.workers.WorkerError`: one line at
the command line, with the resume hint). Errors of the task family or non-finite values raised
in an actor come back as themselves (``workers.FORWARDED``), never retried: the same seeds would
fail again. On Ctrl-C (or any error) the actors are killed before the exception propagates;
``close()`` kills them and, for a runtime this sampler started, shuts Ray down, so no process
outlives the run.

Runtime: with no address, a local Ray runtime is started for the sampler (bound to 127.0.0.1,
no dashboard, one CPU per usable core, workers at normal priority) and shut down by ``close()``; with ``"auto"``,
``host:port`` or ``ray://host:port`` the driver joins that cluster; when Ray is already
initialised in the process (a script that called ``ray.init``), that runtime is used and left
running. Every node needs metarl (and any plug-in family's module) importable: the actors get
the driver's ``sys.path``, which is enough on one machine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl import envs
from metarl.envs.registry import TaskFamily
from metarl.ray_runtime import RayRuntime, first_and_last_line, first_line
from metarl.rl.episodes import Episodes
from metarl.rl.sampler import PolicySpec, check_call
from metarl.rl.shard_plan import EpisodePlan, ShardPlan, allocate
from metarl.rl.workers import WorkerError, ensure_registered, failure_message, probe_horizon

log = logging.getLogger(__name__)

_POLL_S = 0.5


class RaySamplerError(WorkerError):
    """A shard could not be sampled on the Ray cluster (actors died past the retries, none
    could be placed) or an actor raised an unexpected error."""


class _ShardActor:
    """One Ray actor: the plan's in-process samplers for the shards it is asked to sample (one
    per shard bounds, kept between calls), and its answers as ``(kind, payload)``: ``("done",
    arrays)``, ``("raise", error)`` for a forwarded error, ``("error", traceback text)``."""

    def __init__(self, family: bytes, plan: ShardPlan, horizon: int, num_threads: int,
                 sys_path: list[str]):
        from metarl.allocator import tune_malloc

        tune_malloc()
        torch.set_num_threads(1)
        sys.path.extend(p for p in sys_path if p not in sys.path)  # plug-ins import by path
        self.family: TaskFamily = pickle.loads(family)
        ensure_registered(self.family)
        self.plan, self.horizon, self.num_threads = plan, horizon, num_threads
        self.samplers: dict[tuple[int, int], Any] = {}

    def where(self) -> dict[str, Any]:
        """The actor's node and process (placement; tests kill the process)."""
        import ray

        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def sample(self, start: int, stop: int, tasks: list[dict], params: dict[str, np.ndarray],
               shared: bool, seed: int) -> tuple[str, Any]:
        try:
            sampler = self.samplers.get((start, stop))
            if sampler is None:
                sampler = self.plan.open(self.family, num_tasks=stop - start,
                                         task_offset=start, num_threads=self.num_threads)
                if sampler.horizon != self.horizon:
                    raise ValueError(f"the env's horizon is {sampler.horizon} on this node, the "
                                     f"driver expected {self.horizon}")
                self.samplers[(start, stop)] = sampler
            own = {name: torch.from_numpy(np.array(p if shared else p[start:stop]))
                   for name, p in params.items()}  # np.array: the store's arrays are read-only
            out = allocate(self.plan, self.horizon, stop - start)
            began = time.perf_counter()
            sampler.sample(tasks, own, seed, out=out)
            return "done", (dataclasses.asdict(out), time.perf_counter() - began)
        except Exception as error:
            return failure_message(error)


@dataclasses.dataclass
class Transfer:
    """What the last ``sample`` call moved: parameter bytes put once (each node reads them
    once), episode bytes returned, the driver's seconds putting, waiting and copying, and the
    slowest actor's seconds of sampling."""

    params_bytes: int = 0
    episode_bytes: int = 0
    put_s: float = 0.0
    wait_s: float = 0.0
    copy_s: float = 0.0
    #: The longest time an actor spent sampling its shard (the rest of ``wait_s`` is Ray's).
    actor_s: float = 0.0
    retries: int = 0


class RayShards:
    """A :class:`~metarl.rl.shard_plan.ShardPlan`'s in-process sampler over Ray actors (the
    module docstring); :class:`RaySampler` is the batched feed-forward sampler's form,
    ``trial_shards.RayTrialSampler`` RL²'s.

    Args:
        family: the task family.
        plan: what each actor samples.
        num_tasks: K; actor a owns the tasks ``bounds[a]:bounds[a + 1]``.
        address: Ray cluster to join (``auto``, ``host:port``, ``ray://host:port``); None: a
            local runtime started for this sampler (or the one this process already runs).
        num_actors: None: one per ``cpus_per_actor`` CPUs free in the cluster, at least 1,
            at most K.
        cpus_per_actor: CPUs each actor reserves.
        num_threads: physics threads per actor (None: ``cpus_per_actor``, at least 2, as a
            worker process: a single-threaded one stalls when the scheduler parks it).
        max_retries: resamples of a shard whose actor died, per shard and ``sample`` call.
        placement_timeout_s: how long an actor may wait to be placed before it counts as
            unplaceable (at start: an error; a replacement: its shard goes to a surviving actor).
    """

    def __init__(self, family: TaskFamily, plan: ShardPlan, *, num_tasks: int,
                 address: str | None = None, num_actors: int | None = None,
                 cpus_per_actor: float = 1, num_threads: int | None = None,
                 max_retries: int = 3, placement_timeout_s: float = 60.0):
        if not isinstance(num_tasks, int | np.integer) or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive int, got {num_tasks!r}")
        if num_actors is not None and (not isinstance(num_actors, int | np.integer)
                                       or num_actors < 1):
            raise ValueError(f"num_actors must be a positive int or None, got {num_actors!r}")
        if not cpus_per_actor > 0 or not np.isfinite(cpus_per_actor):
            raise ValueError(f"cpus_per_actor must be > 0, got {cpus_per_actor!r}")
        if not isinstance(max_retries, int | np.integer) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        self.family, self.plan, self.num_tasks = family, plan, int(num_tasks)
        self.horizon = probe_horizon(family)
        self.cpus_per_actor = cpus_per_actor
        self.num_threads = max(2, int(cpus_per_actor)) if num_threads is None else num_threads
        self.max_retries, self.placement_timeout_s = int(max_retries), placement_timeout_s
        self.transfer = Transfer()
        self._actors: list[Any] = []
        self._closed = False
        self._runtime = RayRuntime(address, what="--sampler ray")
        self.ray = self._runtime.ray
        self._finalizer = weakref.finalize(self, _shutdown, self.ray, self._actors,
                                           self._runtime)
        try:
            if num_actors is None:  # the CPUs free now: other samplers or tasks keep theirs
                free_cpus = self.ray.available_resources().get("CPU", 0)
                num_actors = max(1, int(free_cpus // cpus_per_actor))
            self.num_actors = min(int(num_actors), self.num_tasks)
            self.bounds = (np.linspace(0, self.num_tasks, self.num_actors + 1).round()
                           .astype(int).tolist())
            self._remote = self.ray.remote(_ShardActor)
            self._family_bytes = pickle.dumps(family)
            self._actors.extend(self._new_actor() for _ in range(self.num_actors))
            self.placement = self._await_placement(self._actors)
        except BaseException:
            self.close()
            raise

    # -- actors ------------------------------------------------------------------------------
    def _new_actor(self):
        return self._remote.options(num_cpus=self.cpus_per_actor, scheduling_strategy="SPREAD",
                                    max_restarts=0).remote(
            self._family_bytes, self.plan, self.horizon, self.num_threads, list(sys.path))

    def _await_placement(self, actors: list) -> list[dict[str, Any]]:
        """Each actor's node and pid once all are placed and constructed; a RaySamplerError
        when one cannot be placed within the timeout or failed to start."""
        refs = [actor.where.remote() for actor in actors]
        deadline = time.monotonic() + self.placement_timeout_s
        while True:
            ready, pending = self.ray.wait(refs, num_returns=len(refs), timeout=_POLL_S)
            if not pending:
                break
            if time.monotonic() > deadline:
                free = self.ray.available_resources().get("CPU", 0)
                raise RaySamplerError(
                    f"only {len(ready)} of {len(refs)} Ray sampler actors were placed within "
                    f"{self.placement_timeout_s:g} s ({self.cpus_per_actor:g} CPU each; the "
                    f"cluster has {free:g} CPUs free): lower --ray-actors or "
                    f"--ray-cpus-per-actor, or add nodes")
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayError as error:
            raise RaySamplerError(f"a Ray sampler actor failed to start: "
                                  f"{first_and_last_line(error)}") from None

    @property
    def pids(self) -> list[int]:
        """Process ids of the actors (as placed at start)."""
        return [where["pid"] for where in self.placement]

    # -- sampling ----------------------------------------------------------------------------
    def _run(self, tasks: list[dict], params: Mapping[str, Tensor], shared: bool,
             seed: int) -> Any:
        """The plan's result for checked arguments; the actors sample their shards in
        parallel. Any failure, or Ctrl-C, stops every actor before it propagates."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}.sample() after close() (or after a "
                               f"failure); create a new sampler")
        try:
            return self._sample(tasks, dict(params), shared, int(seed))
        except BaseException:
            self.close()
            raise

    def _sample(self, tasks: list[dict], params: dict[str, Tensor], shared: bool,
                seed: int) -> Any:
        ray, transfer = self.ray, Transfer()
        began = time.perf_counter()
        arrays = {name: p.numpy() for name, p in params.items()}
        transfer.params_bytes = sum(a.nbytes for a in arrays.values())
        params_ref = ray.put(arrays)
        transfer.put_s = time.perf_counter() - began

        def submit(shard: int):
            start, stop = self.bounds[shard], self.bounds[shard + 1]
            return self._actors[shard].sample.remote(start, stop, tasks[start:stop], params_ref,
                                                     shared, seed)

        running = {submit(shard): shard for shard in range(self.num_actors)}
        placing: dict[int, tuple[float, Any]] = {}  # shard -> (deadline, its new actor's where)
        attempts = [0] * self.num_actors
        out = allocate(self.plan, self.horizon, self.num_tasks)
        waited = time.perf_counter()
        while running:
            done, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            for ref in done:
                shard = running.pop(ref)
                try:
                    kind, payload = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    raise RaySamplerError(f"Ray sampler actor for tasks {self._tasks(shard)} "
                                          f"failed: {first_line(error)}") from None
                except ray.exceptions.RayError as error:  # the actor, its node or result lost
                    attempts[shard] += 1
                    transfer.retries += 1
                    if attempts[shard] > self.max_retries:
                        raise RaySamplerError(
                            f"Ray sampler actor for tasks {self._tasks(shard)} died "
                            f"{attempts[shard]} times in one meta-batch (--ray-retries "
                            f"{self.max_retries}); last: {first_line(error)}") from None
                    log.warning("warning: Ray sampler actor for tasks %s died (%s); sampling its "
                                "shard again (retry %d of %d)", self._tasks(shard),
                                first_line(error), attempts[shard], self.max_retries)
                    placing[shard] = self._replace(shard)  # placed while the others sample
                    running[submit(shard)] = shard
                    continue
                if kind == "raise":
                    raise payload
                if kind == "error":
                    raise RaySamplerError(f"Ray sampler actor for tasks {self._tasks(shard)} "
                                          f"failed:\n{payload}")
                copied = time.perf_counter()
                start, stop = self.bounds[shard], self.bounds[shard + 1]
                part = out.tasks(start, stop)
                arrays, seconds = payload
                transfer.actor_s = max(transfer.actor_s, seconds)
                for name, array in arrays.items():
                    getattr(part, name)[...] = array
                    transfer.episode_bytes += array.nbytes
                transfer.copy_s += time.perf_counter() - copied
            for shard, (deadline, where) in list(placing.items()):
                if ray.wait([where], timeout=0)[0]:  # placed (or failed: its sample says so)
                    del placing[shard]
                elif time.monotonic() > deadline:
                    del placing[shard]
                    running = {ref: s for ref, s in running.items() if s != shard}
                    self._fall_back(shard, placing)
                    running[submit(shard)] = shard
        transfer.wait_s = time.perf_counter() - waited - transfer.copy_s
        self.transfer = transfer
        return self.plan.result(out, copy=False)

    def _replace(self, shard: int) -> tuple[float, Any]:
        """Kill ``shard``'s actor and start a new one for it, not waiting for it to be placed;
        returns the placement deadline and the reference that resolves once it is."""
        try:
            self.ray.kill(self._actors[shard])
        except Exception:  # already gone
            pass
        self._actors[shard] = self._new_actor()
        return time.monotonic() + self.placement_timeout_s, self._actors[shard].where.remote()

    def _fall_back(self, shard: int, placing: Mapping[int, Any]) -> None:
        """``shard``'s replacement could not be placed in time: drop it, and give the shard to
        a placed actor of another shard (which then samples both, one after the other)."""
        unplaced = self._actors[shard]
        self.ray.kill(unplaced)
        placed = [a for s, a in enumerate(self._actors)
                  if s != shard and s not in placing and a is not unplaced]
        if not placed:
            raise RaySamplerError(f"no Ray actor could be placed for tasks {self._tasks(shard)} "
                                  f"within {self.placement_timeout_s:g} s and no other actor is "
                                  f"left (the cluster has "
                                  f"{self.ray.available_resources().get('CPU', 0):g} CPUs free)")
        log.warning("warning: no replacement Ray actor could be placed for tasks %s within "
                    "%g s; another actor samples them", self._tasks(shard),
                    self.placement_timeout_s)
        self._actors[shard] = placed[shard % len(placed)]

    def _tasks(self, shard: int) -> str:
        return f"{self.bounds[shard]}:{self.bounds[shard + 1]}"

    def close(self) -> None:
        """Kill the actors and end a runtime this sampler started (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> RayShards:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class RaySampler(RayShards):
    """:class:`BatchedSampler` over Ray actors; same ``sample`` arguments and output.

    Args:
        env: task family name or ``TaskFamily``.
        spec: the policy's shape.
        num_tasks: K.
        episodes_per_task: E.
        **options: as :class:`RayShards` (``address``, ``num_actors``, ``cpus_per_actor``,
            ``num_threads``, ``max_retries``, ``placement_timeout_s``).
    """

    def __init__(self, env: str | TaskFamily, spec: PolicySpec, *, num_tasks: int,
                 episodes_per_task: int, **options: Any):
        for name, value in (("num_tasks", num_tasks), ("episodes_per_task", episodes_per_task)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        family = env if isinstance(env, TaskFamily) else envs.resolve(env)
        self.spec, self.episodes_per_task = spec, int(episodes_per_task)
        super().__init__(family, EpisodePlan(spec, int(episodes_per_task)), num_tasks=num_tasks,
                         **options)

    def sample(self, tasks: Sequence[dict], params: Mapping[str, Tensor], seed: int) -> Episodes:
        """As :meth:`BatchedSampler.sample`; the actors roll out their shards in parallel."""
        if self._closed:
            raise RuntimeError("RaySampler.sample() after close() (or after a failure); create "
                               "a new sampler")
        tasks, params, shared = check_call(tasks, params, seed, self.spec, self.num_tasks)
        return self._run(tasks, params, shared, seed)


def _shutdown(ray, actors: list, runtime: RayRuntime) -> None:
    if ray.is_initialized():
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # already gone, or the runtime is going down
                pass
    actors.clear()
    runtime.close()
