"""The Ray sampler on a simulated two-node cluster: the in-process sampler's episodes bitwise,
whatever the actors; dead actors and lost nodes resampled; clear errors; no orphan processes."""

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import torch
import yaml
from run_helpers import one_error_line, only_run_dir
from sampler_helpers import assert_gone, assert_identical, params_for

from metarl import envs
from metarl.envs.tasks import TaskError
from metarl.rl.ray_sampler import RaySampler, RaySamplerError
from metarl.rl.sampler import BatchedSampler, PolicySpec

pytestmark = pytest.mark.usefixtures("ray_cluster")
# an actor start on a loaded 2-core machine has taken over the default 60 s; only the tests
# of the timeout itself shorten it
PLACEMENT_S = 300.0


def in_process(env, spec, tasks, params, seed, episodes):
    with BatchedSampler(env, spec, num_tasks=len(tasks), episodes_per_task=episodes) as sampler:
        return sampler.sample(tasks, params, seed)


def kill_later(pid: int, delay: float) -> threading.Thread:
    def kill():
        time.sleep(delay)
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def all_cpus_free(within: float = 30.0) -> None:
    """Wait until the actors of earlier tests (killed asynchronously) have freed their CPUs."""
    deadline = time.monotonic() + within
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.1)


def test_mujoco_episodes_are_the_in_process_ones_with_an_actor_per_task():
    spec = PolicySpec(20, 6, (16, 16))
    tasks = envs.sample_tasks("cheetah_vel", 3, seed=4)
    shared, stacked = params_for(spec), params_for(spec, 3)
    want = [in_process("cheetah_vel", spec, tasks, p, 5, 2) for p in (shared, stacked)]
    all_cpus_free()
    with RaySampler("cheetah_vel", spec, num_tasks=3, episodes_per_task=2,
                    placement_timeout_s=PLACEMENT_S) as sampler:
        assert sampler.num_actors == 3  # 4 CPUs free, but at most one actor per task
        for expected, params in zip(want, (shared, stacked)):
            assert_identical(sampler.sample(tasks, params, seed=5), expected)
    assert not torch.equal(want[0].actions, want[1].actions)


@pytest.mark.slow  # a cluster case the default suite's Ray tests do not need
def test_env_options_travel_with_the_family_to_the_actors():
    spec = PolicySpec(20, 6, (16, 16))
    family = envs.resolve("cheetah_vel").with_options(clock="paper")
    tasks = envs.sample_tasks("cheetah_vel", 2, seed=4)
    params = params_for(spec, 2)
    want = in_process(family, spec, tasks, params, 5, 1)
    default = in_process("cheetah_vel", spec, tasks, params, 5, 1)
    assert not torch.equal(want.observations, default.observations)
    with RaySampler(family, spec, num_tasks=2, episodes_per_task=1, num_actors=2,
                    placement_timeout_s=PLACEMENT_S) as sampler:
        assert_identical(sampler.sample(tasks, params, seed=5), want)


@pytest.mark.slow  # a cluster case the default suite's Ray tests do not need
def test_actors_are_spread_over_the_nodes_and_default_to_the_free_cpus():
    spec = PolicySpec(2, 2, (8,))
    all_cpus_free()
    with RaySampler("navigation_2d", spec, num_tasks=8, episodes_per_task=1,
                    placement_timeout_s=PLACEMENT_S) as sampler:
        assert sampler.num_actors == 4  # two nodes with 2 CPUs each, 1 CPU per actor
        assert len({where["node_id"] for where in sampler.placement}) == 2
        transfer_tasks = envs.sample_tasks("navigation_2d", 8, seed=1)
        sampler.sample(transfer_tasks, params_for(spec), seed=0)
        moved = sampler.transfer
        assert moved.params_bytes == sum(p.numel() * 4 for p in params_for(spec).values())
        assert moved.episode_bytes > 100 * 8 * (2 + 2 + 2) * 4  # T=100: obs, actions, ...


@pytest.mark.slow  # a cluster case the default suite's Ray tests do not need
def test_plugin_and_oracle_families_match_in_process(plugin_envs):
    for name, spec in (("plugin_family:LineTargetEnv", PolicySpec(1, 1, (8,))),
                       ("plugin_family:LineTargetEnv+oracle", PolicySpec(2, 1, (8,)))):
        tasks = [{"target": t} for t in (-0.6, -0.2, 0.3, 0.7)]
        params = params_for(spec, 4)
        want = in_process(name, spec, tasks, params, 1, 2)
        with RaySampler(name, spec, num_tasks=4, episodes_per_task=2, num_actors=2,
                        placement_timeout_s=PLACEMENT_S) as sampler:
            assert_identical(sampler.sample(tasks, params, seed=1), want)


def test_an_actor_killed_mid_sample_is_replaced_and_the_episodes_are_unchanged():
    spec = PolicySpec(1, 1, (8,))
    tasks = [{"target": t} for t in (-0.5, 0.5)]
    params = params_for(spec)
    with RaySampler("sampler_helpers:BriefSlowLine", spec, num_tasks=2,
                    episodes_per_task=1, num_actors=2, placement_timeout_s=PLACEMENT_S) as sampler:
        want = sampler.sample(tasks, params, seed=3)  # 100 steps of 10 ms: 1 s
        kill_later(sampler.pids[1], 0.5)
        assert_identical(sampler.sample(tasks, params, seed=3), want)
        assert sampler.transfer.retries == 1
        assert_identical(sampler.sample(tasks, params, seed=3), want)  # the replacement serves
        assert sampler.transfer.retries == 0


@pytest.mark.slow  # a cluster case the default suite's Ray tests do not need
def test_a_removed_node_has_its_shard_resampled_by_a_surviving_actor(ray_cluster, caplog):
    """Three actors of 2 CPUs fill three 2-CPU nodes; once one node is gone no replacement
    fits, so after the placement timeout another actor samples the lost shard too."""
    node = ray_cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    try:
        spec = PolicySpec(1, 1, (8,))
        tasks = [{"target": t} for t in (-0.5, 0.0, 0.5)]
        params = params_for(spec)
        all_cpus_free()
        with RaySampler("sampler_helpers:BriefSlowLine", spec, num_tasks=3,
                        episodes_per_task=1, cpus_per_actor=2,
                        placement_timeout_s=PLACEMENT_S) as sampler:
            sampler.placement_timeout_s = 3.0  # for the replacement: started, it never fits
            assert sampler.num_actors == 3
            assert len({where["node_id"] for where in sampler.placement}) == 3
            want = sampler.sample(tasks, params, seed=3)
            threading.Timer(0.5, ray_cluster.remove_node, args=(node,),
                            kwargs={"allow_graceful": False}).start()
            node = None
            assert_identical(sampler.sample(tasks, params, seed=3), want)
            assert sampler.transfer.retries == 1
            assert "another actor samples them" in caplog.text
            assert_identical(sampler.sample(tasks, params, seed=3), want)  # two shards, one actor
    finally:
        if node is not None:
            ray_cluster.remove_node(node)


def test_retries_exhausted_is_one_clear_error_and_leaves_no_actor():
    spec = PolicySpec(1, 1, (8,))
    tasks = [{"target": t} for t in (-0.5, 0.5)]
    sampler = RaySampler("sampler_helpers:SlowLine", spec, num_tasks=2, episodes_per_task=1,
                         num_actors=2, max_retries=0, placement_timeout_s=PLACEMENT_S)
    pids = sampler.pids
    kill_later(pids[0], 0.3)
    with pytest.raises(RaySamplerError, match=r"tasks 0:1 died 1 times in one meta-batch "
                                              r"\(--ray-retries 0\)"):
        sampler.sample(tasks, params_for(spec), seed=0)
    assert_gone(pids, within=30.0)
    with pytest.raises(RuntimeError, match="after close"):
        sampler.sample(tasks, params_for(spec), seed=0)


def test_ctrl_c_stops_the_actors():
    spec = PolicySpec(1, 1, (8,))
    sampler = RaySampler("sampler_helpers:SlowLine", spec, num_tasks=2, episodes_per_task=1,
                         num_actors=2, placement_timeout_s=PLACEMENT_S)
    pids = sampler.pids
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        sampler.sample([{"target": 0.1}] * 2, params_for(spec), seed=0)
    assert_gone(pids, within=30.0)


def test_a_fault_of_the_family_comes_back_as_itself_without_retries():
    spec = PolicySpec(2, 2, (8,))
    with RaySampler("navigation_2d", spec, num_tasks=2, episodes_per_task=1,
                    num_actors=2, placement_timeout_s=PLACEMENT_S) as sampler:
        with pytest.raises(TaskError, match="goal"):
            sampler.sample([{"goal": [0.1, 0.2]}, {"nope": 1}], params_for(spec), seed=0)


@pytest.mark.slow  # a cluster case the default suite's Ray tests do not need
def test_an_unexpected_actor_error_carries_its_traceback(plugin_envs):
    spec = PolicySpec(1, 1, (8,))
    with RaySampler("sampler_helpers:FailingLine", spec, num_tasks=2, episodes_per_task=1,
                    num_actors=2, placement_timeout_s=PLACEMENT_S) as sampler:
        with pytest.raises(Exception, match="boom at step 4") as error:
            sampler.sample([{"target": -0.5}, {"target": 0.5}], params_for(spec), seed=0)
    assert "sampler_helpers:FailingLine" in str(error.value)


def test_close_kills_the_actors_and_leaves_the_runtime_it_did_not_start():
    spec = PolicySpec(2, 2, (8,))
    sampler = RaySampler("navigation_2d", spec, num_tasks=2, episodes_per_task=1, num_actors=2,
                         placement_timeout_s=PLACEMENT_S)
    pids = sampler.pids
    sampler.close()
    sampler.close()
    assert_gone(pids, within=30.0)
    assert ray.is_initialized()  # the tests' cluster, which the sampler joined


def test_actors_that_cannot_be_placed_are_an_error_not_a_hang():
    spec = PolicySpec(2, 2, (8,))
    with pytest.raises(RaySamplerError, match="only 0 of 1 Ray sampler actors were placed"):
        RaySampler("navigation_2d", spec, num_tasks=1, episodes_per_task=1,
                   cpus_per_actor=64, placement_timeout_s=1.0)


# -- the command line ----------------------------------------------------------------------------
TINY = ["--num-batches", "2", "--meta-batch-size", "3", "--fast-batch-size", "2",
        "--hidden-sizes", "8", "8", "--cg-iters", "2", "--no-progress", "--torch-threads", "1",
        "--checkpoint-every", "1"]


def test_a_run_on_ray_equals_the_local_run_and_resumes_on_either_sampler(tmp_path):
    from metarl.run import main

    assert main(["maml_trpo", "--env", "cheetah_vel", *TINY, "--num-workers", "1",
                 "--output-dir", str(tmp_path / "local")]) == 0
    assert main(["maml_trpo", "--env", "cheetah_vel", *TINY, "--num-batches", "1",
                 "--sampler", "ray", "--ray-actors", "2", "--output-dir",
                 str(tmp_path / "ray")]) == 0
    ray_run = only_run_dir(tmp_path / "ray")
    assert yaml.safe_load((ray_run / "config.yaml").read_text())["sampler"] == "ray"
    assert main(["maml_trpo", "--resume", str(ray_run), "--num-batches", "2", "--sampler",
                 "local", "--no-progress"]) == 0
    local = torch.load(only_run_dir(tmp_path / "local") / "checkpoint.pt", weights_only=True)
    resumed = torch.load(ray_run / "checkpoint.pt", weights_only=True)
    assert resumed["iteration"] == 2
    for name, value in local["policy"].items():
        assert torch.equal(resumed["policy"][name], value), name


def test_ray_settings_with_the_local_sampler_are_ignored_with_a_warning(tmp_path, caplog):
    from metarl.run import main

    assert main(["maml_trpo", *TINY, "--num-batches", "1", "--ray-address", "auto",
                 "--output-dir", str(tmp_path)]) == 0
    assert ("warning: ray_address='auto' ignored: the local sampler samples (add --sampler ray "
            "to use Ray)") in caplog.text


def test_local_workers_with_the_ray_sampler_are_ignored_with_a_warning(caplog, monkeypatch):
    from metarl.rl import ray_sampler, trainer
    from metarl.rl.config import MAMLTRPOConfig, task_family

    monkeypatch.setattr(ray_sampler, "RaySampler", lambda *args, **kwargs: "ray")  # no actors
    spec = PolicySpec(2, 2, hidden_sizes=(8,), normalize_actions=True)
    for workers, warned in ((0, False), (2, True)):
        config = MAMLTRPOConfig(env="navigation_2d", sampler="ray", num_workers=workers)
        assert trainer.build_sampler(config, task_family(config), spec) == "ray"
        assert ("warning: num_workers=2 ignored: Ray actors sample (--ray-actors sets how "
                "many)" in caplog.text) == warned


def test_the_ray_sampler_without_ray_installed_names_the_extra(tmp_path, capsys, monkeypatch):
    import importlib.util

    from metarl.run import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["maml_trpo", "--sampler", "ray", "--output-dir", str(tmp_path)]) == 2
    assert one_error_line(capsys) == ("error: sampler='ray' needs Ray, which is not installed; "
                                      "install it with: pip install -e \".[ray]\"")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # a cluster case the default suite's Ray tests do not need
def test_a_command_line_run_joins_a_running_cluster_by_its_address(ray_cluster, tmp_path):
    """A separate process joins the tests' cluster with --ray-address, samples on its
    actors, and leaves the cluster running when it ends."""
    command = [sys.executable, "-m", "metarl.run", "maml_trpo", "--env", "navigation_2d", *TINY,
               "--num-batches", "1", "--sampler", "ray", "--ray-address", ray_cluster.address,
               "--ray-actors", "2", "--output-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Connected to Ray cluster" in done.stderr
    assert only_run_dir(tmp_path).joinpath("checkpoint.pt").exists()
    assert len([node for node in ray.nodes() if node["Alive"]]) == 2


@pytest.mark.slow
def test_sigterm_stops_a_command_line_run_on_ray_with_the_resume_message(tmp_path):
    """A real process (its own local Ray runtime): SIGTERM mid-run ends it with status 143
    and the resume message, and no process of its runtime is left."""
    command = [sys.executable, "-m", "metarl.run", "maml_trpo", "--env", "cheetah_vel",
               "--sampler", "ray", "--meta-batch-size", "2", "--fast-batch-size", "2",
               "--hidden-sizes", "8", "--cg-iters", "2", "--torch-threads", "1",
               "--checkpoint-every", "1", "--num-batches", "1000", "--no-progress",
               "--output-dir", str(tmp_path)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/checkpoint.pt")):  # the run is under way on Ray
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    session = latest_ray_session()
    process.send_signal(signal.SIGTERM)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 143
    run_dir = only_run_dir(tmp_path)
    assert err.rstrip().endswith(f"interrupted; the last checkpoint is intact: continue with "
                                 f"--resume {run_dir}")
    deadline = time.monotonic() + 20
    while session_processes(session):
        assert time.monotonic() < deadline, session_processes(session)
        time.sleep(0.2)


def latest_ray_session() -> str:
    return max(Path("/tmp/ray").glob("session_2*"), key=lambda p: p.stat().st_mtime).name


def session_processes(session: str) -> list[str]:
    """Command lines of the processes of one Ray session (raylet, GCS, agents, workers)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if session in text:
            found.append(text[:120])
    return found


def test_evaluate_samples_a_ray_run_on_this_machine(tmp_path, monkeypatch):
    """A run trained on Ray evaluates where Ray's cluster is gone, and its baselines' trainers
    need no actors of their own."""
    from metarl.rl import ray_sampler
    from metarl.run import main

    assert main(["maml_trpo", *TINY, "--num-batches", "1", "--sampler", "ray", "--ray-actors",
                 "2", "--output-dir", str(tmp_path)]) == 0

    def no_ray(*args, **kwargs):
        raise AssertionError("evaluate started a Ray sampler")

    monkeypatch.setattr(ray_sampler.RaySampler, "__init__", no_ray)
    assert main(["evaluate", "--run", str(only_run_dir(tmp_path)), "--num-tasks", "2",
                 "--steps", "1", "--episodes-per-task", "1", "--no-progress"]) == 0


def test_sigterm_turned_into_a_plain_interrupt_still_exits_143(tmp_path, capsys, monkeypatch):
    """Ray's wait turns the handler's Terminated into a plain KeyboardInterrupt; the command
    still ends with SIGTERM's status and the resume message."""
    from metarl.rl.trainer import MetaRLTrainer
    from metarl.run import Terminated, main

    def a_wait_that_swallows_terminated(self):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises on return from the call
        except Terminated:
            raise KeyboardInterrupt from None

    monkeypatch.setattr(MetaRLTrainer, "step", a_wait_that_swallows_terminated)
    assert main(["maml_trpo", *TINY, "--num-workers", "1", "--output-dir", str(tmp_path)]) == 143
    assert capsys.readouterr().err.rstrip().endswith("so there is nothing to resume")

