"""Env options through a run: recorded in config.yaml, rebuilt by resume, evaluate and the
baselines, carried to worker processes, refused in one line when bad."""

from dataclasses import fields

import pytest
import torch
import yaml
from run_helpers import one_error_line, only_run_dir

import metarl.rl.trainer as trainer_module
from metarl import envs
from metarl.experiment import make_config
from metarl.rl import workers as workers_module
from metarl.rl.config import task_family
from metarl.rl.episodes import Episodes
from metarl.rl.policy import GaussianMLPPolicy
from metarl.rl.sampler import PolicySpec
from metarl.rl.workers import ProcessSampler, make_sampler
from metarl.run import main

TINY = ["--num-batches", "2", "--meta-batch-size", "2", "--fast-batch-size", "2",
        "--hidden-sizes", "8", "8", "--cg-iters", "2", "--num-workers", "1", "--no-progress"]
PAPER = ["--env", "cheetah_vel", "--env-option", "clock=paper"]


@pytest.fixture
def sampled_families(monkeypatch):
    """The env options of every family a sampler is built for, in order."""
    seen = []
    original = trainer_module.make_sampler
    monkeypatch.setattr(trainer_module, "make_sampler", lambda family, *a, **k: seen.append(
        family.env_options) or original(family, *a, **k))
    return seen


def test_the_options_are_recorded_and_rebuilt_by_resume_and_evaluate(tmp_path,
                                                                     sampled_families):
    assert main(["maml_trpo", *PAPER, *TINY[6:], "--num-batches", "0", "--meta-batch-size",
                 "1", "--fast-batch-size", "1", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env_options"] == {
        "clock": "paper"}
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["config"]["env_options"] == {"clock": "paper"}
    assert main(["maml_trpo", "--resume", str(run_dir), "--num-batches", "1",
                 "--no-progress"]) == 0
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--episodes-per-task", "1", "--no-progress"]) == 0
    assert sampled_families == [{"clock": "paper"}] * 3  # train, resume, evaluate


def test_resume_refuses_other_options_in_one_line(tmp_path, capsys):
    assert main(["maml_trpo", *PAPER, *TINY[2:], "--num-batches", "1",
                 "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert main(["maml_trpo", "--resume", str(run_dir), "--env-option", "frame_skip=1",
                 "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "env_options" in line and "'clock': 'paper'" in line and "frame_skip" in line


def test_a_config_file_and_flags_overlay_their_keys(tmp_path):
    path = tmp_path / "paper.yaml"
    path.write_text("env: ant_dir\nenv_options: {frame_skip: 1}\n")
    config = make_config("maml_trpo", config_file=path, env_options=["timestep=0.02"])
    assert config.env_options == {"frame_skip": 1, "timestep": 0.02}
    family = task_family(config)
    assert family.make().unwrapped.dt == pytest.approx(0.02)


@pytest.mark.parametrize(("flag", "words"), [
    ("clok=paper", ["unknown env option 'clok'", "cheetah_vel", "valid env options"]),
    ("frame_skip=0", ["frame_skip=0", "cheetah_vel", "valid env options"]),
    ("timestep=.nan", ["env_options", "timestep", "finite"]),
    ("timestep=nan", ["env_options: timestep=nan must be a finite number"]),  # not a word
    ("gain=-inf", ["env_options: gain=-inf must be a finite number"]),  # before the family
    ("frame_skip", ["'frame_skip' is not KEY=VALUE"]),
])
def test_a_bad_option_is_exit_2_and_one_line(flag, words, tmp_path, capsys):
    assert main(["maml_trpo", "--env", "cheetah_vel", "--env-option", flag, *TINY,
                 "--output-dir", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert all(word in line for word in words), line
    assert not list(tmp_path.iterdir())  # nothing written


def test_worker_processes_build_the_same_envs_as_in_process(monkeypatch):
    monkeypatch.setattr(workers_module, "usable_cores", lambda: 2)
    family = envs.resolve("cheetah_vel").with_options(clock="paper")
    spec = PolicySpec(20, 6, (8, 8))
    tasks = family.sample_tasks(3, seed=4)
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(20, 6, (8, 8))
    params = {name: p.detach() for name, p in policy.named_parameters()}
    batches = []
    for workers in (1, None):
        with make_sampler(family, spec, num_tasks=3, episodes_per_task=2,
                          num_workers=workers, num_threads=1) as sampler:
            batches.append(sampler.sample(tasks, params, seed=5))
    assert isinstance(sampler, ProcessSampler)
    for field in fields(Episodes):
        assert torch.equal(getattr(batches[0], field.name), getattr(batches[1], field.name))
    with make_sampler(envs.resolve("cheetah_vel"), spec, num_tasks=3, episodes_per_task=2,
                      num_workers=1) as sampler:
        default = sampler.sample(tasks, params, seed=5)
    assert not torch.equal(default.observations, batches[0].observations)
