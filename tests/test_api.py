"""``metarl.experiment``: configs, training and evaluation from Python, as the command line does."""

import dataclasses
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch
import yaml
from run_helpers import only_run_dir

from metarl import experiment
from metarl.config import ConfigError
from metarl.rl.config import MAMLTRPOConfig
from metarl.run import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "script_a_run.py"
SINE_TINY = {"num_batches": 4, "meta_batch_size": 2, "eval_every": 0, "checkpoint_every": 2}


def saved_config(run_dir: Path) -> dict:
    """config.yaml without the folder it was asked to go to."""
    values = yaml.safe_load((run_dir / "config.yaml").read_text())
    values.pop("output_dir")
    return values


def test_make_config_takes_the_shipped_defaults_that_direct_construction_lacks():
    config = experiment.make_config("maml_trpo", env="navigation_2d")
    assert config.normalize_actions is True  # experiments/maml_trpo/navigation_2d.yaml
    assert MAMLTRPOConfig(env="navigation_2d").normalize_actions is False  # built-ins only
    cheetah = experiment.make_config("maml_trpo", env="cheetah_vel", num_batches=7)
    assert (cheetah.meta_batch_size, cheetah.init_std, cheetah.num_batches) == (40, 0.3, 7)
    assert experiment.make_config("maml").task == "sine"


def test_make_config_layers_a_config_file_under_the_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("task: sine\nfast_lr: 0.05\nseed: 7\n")
    config = experiment.make_config("maml", config_file=path, seed=8)
    assert (config.fast_lr, config.seed, config.meta_lr) == (0.05, 8, 0.001)


@pytest.mark.parametrize("algo, overrides, message", [
    ("maml", {"fast_lr": float("inf")}, "fast_lr=inf must be a finite number > 0"),
    ("maml", {"speed": 1}, "unknown option(s) speed"),
    ("maml", {"task": "cosine"}, "task='cosine' is not valid; choose from: sine, omniglot"),
    ("sarsa", {}, "algo='sarsa' is not valid; choose from: maml, maml_trpo"),
    ("maml_trpo", {"seed": 2**32}, "seed=4294967296 must be in [0, 4294967295]"),
])
def test_make_config_refuses_what_the_command_line_refuses(algo, overrides, message):
    with pytest.raises(ConfigError) as error:
        experiment.make_config(algo, **overrides)
    assert message in str(error.value)


def test_train_validates_a_directly_built_config_before_creating_anything(tmp_path):
    config = MAMLTRPOConfig(max_kl=float("inf"), output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="max_kl=inf must be a finite number > 0"):
        experiment.train(config)
    assert list(tmp_path.iterdir()) == []


def test_python_and_the_command_line_give_the_same_run(tmp_path):
    config = experiment.make_config("maml", output_dir=str(tmp_path / "api"), **SINE_TINY)
    run_dir = experiment.train(config)
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in SINE_TINY.items()]
    assert main(["maml", *flags, "--no-progress", "--output-dir", str(tmp_path / "cli")]) == 0
    cli_dir = only_run_dir(tmp_path / "cli")
    assert saved_config(run_dir) == saved_config(cli_dir)
    api_state, cli_state = (torch.load(d / "checkpoint.pt", weights_only=True)
                            for d in (run_dir, cli_dir))
    for name, value in cli_state["model"].items():
        torch.testing.assert_close(api_state["model"][name], value, rtol=0, atol=0)


def test_a_resume_from_python_is_guarded_like_the_command_line(tmp_path):
    run_dir = experiment.train(experiment.make_config("maml", output_dir=str(tmp_path),
                                                      **SINE_TINY))
    before = (run_dir / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"fast_lr \(saved 0.01, new 0.5\)"):
        experiment.make_config("maml", resume=run_dir, fast_lr=0.5)
    changed = dataclasses.replace(experiment.make_config("maml", resume=run_dir), fast_lr=0.5)
    with pytest.raises(ConfigError, match=r"fast_lr \(saved 0.01, new 0.5\)"):
        experiment.train(changed, resume=run_dir)  # built by hand: Run checks it again
    with pytest.raises(ConfigError, match="num_batches=3 is below the iteration of the "
                                          "checkpoint in .*, 4"):
        experiment.make_config("maml", resume=run_dir, num_batches=3)
    assert (run_dir / "checkpoint.pt").read_bytes() == before
    longer = experiment.make_config("maml", resume=run_dir, num_batches=6)
    experiment.train(longer, resume=run_dir)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"] == 6


def test_evaluate_from_python_writes_what_the_command_line_writes(tmp_path):
    run_dir = experiment.train(experiment.make_config("maml", output_dir=str(tmp_path),
                                                      **SINE_TINY))
    options = {"num_tasks": 8, "steps": 2, "baselines": False, "shots": 4}  # one int: --shots 4
    result = experiment.evaluate(run_dir, output=str(tmp_path / "api"), **options)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "8", "--steps", "2",
                 "--no-baselines", "--shots", "4", "--output", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "curve.json").read_text())
    api = json.loads((tmp_path / "api" / "curve.json").read_text())
    assert api["methods"] == cli["methods"] and len(api["methods"]["maml"]["mean"]) == 3
    assert api["shots"] == cli["shots"] == 4
    assert "maml" in result["table"]
    with pytest.raises(ConfigError, match="num_tasks=1 must be >= 2"):
        experiment.evaluate(run_dir, num_tasks=1)


def test_the_example_script_matches_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), str(tmp_path / "script")])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "maml" in capsys.readouterr().out  # the evaluation table
    script_dir = only_run_dir(tmp_path / "script")
    tiny = ["--num-batches", "2", "--meta-batch-size", "2", "--fast-batch-size", "2",
            "--hidden-sizes", "8", "8", "--no-progress"]
    assert main(["maml_trpo", "--env", "navigation_2d", *tiny,
                 "--output-dir", str(tmp_path / "cli")]) == 0
    cli_dir = only_run_dir(tmp_path / "cli")
    assert main(["maml_trpo", "--resume", str(cli_dir), "--num-batches", "3",
                 "--no-progress"]) == 0
    assert saved_config(script_dir) == saved_config(cli_dir)
    assert saved_config(script_dir)["normalize_actions"] is True
    script, cli = (torch.load(d / "checkpoint.pt", weights_only=True)
                   for d in (script_dir, cli_dir))
    assert script["iteration"] == cli["iteration"] == 3
    for name, value in cli["policy"].items():
        torch.testing.assert_close(script["policy"][name], value, rtol=0, atol=0)
    assert (script_dir / "evaluation" / "curve.json").is_file()


def test_a_new_run_goes_into_the_directory_named_and_is_not_started_twice(tmp_path):
    config = experiment.make_config("maml", output_dir=str(tmp_path / "unused"), **SINE_TINY)
    named = tmp_path / "grid" / "sine__seed0"
    named.mkdir(parents=True)
    (named / "config.yaml").write_text("left by a run stopped before its first checkpoint\n")
    stale = named / "events.out.tfevents.1.stopped.0"  # its steps would show twice
    stale.write_bytes(b"")
    assert experiment.train(config, run_dir=named) == named
    assert (named / "checkpoint.pt").is_file() and not (tmp_path / "unused").exists()
    assert not stale.exists() and len(list(named.glob("events.out.tfevents.*"))) == 1
    with pytest.raises(ValueError, match="already holds a run"):
        experiment.train(config, run_dir=named)
    with pytest.raises(ValueError, match="not both"):
        experiment.train(config, resume=named, run_dir=named)
