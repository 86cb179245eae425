"""RL²'s trials sampled in shards (worker processes, Ray actors): the in-process sampler's to
float32 rounding, failures as the feed-forward sampler's, no orphans; the command line's options."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
from run_helpers import one_error_line, only_run_dir
from sampler_helpers import assert_gone

from metarl import envs
from metarl.envs.registry import NotATaskFamilyError
from metarl.rl.recurrent_policy import GRUGaussianPolicy
from metarl.rl.trial_sampler import Trials, TrialSampler
from metarl.rl.trial_shards import ProcessTrialSampler, make_trial_sampler, trial_plan
from metarl.rl.workers import WorkerError
from metarl.run import main

#: Episodes that end early (terminated near the target): trials with masked gaps.
LINE = "plugin_family:LineTargetFromBatch"


@pytest.fixture(autouse=True)
def one_thread():
    """One PyTorch thread, as the samplers use (a batched matmul's rounding may depend on how
    it is split over threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def policy_for(family, hidden: int = 6) -> GRUGaussianPolicy:
    plan, _ = trial_plan(family, hidden_size=hidden, trials_per_task=1, episodes_per_trial=1)
    torch.manual_seed(0)
    return GRUGaussianPolicy(plan.obs_size, plan.act_size, hidden, init_log_std=-0.5)


#: Float fields of a sharded sample against the in-process one: the GRU over fewer rows rounds
#: differently (float32), and on these smooth families the trajectories stay that close.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def assert_same_trials(a: Trials, b: Trials) -> None:
    """The same trials: counts, lengths and flags exactly, floats to rounding (a wrong seed,
    task or noise would differ by far more)."""
    for f in fields(Trials):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "hidden":
            continue
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            torch.testing.assert_close(x, y, **TOLERANCE, msg=f.name)
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f.name
        else:
            assert x == y, f.name


def in_process(family, tasks, policy, seed, trials=3, episodes=2) -> Trials:
    with TrialSampler(family, num_tasks=len(tasks), trials_per_task=trials,
                      episodes_per_trial=episodes, num_threads=1) as sampler:
        return sampler.sample(tasks, policy, seed)


@pytest.mark.parametrize("env", [LINE, "navigation_2d"])
def test_two_and_three_workers_give_the_in_process_trials(plugin_envs, env):
    family = envs.resolve(env)
    tasks = family.sample_tasks(5, seed=1)
    policy = policy_for(family)
    want = in_process(family, tasks, policy, 7)
    if env == LINE:
        assert (want.lengths < want.horizon).any()  # the masked gaps are exercised
    for workers in (2, 3):
        with make_trial_sampler(family, hidden_size=6, num_tasks=5, trials_per_task=3,
                                episodes_per_trial=2, num_workers=workers) as sampler:
            assert isinstance(sampler, ProcessTrialSampler)
            assert_same_trials(sampler.sample(tasks, policy, 7), want)
            pids = sampler.pids
    assert_gone(pids)


def test_a_raising_worker_is_a_worker_error_and_the_sampler_is_shut_down(plugin_envs):
    family = envs.resolve("faulty_families:CrashingBatchedLine")
    sampler = make_trial_sampler(family, hidden_size=4, num_tasks=2, trials_per_task=1,
                                 episodes_per_trial=1, num_workers=2)
    pids = sampler.pids
    with pytest.raises(WorkerError, match=r"(?s)worker 1 .*failed during sample.*Traceback.*"
                                          r"ValueError: boom at step 3"):
        sampler.sample([{"target": -0.5}, {"target": 0.5}], policy_for(family, 4), seed=0)
    assert_gone(pids)
    with pytest.raises(RuntimeError, match="ProcessTrialSampler.sample.. after close"):
        sampler.sample([{"target": -0.5}, {"target": 0.5}], policy_for(family, 4), seed=0)


def test_a_fault_of_the_family_in_a_worker_comes_back_as_itself(plugin_envs):
    family = envs.resolve("faulty_families:DivergingLine")
    with make_trial_sampler(family, hidden_size=4, num_tasks=2, trials_per_task=1,
                            episodes_per_trial=1, num_workers=2) as sampler:
        with pytest.raises(NotATaskFamilyError, match="^faulty_families:DivergingLine: step "
                                                      "returned non-finite"):
            sampler.sample([{"target": -1.0}, {"target": 1.0}], policy_for(family, 4), seed=0)


def test_a_policy_of_other_sizes_is_refused_before_any_worker_samples():
    family = envs.resolve("navigation_2d")
    with make_trial_sampler(family, hidden_size=6, num_tasks=2, trials_per_task=1,
                            episodes_per_trial=1, num_workers=2) as sampler:
        with pytest.raises(ValueError, match=r"obs, act, hidden sizes \(2, 2, 6\), got "
                                             r"\(2, 2, 4\)"):
            sampler.sample(family.sample_tasks(2, seed=0), policy_for(family, 4), seed=0)


@pytest.mark.usefixtures("ray_cluster")
def test_ray_actors_give_the_in_process_trials(plugin_envs):
    from metarl.rl.trial_shards import RayTrialSampler

    family = envs.resolve(LINE)
    tasks = family.sample_tasks(3, seed=2)
    policy = policy_for(family)
    want = in_process(family, tasks, policy, 4)
    plan, _ = trial_plan(family, hidden_size=6, trials_per_task=3, episodes_per_trial=2)
    # an actor's process imports torch as it starts: over a minute on 2 loaded cores
    with RayTrialSampler(family, plan, num_tasks=3, num_actors=2,
                         placement_timeout_s=300.0) as sampler:
        assert sampler.num_actors == 2
        assert_same_trials(sampler.sample(tasks, policy, 4), want)
        assert_same_trials(sampler.sample(tasks, policy, 4), want)  # the actors' samplers reused


# -- the command line ----------------------------------------------------------------------------
TINY = ["--env", "navigation_2d", "--num-batches", "2", "--meta-batch-size", "3",
        "--trials-per-task", "2", "--hidden-size", "4", "--ppo-epochs", "1",
        "--num-minibatches", "2", "--torch-threads", "1", "--no-progress",
        "--checkpoint-every", "1"]


def test_a_run_on_two_workers_equals_the_in_process_run_and_resumes_in_process(tmp_path):
    assert main(["rl2", *TINY, "--num-workers", "1", "--output-dir", str(tmp_path / "one")]) == 0
    assert main(["rl2", *TINY, "--num-batches", "1", "--num-workers", "2",
                 "--output-dir", str(tmp_path / "two")]) == 0
    two = only_run_dir(tmp_path / "two")
    assert main(["rl2", "--resume", str(two), "--num-batches", "2", "--num-workers", "1",
                 "--no-progress"]) == 0
    one = torch.load(only_run_dir(tmp_path / "one") / "checkpoint.pt", weights_only=True)
    resumed = torch.load(two / "checkpoint.pt", weights_only=True)
    assert resumed["iteration"] == one["iteration"] == 2
    for name, value in one["policy"].items():  # the same run, to the rounding of the GRU
        torch.testing.assert_close(resumed["policy"][name], value, rtol=1e-4, atol=1e-5,
                                   msg=name)


@pytest.mark.parametrize("flags, message", [
    (["--sampler", "spark"], "error: sampler='spark' is not valid; choose from: local, ray"),
    (["--num-workers", "-1"], "error: num_workers=-1 must be in [0, 256]"),
    (["--ray-cpus-per-actor", "0"], "error: ray_cpus_per_actor=0.0 must be in (0, 256]"),
    (["--ray-retries", "101"], "error: ray_retries=101 must be in [0, 100]"),
])
def test_bad_sampling_options_are_one_line_errors(tmp_path, capsys, flags, message):
    assert main(["rl2", *TINY, *flags, "--output-dir", str(tmp_path)]) == 2
    assert message in one_error_line(capsys)
    assert not list(tmp_path.iterdir())


def test_ray_settings_with_the_local_sampler_are_ignored_with_a_warning(tmp_path, caplog):
    assert main(["rl2", *TINY, "--num-batches", "0", "--ray-actors", "3",
                 "--output-dir", str(tmp_path)]) == 0
    assert ("warning: ray_actors=3 ignored: the local sampler samples (add --sampler ray to use "
            "Ray)") in caplog.text
