"""Shared by the benchmark scripts: the raw-physics reference and machine facts.

The scripts run as ``python bench/NAME.py``, which puts ``bench/`` first on ``sys.path``, so
they ``import common``.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from pathlib import Path

import mujoco
import mujoco.rollout
import numpy as np

from metarl.allocator import tune_malloc

tune_malloc()  # every bench measures with the allocator settings of training (metarl.allocator)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) used so far by this process and the processes ``pids``."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def time_raw_physics(model: mujoco.MjModel, num_envs: int, steps: int, frame_skip: int,
                     threads: int, seed: int) -> tuple[float, float]:
    """Env-steps per second of bare ``mujoco.rollout`` (``frame_skip`` substeps per env-step,
    open loop, random controls precomputed), and CPU seconds per env-step."""
    rng = np.random.default_rng(seed)
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    controls = rng.uniform(low, high, size=(steps, num_envs, 1, model.nu))
    controls = np.ascontiguousarray(np.repeat(controls, frame_skip, axis=2))
    full = mujoco.mjtState.mjSTATE_FULLPHYSICS
    data = mujoco.MjData(model)
    template = np.empty(mujoco.mj_stateSize(model, full))
    mujoco.mj_getState(model, data, template, full)
    state = np.tile(template, (num_envs, 1))
    state[:, 1:1 + model.nq] += rng.uniform(-0.1, 0.1, size=(num_envs, model.nq))
    out_state = np.empty((num_envs, frame_skip, state.shape[1]))
    out_sensor = np.empty((num_envs, frame_skip, model.nsensordata))
    datas = [mujoco.MjData(model) for _ in range(max(1, threads))]
    models = [model] * num_envs
    with mujoco.rollout.Rollout(nthread=threads if threads > 1 else 0) as rollout:
        start, cpu = time.perf_counter(), cpu_seconds([])
        for control in controls:
            rollout.rollout(models, datas, state, control, skip_checks=True, nstep=frame_skip,
                            control_spec=int(mujoco.mjtState.mjSTATE_CTRL), state=out_state,
                            sensordata=out_sensor if model.nsensordata else None,
                            initial_warmstart=None, chunk_size=None)
            state = np.ascontiguousarray(out_state[:, -1])
        elapsed, cpu = time.perf_counter() - start, cpu_seconds([]) - cpu
    return num_envs * steps / elapsed, cpu / (num_envs * steps)


def steps_in_turns(trainers: dict, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and CPU seconds of one ``step()`` of each trainer (name -> trainer), the
    trainers taking turns ``rounds`` times after one warm-up step each, so that a slow moment
    of a shared machine falls on all of them alike."""
    import statistics

    for trainer in trainers.values():
        trainer.step()  # warm-up: first-call allocations, held-out batches
    wall = {name: [] for name in trainers}
    cpu = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            start, start_cpu = time.perf_counter(), cpu_seconds([])
            trainer.step()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds([]) - start_cpu)
    return ({name: statistics.median(v) for name, v in wall.items()},
            {name: statistics.median(v) for name, v in cpu.items()})


def machine() -> dict:
    """Facts that make a timing interpretable: cores, load, versions."""
    import torch

    return {"cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
            "machine": platform.machine(), "mujoco": mujoco.__version__,
            "torch": torch.__version__.split("+")[0],
            "torch_threads": torch.get_num_threads()}
