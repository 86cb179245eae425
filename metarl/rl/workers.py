"""Samplers sharded over worker processes, each owning a contiguous slice of tasks:
:class:`ShardedProcesses` runs a :class:`~metarl.rl.shard_plan.ShardPlan`'s in-process sampler
in every worker; :class:`ProcessSampler` is the batched feed-forward sampler's form
(``trial_shards`` has RL²'s), and ``make_sampler`` chooses between it and the in-process
:class:`~metarl.rl.sampler.BatchedSampler`.

Layout: one shared-memory block (``multiprocessing.RawArray``, freed with the last process that
maps it) holds the parameters ``{name: [K, ...]}`` and the output buffers (episodes ``[T, K, E,
...]``). Per ``sample`` call the main process writes the parameters, sends each worker one small
message ``(seed, its tasks, shared?)`` through its pipe, and waits; each worker runs the plan's
sampler (e.g. a :class:`~metarl.rl.sampler.BatchedSampler`) on its tasks ``[start, stop)`` with
``task_offset = start``, writing straight into its slice of the buffers, and answers "done" (or
the traceback text of its exception). Nothing crosses the process boundary per step.

Failure handling: the main process waits on every worker's pipe *and* process sentinel, so a
worker that raises (its traceback comes back as text) or dies (e.g. SIGKILL, seen at once through
the sentinel) becomes a :class:`WorkerError` right away and the other workers are shut down; the
sampler is unusable afterwards. The errors that report a fault of the task family or a
non-finite value (``FORWARDED``: a NaN from ``reset``, a task ``set_task`` refuses) are not
bugs of the sampler: they come back as themselves, with their one-line message. Workers ignore SIGINT: on Ctrl-C the main process gets the
``KeyboardInterrupt``, terminates them and re-raises. Workers are daemons, exit when their pipe
closes (the main process ended), and ``close()`` (also run by a finalizer at garbage collection
or interpreter exit) stops and reaps them.

Start method: ``forkserver``, with this module preloaded in the server, so new workers are forked
from a clean single-threaded process that already imported torch and MuJoCo (``fork`` of a process
whose OpenMP pool is running can deadlock; ``spawn`` re-imports torch in every worker). Each worker
uses one torch thread. Workers get the parent's ``sys.path`` so plug-in families importable in the
parent are importable there; a family registered at run time is re-registered in the worker.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import pickle
import signal
import sys
import traceback
import weakref
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_ready
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metarl import envs
from metarl.allocator import tune_malloc
from metarl.envs.base import usable_cores
from metarl.envs.protocol import parallel_step
from metarl.envs.registry import NotATaskFamilyError, TaskFamily
from metarl.envs.tasks import TaskError
from metarl.nonfinite import NonFiniteError
from metarl.rl.episodes import Episodes
from metarl.rl.sampler import (
    BatchedSampler,
    PolicySpec,
    check_action_bounds,
    check_call,
    check_env_sizes,
)
from metarl.rl.shard_plan import EpisodePlan, ShardPlan

_JOIN_TIMEOUT_S = 2.0
_POLL_S = 0.5
_START_HINT = (". Workers re-import the main script (forkserver start method): a script that "
               "creates a sampler needs the `if __name__ == \"__main__\":` guard; the worker's "
               "traceback is on stderr above")


class WorkerError(RuntimeError):
    """A sampler worker raised or died; the message holds its traceback or exit status."""


#: Errors a worker sends back as themselves (raised again in the main process), not as a
#: WorkerError with a traceback: faults of the task family and non-finite values.
FORWARDED = (NotATaskFamilyError, TaskError, NonFiniteError)


class ShardedProcesses:
    """A :class:`~metarl.rl.shard_plan.ShardPlan`'s in-process sampler over ``num_workers``
    processes, each owning a contiguous slice of the tasks (the module docstring).

    Args:
        family: the task family.
        plan: what each worker samples.
        num_tasks: K; worker w owns the tasks ``bounds[w]:bounds[w + 1]`` (near-equal slices).
        num_workers: processes (capped at ``num_tasks``).
        num_threads: physics threads per worker env.
    """

    def __init__(self, family: TaskFamily, plan: ShardPlan, *, num_tasks: int,
                 num_workers: int, num_threads: int):
        for name, value in (("num_tasks", num_tasks), ("num_workers", num_workers)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(num_threads, int | np.integer) or num_threads < 0:
            raise ValueError(f"num_threads must be an int >= 0 (0: each worker steps its physics "
                             f"on its own thread), got {num_threads!r}")
        self.plan, self.num_tasks = plan, num_tasks
        self.horizon = probe_horizon(family)
        self.num_workers = min(num_workers, num_tasks)
        self.num_threads = num_threads
        self.bounds = np.linspace(0, num_tasks, self.num_workers + 1).round().astype(int).tolist()
        self._layout = _Layout(plan, self.horizon, num_tasks)
        context = _context()
        shared = context.RawArray(ctypes.c_uint8, self._layout.nbytes)
        self._params, buffers = self._layout.views(shared)
        self._buffers = plan.buffers(buffers)
        self._procs: list[mp.process.BaseProcess] = []
        self._conns: list[Connection] = []
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns)
        try:
            for w in range(self.num_workers):
                parent, child = context.Pipe()
                proc = context.Process(target=_worker_main, args=(child, shared, list(sys.path)),
                                        name=f"metarl-sampler-{w}", daemon=True)
                proc.start()
                child.close()
                self._procs.append(proc)
                self._conns.append(parent)
            for w in range(self.num_workers):
                self._send(w, ("init", family, plan, self.bounds[w], self.bounds[w + 1],
                               num_tasks, self.horizon, num_threads))
            self._wait_all("start")
        except BaseException:
            self.close()
            raise

    def _sample(self, tasks: list[dict], params: Mapping[str, Tensor], shared: bool,
                seed: int) -> Any:
        """The plan's result for checked arguments; the workers sample their slices in
        parallel."""
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}.sample() after close() (or after a "
                               f"worker failure); create a new sampler")
        try:
            for name, p in params.items():
                view = self._params[name]
                (view[0] if shared else view)[...] = p.numpy()
            for w in range(self.num_workers):
                start, stop = self.bounds[w], self.bounds[w + 1]
                self._send(w, ("sample", int(seed), tasks[start:stop], shared))
            self._wait_all("sample")
            return self.plan.result(self._buffers, copy=True)
        except BaseException:  # a worker failed, or Ctrl-C: stop everything, then re-raise
            self._closed = True
            self._finalizer.detach()
            _shutdown(self._procs, self._conns, graceful=False)
            raise

    def _send(self, w: int, message: tuple) -> None:
        try:
            self._conns[w].send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            self._procs[w].join(_JOIN_TIMEOUT_S)
            raise WorkerError(f"sampler worker {w} is gone ({_exit_status(self._procs[w])})"
                              ) from None

    def _wait_all(self, what: str) -> None:
        """Wait for every worker's answer; raise :class:`WorkerError` on the first failure."""
        pending = set(range(self.num_workers))
        while pending:
            objects = [self._conns[w] for w in pending] + [self._procs[w].sentinel
                                                          for w in pending]
            ready = set(wait_ready(objects, timeout=_POLL_S))  # wakes up for Ctrl-C too
            for w in sorted(pending):
                conn, proc = self._conns[w], self._procs[w]
                if conn in ready:
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, ConnectionResetError):
                        proc.join(_JOIN_TIMEOUT_S)
                        hint = _START_HINT if what == "start" else ""
                        raise WorkerError(f"sampler worker {w} (pid {proc.pid}) died during "
                                          f"{what} ({_exit_status(proc)}){hint}") from None
                    if kind == "raise":
                        raise payload
                    if kind == "error":
                        raise WorkerError(f"sampler worker {w} (pid {proc.pid}, tasks "
                                          f"{self.bounds[w]}:{self.bounds[w + 1]}) failed during "
                                          f"{what}:\n{payload}")
                    pending.discard(w)
                elif proc.sentinel in ready:
                    proc.join(_JOIN_TIMEOUT_S)
                    hint = _START_HINT if what == "start" else ""
                    raise WorkerError(f"sampler worker {w} (pid {proc.pid}) died during {what} "
                                      f"({_exit_status(proc)}){hint}")

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [proc.pid for proc in self._procs]

    def close(self) -> None:
        """Stop and reap the workers (idempotent)."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> ShardedProcesses:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ProcessSampler(ShardedProcesses):
    """:class:`BatchedSampler` over ``num_workers`` processes; same arguments and output.

    Args:
        env: task family name or ``TaskFamily``.
        spec: the policy's shape.
        num_tasks: K; worker w owns the tasks ``bounds[w]:bounds[w + 1]`` (near-equal slices).
        episodes_per_task: E.
        num_workers: processes (capped at ``num_tasks``).
        num_threads: physics threads per worker env (2 by default: see ``make_sampler``).
    """

    def __init__(self, env: str | TaskFamily, spec: PolicySpec, *, num_tasks: int,
                 episodes_per_task: int, num_workers: int, num_threads: int = 2):
        if not isinstance(episodes_per_task, int | np.integer) or episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be a positive int, got "
                             f"{episodes_per_task!r}")
        family = env if isinstance(env, TaskFamily) else envs.resolve(env)
        self.spec, self.episodes_per_task = spec, episodes_per_task
        super().__init__(family, EpisodePlan(spec, int(episodes_per_task)), num_tasks=num_tasks,
                         num_workers=num_workers, num_threads=num_threads)

    def sample(self, tasks: Sequence[dict], params: Mapping[str, Tensor], seed: int) -> Episodes:
        """As :meth:`BatchedSampler.sample`; the workers roll out their slices in parallel."""
        if self._closed:
            raise RuntimeError("ProcessSampler.sample() after close() (or after a worker "
                               "failure); create a new sampler")
        tasks, params, shared = check_call(tasks, params, seed, self.spec, self.num_tasks)
        return self._sample(tasks, params, shared, seed)


def _shutdown(procs: list, conns: list[Connection], graceful: bool = True) -> None:
    """Stop the workers: ask them to exit (``graceful``: when idle), terminate the ones still
    running (mid-sample after a failure or Ctrl-C), kill any that ignore that; reap them all."""
    if graceful:
        for conn in conns:
            try:
                conn.send(("close",))
            except (OSError, ValueError):
                pass  # already gone: nothing to ask
        for proc in procs:
            proc.join(_JOIN_TIMEOUT_S / 4)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(_JOIN_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(_JOIN_TIMEOUT_S)
    for conn in conns:
        conn.close()


def _exit_status(proc) -> str:
    code = proc.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def probe_horizon(family: TaskFamily) -> int:
    if family.horizon is not None:
        return int(family.horizon)
    batch = family.make_batched(1)
    try:
        return int(batch.horizon)
    finally:
        batch.close()


class _Layout:
    """Byte offsets of the parameters (``[K, ...]`` where the plan takes task-stacked ones,
    else ``[1, ...]``) and of the output buffers in the shared block."""

    def __init__(self, plan: ShardPlan, horizon: int, num_tasks: int):
        self.entries: list[tuple[str, str, tuple[int, ...], np.dtype, int]] = []
        offset = 0
        rows = num_tasks if plan.stacked else 1
        for name, shape in plan.param_shapes().items():
            offset = self._add("param", name, (rows, *shape), np.dtype(np.float32), offset)
        for name, (shape, dtype) in plan.buffer_shapes(horizon, num_tasks).items():
            offset = self._add("buffer", name, shape, dtype, offset)
        self.nbytes = max(offset, 1)

    def _add(self, kind, name, shape, dtype, offset) -> int:
        offset = -(-offset // 64) * 64  # cache-line aligned
        self.entries.append((kind, name, shape, dtype, offset))
        return offset + int(np.prod(shape)) * dtype.itemsize

    def views(self, shared) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        raw = np.frombuffer(shared, dtype=np.uint8)
        params, buffers = {}, {}
        for kind, name, shape, dtype, offset in self.entries:
            size = int(np.prod(shape)) * dtype.itemsize
            view = raw[offset:offset + size].view(dtype).reshape(shape)
            (params if kind == "param" else buffers)[name] = view
        return params, buffers


# -- worker side ------------------------------------------------------------------------------
def _worker_main(conn: Connection, shared, sys_path: list[str]) -> None:
    """Serve ``sample`` requests for one slice of tasks (its plan's in-process sampler) until
    told to close or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    tune_malloc()  # as the command line does: freed tensor memory stays in the process
    torch.set_num_threads(1)
    sys.path[:] = sys_path  # before unpickling the family: plug-ins import by module path
    sampler = None
    try:
        try:
            message = conn.recv()
            _, family, plan, start, stop, num_tasks, horizon, threads = message
            ensure_registered(family)
            layout = _Layout(plan, horizon, num_tasks)
            params_all, buffers_all = layout.views(shared)
            buffers = plan.buffers(buffers_all).tasks(start, stop)
            sampler = plan.open(family, num_tasks=stop - start, task_offset=start,
                                num_threads=threads)
            if sampler.horizon != horizon:
                raise ValueError(f"the env's horizon is {sampler.horizon}, the main process "
                                 f"expected {horizon}")
            conn.send(("ready", None))
        except Exception as error:  # sent to the main process, which raises it there
            conn.send(failure_message(error))
            return
        while True:
            message = conn.recv()
            if message[0] == "close":
                return
            _, seed, tasks, shared_params = message
            try:
                params = {name: torch.from_numpy(p[0] if shared_params else p[start:stop])
                          for name, p in params_all.items()}
                sampler.sample(tasks, params, seed, out=buffers)
                conn.send(("done", None))
            except Exception as error:  # sent to the main process, which raises it there
                conn.send(failure_message(error))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the main process is gone: exit quietly
    finally:
        if sampler is not None:
            sampler.close()


def failure_message(error: Exception) -> tuple[str, object]:
    """The message that reports ``error`` (being handled) to the main process: ``("raise",
    error)`` for a ``FORWARDED`` error that pickles, else ``("error", traceback text)``."""
    if isinstance(error, FORWARDED):
        try:
            pickle.loads(pickle.dumps(error))
            return "raise", error
        except Exception:  # an error that does not survive pickling goes as text
            pass
    return "error", traceback.format_exc()


def ensure_registered(family: TaskFamily) -> None:
    """Re-register a family that the parent registered at run time (not by importing envs)."""
    inner = getattr(family, "inner", None)  # an oracle family: its own family's registration
    if inner is not None:
        ensure_registered(inner)
        return
    if family.env_id is None or family.env_id in gym.registry or family.env_cls is None:
        return
    envs.register_family(family.name, family.env_cls, batched=family.batched,
                         env_id=family.env_id, horizon=family.horizon, overwrite=True)


def _context():
    """The forkserver context, its server preloading this module (torch, MuJoCo, envs)."""
    context = mp.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def make_sampler(env_name: str | TaskFamily, spec: PolicySpec, *, num_tasks: int,
                 episodes_per_task: int, num_workers: int | None = None,
                 num_threads: int | None = None) -> BatchedSampler | ProcessSampler:
    """The sampler the trainer uses: in-process (``num_workers=1``) or sharded over processes.

    Args:
        env_name: task family (``metarl.envs.registry.resolve``).
        spec: the policy's shape.
        num_tasks, episodes_per_task: K and E of every ``sample`` call.
        num_workers: processes; 1 samples in this process (no subprocess). None: the usable
            cores for families whose batched env declares a heavy, parallel step
            (``parallel_step``: MuJoCo physics, the loop fallback's Python steps), 1 for
            array-maths families such as ``navigation_2d``, whose per-step cost is fixed Python
            overhead that extra processes only duplicate.
        num_threads: physics threads per process; default: the usable cores in-process, 2 per
            worker (a single-threaded worker stalls whenever the scheduler parks it behind
            other work).

    These defaults were chosen with ``bench/sampling.py`` (with the cores free and with other
    jobs running); its measurements are in docs/results.md, section "Performance". Both
    kinds have ``sample(tasks, params, seed) -> Episodes``, ``close()`` and are context
    managers; for the same seed their episodes are identical.
    """
    family = env_name if isinstance(env_name, TaskFamily) else envs.resolve(env_name)
    probe = family.make_batched(1, num_threads=1)
    try:
        check_env_sizes(family, probe, spec)  # both before any worker starts
        check_action_bounds(family, probe, spec)
        heavy_step = parallel_step(probe)
    finally:
        probe.close()
    if num_workers is None:
        num_workers = usable_cores() if heavy_step else 1
    if not isinstance(num_workers, int | np.integer) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive int or None, got {num_workers!r}")
    if num_workers == 1:
        return BatchedSampler(family, spec, num_tasks=num_tasks,
                              episodes_per_task=episodes_per_task, num_threads=num_threads)
    return ProcessSampler(family, spec, num_tasks=num_tasks,
                          episodes_per_task=episodes_per_task, num_workers=int(num_workers),
                          num_threads=min(2, usable_cores()) if num_threads is None
                          else num_threads)
