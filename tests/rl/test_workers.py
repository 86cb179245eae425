"""The process-sharded sampler: same episodes as in-process, failures surface fast, no orphans.

The workers import the slow and failing test envs as ``sampler_helpers:ClassName`` (``tests/`` is
on ``sys.path``, which the workers inherit).
"""

import os
import signal
import threading
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from sampler_helpers import assert_gone, assert_identical, params_for

from metarl import envs
from metarl.envs.registry import NotATaskFamilyError
from metarl.rl import workers as workers_module
from metarl.rl.sampler import PolicySpec
from metarl.rl.workers import ProcessSampler, WorkerError, make_sampler

HERE = Path(__file__).resolve().parent


@pytest.fixture
def test_envs_path(monkeypatch, plugin_envs):
    monkeypatch.syspath_prepend(str(HERE))


def test_one_and_two_workers_give_identical_episodes():
    spec = PolicySpec(2, 2, (16, 16))
    tasks = envs.sample_tasks("navigation_2d", 5, seed=4)
    results = []
    for workers in (1, 2):
        with make_sampler("navigation_2d", spec, num_tasks=5, episodes_per_task=3,
                          num_workers=workers) as sampler:
            # twice per sampler, as the trainer does: shared then task-stacked parameters
            results.append((sampler.sample(tasks, params_for(spec), seed=11),
                            sampler.sample(tasks, params_for(spec, 5), seed=12)))
    assert isinstance(sampler, ProcessSampler) and sampler.num_workers == 2
    (shared_1, stacked_1), (shared_2, stacked_2) = results
    assert_identical(shared_1, shared_2)
    assert_identical(stacked_1, stacked_2)
    assert not torch.equal(shared_2.actions, stacked_2.actions)


def test_one_and_two_workers_give_identical_mujoco_episodes(monkeypatch):
    monkeypatch.setattr(workers_module, "usable_cores", lambda: 2)
    spec = PolicySpec(20, 6, (16, 16))
    tasks = envs.sample_tasks("cheetah_vel", 3, seed=4)  # split 2 + 1 over the workers
    batches = []
    for workers in (1, None):  # None: MuJoCo families get one worker per usable core
        with make_sampler("cheetah_vel", spec, num_tasks=3, episodes_per_task=2,
                          num_workers=workers) as sampler:
            batches.append(sampler.sample(tasks, params_for(spec, 3), seed=5))
    assert isinstance(sampler, ProcessSampler) and sampler.num_workers == 2
    assert_identical(*batches)


def test_oracle_of_a_run_time_family_through_workers_matches_in_process(test_envs_path,
                                                                       monkeypatch):
    from plugin_family import LineTargetEnv

    monkeypatch.setattr(envs.registry, "_FAMILIES", dict(envs.registry._FAMILIES))
    envs.register_family("line_target_oracle", LineTargetEnv, env_id="test/OracleLine-v0")
    try:
        spec = PolicySpec(2, 1, (8,))  # the position and the target
        tasks = [{"target": t} for t in (-0.6, -0.2, 0.3, 0.7)]
        batches = []
        for workers in (1, 2):
            with make_sampler("line_target_oracle+oracle", spec, num_tasks=4,
                              episodes_per_task=2, num_workers=workers) as sampler:
                batches.append(sampler.sample(tasks, params_for(spec, 4), seed=1))
        assert_identical(*batches)
        targets = batches[0].observations[0, :, :, 1]  # [tasks, episodes] at t = 0
        torch.testing.assert_close(targets, torch.tensor([[-0.6] * 2, [-0.2] * 2, [0.3] * 2,
                                                          [0.7] * 2]))
    finally:
        del gym.registry["test/OracleLine-v0"]


def test_plugin_family_through_workers_matches_in_process(test_envs_path):
    name = "plugin_family:LineTargetEnv"
    spec = PolicySpec(1, 1, (8,))
    tasks = [{"target": t} for t in (-0.6, -0.2, 0.3, 0.7)]
    batches = []
    for workers in (1, 2):
        with make_sampler(name, spec, num_tasks=4, episodes_per_task=2,
                          num_workers=workers) as sampler:
            batches.append(sampler.sample(tasks, params_for(spec, 4), seed=1))
    assert_identical(*batches)
    assert batches[0].horizon == 30


def test_family_registered_at_run_time_is_known_to_workers(test_envs_path, monkeypatch):
    from plugin_family import LineTargetEnv

    monkeypatch.setattr(envs.registry, "_FAMILIES", dict(envs.registry._FAMILIES))
    envs.register_family("line_target_for_workers", LineTargetEnv, env_id="test/WorkersLine-v0")
    try:
        spec = PolicySpec(1, 1, (8,))
        with make_sampler("line_target_for_workers", spec, num_tasks=2, episodes_per_task=2,
                          num_workers=2) as sampler:
            batch = sampler.sample([{"target": 0.5}, {"target": -0.5}], params_for(spec), 0)
        assert batch.num_tasks == 2 and batch.horizon == 30
    finally:
        del gym.registry["test/WorkersLine-v0"]


def test_worker_exception_surfaces_with_its_traceback(test_envs_path):
    spec = PolicySpec(1, 1, (8,))
    sampler = make_sampler("faulty_families:CrashingBatchedLine", spec, num_tasks=2,
                           episodes_per_task=1, num_workers=2)
    pids = sampler.pids
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"(?s)worker 1 .*failed during sample.*Traceback.*"
                                          r"ValueError: boom at step 3"):
        sampler.sample([{"target": -0.5}, {"target": 0.5}], params_for(spec), seed=0)
    assert time.monotonic() - start < 5.0
    assert_gone(pids)  # the failure shut the whole sampler down
    with pytest.raises(RuntimeError, match="after close"):
        sampler.sample([{"target": -0.5}, {"target": 0.5}], params_for(spec), seed=0)


def test_an_exception_of_the_familys_step_in_a_worker_names_the_family_and_method(
        test_envs_path):
    spec = PolicySpec(1, 1, (8,))
    sampler = make_sampler("sampler_helpers:FailingLine", spec, num_tasks=2, episodes_per_task=1,
                           num_workers=2)
    pids = sampler.pids
    with pytest.raises(NotATaskFamilyError) as error:  # not a WorkerError with a traceback
        sampler.sample([{"target": -0.5}, {"target": 0.5}], params_for(spec), seed=0)
    assert str(error.value) == ("sampler_helpers:FailingLine: step raised ValueError: boom at step "
                                "4 for target 0.5")
    assert_gone(pids)


def test_a_fault_of_the_family_in_a_worker_surfaces_as_itself_in_one_line(test_envs_path):
    spec = PolicySpec(1, 1, (8,))
    sampler = make_sampler("faulty_families:DivergingLine", spec, num_tasks=2,
                           episodes_per_task=1, num_workers=2)
    pids = sampler.pids
    with pytest.raises(NotATaskFamilyError) as error:  # not a WorkerError with a traceback
        sampler.sample([{"target": -1.0}, {"target": 1.0}], params_for(spec), seed=0)
    assert str(error.value).startswith(
        "faulty_families:DivergingLine: step returned non-finite (NaN/inf, or beyond float32's "
        "±3.4e38) observations or rewards in 1 of 1 instances at episode step 3") and "\n" not in str(error.value)
    assert_gone(pids)


def test_killed_worker_surfaces_within_seconds(test_envs_path):
    spec = PolicySpec(1, 1, (8,))
    with make_sampler("sampler_helpers:SlowLine", spec, num_tasks=2, episodes_per_task=1,
                      num_workers=2) as sampler:
        pids = sampler.pids
        killer = threading.Timer(0.3, os.kill, (pids[0], signal.SIGKILL))
        killer.start()
        start = time.monotonic()
        with pytest.raises(WorkerError, match=r"worker 0 .*died during sample .*SIGKILL"):
            sampler.sample([{"target": 0.1}, {"target": 0.2}], params_for(spec), seed=0)
        elapsed = time.monotonic() - start  # a full sample would take 2 s
        killer.join()
    assert elapsed < 1.5
    assert_gone(pids)


def test_ctrl_c_stops_the_workers(test_envs_path):
    spec = PolicySpec(1, 1, (8,))
    sampler = make_sampler("sampler_helpers:SlowLine", spec, num_tasks=2, episodes_per_task=1,
                           num_workers=2)
    pids = sampler.pids
    interrupt = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        sampler.sample([{"target": 0.1}, {"target": 0.2}], params_for(spec), seed=0)
    interrupt.join()
    assert time.monotonic() - start < 1.5
    assert_gone(pids)


def test_close_leaves_no_processes_and_is_idempotent():
    spec = PolicySpec(2, 2, (8,))
    sampler = make_sampler("navigation_2d", spec, num_tasks=2, episodes_per_task=1,
                           num_workers=2)
    pids = sampler.pids
    assert len(pids) == 2 and all(Path(f"/proc/{pid}").exists() for pid in pids)
    sampler.close()
    sampler.close()
    assert_gone(pids)


def test_bad_counts_are_refused_before_any_worker_starts():
    spec = PolicySpec(2, 2, (8,))
    with pytest.raises(ValueError, match=r"num_threads must be an int >= 0 \(0: .*\), got -1"):
        ProcessSampler("navigation_2d", spec, num_tasks=2, episodes_per_task=1, num_workers=1,
                       num_threads=-1)
    with pytest.raises(ValueError, match="num_workers must be a positive int, got 0"):
        ProcessSampler("navigation_2d", spec, num_tasks=2, episodes_per_task=1, num_workers=0)
