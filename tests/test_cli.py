"""The command line: smoke runs, resume, evaluate, and one-line errors for bad input."""

import csv
import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch
import yaml
from run_helpers import only_run_dir

from metarl.run import main

TINY = ["--num-batches", "20", "--meta-batch-size", "4", "--eval-every", "10", "--eval-tasks",
        "8", "--eval-steps", "2", "--checkpoint-every", "10", "--no-progress"]


def test_maml_sine_smoke_writes_config_events_and_checkpoint(tmp_path):
    assert main(["maml", "--task", "sine", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith("maml__sine__0__")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["algo"] == "maml" and saved["num_batches"] == 20 and saved["fast_lr"] == 0.01
    assert list(run_dir.glob("events.out.tfevents.*"))
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 20


def test_config_file_then_flags_override_it(tmp_path):
    config = tmp_path / "my.yaml"
    config.write_text("meta_batch_size: 3\nfast_lr: 0.05\nseed: 7\n")
    out = tmp_path / "runs"
    assert main(["maml", "--config", str(config), *TINY, "--fast-lr", "0.02",
                 "--output-dir", str(out)]) == 0
    saved = yaml.safe_load((only_run_dir(out) / "config.yaml").read_text())
    assert saved["seed"] == 7 and saved["fast_lr"] == 0.02 and saved["meta_batch_size"] == 4


def test_resume_continues_to_the_same_result_as_an_uninterrupted_run(tmp_path):
    common = [*TINY[2:], "--seed", "3"]  # everything but --num-batches
    assert main(["maml", "--num-batches", "20", *common, "--output-dir", str(tmp_path / "a")]) == 0
    assert main(["maml", "--num-batches", "10", *common, "--output-dir", str(tmp_path / "b")]) == 0
    interrupted = only_run_dir(tmp_path / "b")
    assert main(["maml", "--resume", str(interrupted), "--num-batches", "20",
                 "--no-progress"]) == 0
    full = torch.load(only_run_dir(tmp_path / "a") / "checkpoint.pt", weights_only=True)
    resumed = torch.load(interrupted / "checkpoint.pt", weights_only=True)
    assert resumed["iteration"] == 20
    for name, value in full["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, rtol=0, atol=0)


def test_evaluate_writes_curve_json_csv_png(tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "20", "--steps", "3",
                 "--baseline-iterations", "5"]) == 0
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    assert set(result["methods"]) == {"maml", "pretrained", "oracle"}
    assert len(result["methods"]["maml"]["mean"]) == 4
    assert result["num_tasks"] == 20
    assert (run_dir / "evaluation" / "curve.csv").read_text().count("\n") == 1 + 3 * 4
    with open(run_dir / "evaluation" / "per_task.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * 20 * 4  # methods x tasks x steps
    maml_step_1 = [float(r["mse"]) for r in rows if r["method"] == "maml" and r["step"] == "1"]
    assert sum(maml_step_1) / 20 == pytest.approx(result["methods"]["maml"]["mean"][1], rel=1e-4)
    assert all(0.1 <= float(r["amplitude"]) <= 5.0 for r in rows)
    assert (run_dir / "evaluation" / "curve.png").stat().st_size > 10_000
    assert "maml" in capsys.readouterr().out
    assert main(["evaluate", "--run", str(run_dir), "--episodes-per-task", "40"]) == 2
    err = capsys.readouterr().err
    assert "--episodes-per-task: only for meta-RL runs" in err and err.count("\n") == 1


def test_evaluate_later_steps_take_the_scaled_step_size(tmp_path):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    curves = {}
    for scale in ("1", "0.25"):
        out = tmp_path / f"scale_{scale}"
        assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "20", "--steps", "2",
                     "--no-baselines", "--later-lr-scale", scale, "--output", str(out)]) == 0
        curves[scale] = json.loads((out / "curve.json").read_text())
    assert curves["0.25"]["step_sizes"] == pytest.approx([0.01, 0.0025])
    one, quarter = (curves[s]["methods"]["maml"]["mean"] for s in ("1", "0.25"))
    assert quarter[:2] == pytest.approx(one[:2], rel=1e-6)  # the same first step
    assert quarter[2] != pytest.approx(one[2], rel=1e-6)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "20", "--steps", "0",
                 "--output", str(tmp_path / "no_steps"), "--baseline-iterations", "2"]) == 0


def test_a_gradient_based_run_is_evaluated_at_one_k(tmp_path, capsys):
    """A curve over shots is for episodic runs: several ``--shots`` on a MAML run are one error
    line that says to give one value; one value evaluates at that K."""
    assert main(["maml", *TINY, "--num-batches", "1", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    evaluate = ["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--steps", "1",
                "--no-baselines", "--no-progress"]
    assert main([*evaluate, "--shots", "1", "5"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --shots 1 5: a maml run is evaluated at one K (its curve is over "
                   "adaptation steps); give one value, and evaluate once per value with its own "
                   "--output\n")
    assert main([*evaluate, "--shots", "5"]) == 0
    assert json.loads((run_dir / "evaluation" / "curve.json").read_text())["shots"] == 5


@pytest.mark.parametrize("argv, expected", [
    (["sarsa"], "unknown algorithm 'sarsa'; choose from: maml"),
    (["maml", "--task", "cosine"], "task='cosine' is not valid; choose from: sine"),
    (["maml", "--fast-lr", "-0.1"], "fast_lr=-0.1 must be > 0"),
    (["maml", "--meta-lr", "0"], "meta_lr=0.0 must be > 0"),
    (["maml", "--meta-batch-size", "0"], "meta_batch_size=0 must be > 0"),
    (["maml", "--meta-batch-size", "two"], "meta_batch_size='two' is not a valid int"),
    (["maml", "--config", "/nonexistent/sine.yaml"], "config file not found: /nonexistent/sine.yaml"),
    (["maml", "--config", "/"], "config file / is a folder; give a YAML file"),
    (["maml", "--resume", "/nonexistent/run"], "no such run directory"),
    (["evaluate", "--run", "/nonexistent/run"], "--run /nonexistent/run is not a run directory"),
    (["maml", "--bogus-flag", "1"], "unrecognized arguments: --bogus-flag 1"),
    (["maml_trpo", "--seed", "-1"], "seed=-1 must be in [0, 4294967295]"),
    (["maml", "--seed", "-2"], "seed=-2 must be in [0, 4294967295]"),
    (["maml", "--task", "omniglot", "--split-seed", "-1"], "split_seed=-1 must be in [0, "),
    (["evaluate", "--run", "/nonexistent/run", "--seed", "-1"], "seed=-1 must be in [0, "),
    (["maml", "--fast-lr", "inf"], "fast_lr=inf must be a finite number > 0"),
    (["maml", "--meta-lr", "inf"], "meta_lr=inf must be a finite number > 0"),
    (["maml", "--meta-lr", "nan"], "meta_lr=nan must be a finite number > 0"),
    (["maml_trpo", "--max-kl", "inf"], "max_kl=inf must be a finite number > 0"),
    (["maml_trpo", "--init-std", "inf"], "init_std=inf must be a finite number > 0"),
    (["maml_trpo", "--cg-damping", "1e999"], "cg_damping=inf must be a finite number >= 0"),
    (["maml", "--seed", "4294967296"], "seed=4294967296 must be in [0, 4294967295]"),
    (["maml_trpo", "--seed", str(2**64)], f"seed={2**64} must be in [0, 4294967295]"),
    (["maml", "--num-batches", str(2**63)], "must be at most 9223372036854775807"),
    (["maml", "--torch-threads", "100000"], "torch_threads=100000 must be in [0, 256]"),
    (["maml_trpo", "--torch-threads", "-1"], "torch_threads=-1 must be in [0, 256]"),
    (["maml_trpo", "--num-workers", "1000"], "num_workers=1000 must be in [0, 256]"),
    (["evaluate", "--run", "/nonexistent/run", "--torch-threads", "257"],
     "torch_threads=257 must be in [0, 256]"),
    (["evaluate", "--run", "/nonexistent/run", "--later-lr-scale", "inf"],
     "later_lr_scale=inf must be a finite number > 0"),
    (["evaluate", "--run", "/nonexistent/run", "--seed", "4294967296"],
     "seed=4294967296 must be in [0, 4294967295]"),
    (["evaluate", "--run", "/nonexistent/run", "--shots", "1", "0"],
     "shots=(1, 0) must be >= 1"),
    (["promp", "--hidden-size", "8"], "unrecognized arguments: --hidden-size 8"),  # rl2's flag
    (["maml_trpo", "--fast-l", "0.1"], "unrecognized arguments: --fast-l 0.1"),  # no prefixes
    (["rl2", "--clip-eps", "1.5"], "clip_eps=1.5 must be in (0, 1)"),
])
def test_bad_input_exits_2_with_one_line(argv, expected, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unknown_key_in_config_file_names_valid_options(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("fast_learning_rate: 0.1\n")
    assert main(["maml", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) fast_learning_rate" in err and "fast_lr" in err


def test_corrupt_checkpoint_is_a_clear_error_and_is_not_overwritten(tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    checkpoint = run_dir / "checkpoint.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    assert main(["evaluate", "--run", str(run_dir)]) == 2
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "30", "--no-progress"]) == 2
    assert "is corrupt or unreadable" in capsys.readouterr().err
    assert checkpoint.read_bytes() == b"not a checkpoint"


def test_checkpoint_from_another_architecture_is_refused(tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("- 40\n- 40", "- 20\n- 20"))
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "30", "--no-progress"]) == 2
    assert "hidden_sizes=" in capsys.readouterr().err


def test_module_entry_point_reports_errors_without_traceback():
    result = subprocess.run([sys.executable, "-m", "metarl.run", "maml", "--fast-lr", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: fast_lr=0.0 must be > 0"


def test_empty_value_in_config_file_is_one_line(tmp_path, capsys):
    config = tmp_path / "empty.yaml"
    config.write_text("fast_lr:\nnum_batches: null\n")
    assert main(["maml", "--config", str(config), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "fast_lr is empty; give a float" in err and err.count("\n") == 1
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no run directory


RL_TINY = ["--num-batches", "0", "--hidden-sizes", "8", "8", "--num-workers", "1",
           "--no-progress"]


def test_env_in_config_file_picks_that_envs_shipped_defaults(tmp_path):
    config = tmp_path / "cheetah.yaml"
    config.write_text("env: cheetah_vel\n")
    assert main(["maml_trpo", "--config", str(config), *RL_TINY,
                 "--output-dir", str(tmp_path / "file")]) == 0
    run_dir = only_run_dir(tmp_path / "file")
    assert run_dir.name.startswith("maml_trpo__cheetah_vel__")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    # experiments/maml_trpo/cheetah_vel.yaml, not navigation_2d's 20 tasks and normalized actions
    assert saved["env"] == "cheetah_vel" and saved["meta_batch_size"] == 40
    assert saved["normalize_actions"] is False
    # the flag overrides the file, and picks its own env's defaults
    assert main(["maml_trpo", "--config", str(config), "--env", "navigation_2d", *RL_TINY,
                 "--output-dir", str(tmp_path / "flag")]) == 0
    saved = yaml.safe_load((only_run_dir(tmp_path / "flag") / "config.yaml").read_text())
    assert saved["env"] == "navigation_2d" and saved["normalize_actions"] is True


def test_task_in_config_file_picks_that_tasks_config(tmp_path, capsys):
    config = tmp_path / "omniglot.yaml"
    config.write_text("task: omniglot\ndata_dir: /nonexistent/omniglot\n")
    # data_dir is an Omniglot option: a sine config would call it unknown
    assert main(["maml", "--config", str(config), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "data directory not found: /nonexistent/omniglot" in err and err.count("\n") == 1


def test_resume_refuses_changes_that_alter_the_run(tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    config_before = (run_dir / "config.yaml").read_text()
    checkpoint_before = (run_dir / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "30", "--meta-lr", "0.01",
                 "--seed", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "meta_lr (saved 0.001, new 0.01)" in err and "seed (saved 0, new 4)" in err
    assert "may change only num_batches, " in err and "fast_lr" not in err
    other = tmp_path / "other.yaml"
    other.write_text("task: omniglot\n")
    assert main(["maml", "--resume", str(run_dir), "--config", str(other)]) == 2
    assert "task='omniglot' (from " in capsys.readouterr().err
    assert (run_dir / "config.yaml").read_text() == config_before
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint_before
    # budget, checkpointing and logging may change; restating a saved value is no change
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "22", "--eval-every", "11",
                 "--checkpoint-every", "1", "--fast-lr", "0.01", "--no-progress"]) == 0
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["num_batches"], saved["eval_every"], saved["checkpoint_every"]) == (22, 11, 1)


def test_rl_resume_refuses_a_new_fast_lr(tmp_path, capsys):
    assert main(["maml_trpo", *RL_TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert main(["maml_trpo", "--resume", str(run_dir), "--fast-lr", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "fast_lr (saved 0.1, new 0.2)" in err and "num_workers, ray_address" in err and "torch_threads, device" in err


def test_ctrl_c_says_whether_a_checkpoint_exists(tmp_path, capsys, monkeypatch):
    import metarl.training as trainer

    real_train = trainer.train

    def interrupt_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    def interrupt_after_training(*args, **kwargs):  # as if pressed after the last checkpoint
        real_train(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train", interrupt_at_once)
    assert main(["maml", *TINY, "--output-dir", str(tmp_path / "early")]) == 130
    err = capsys.readouterr().err
    assert "no checkpoint was written yet" in err and "intact" not in err
    monkeypatch.setattr(trainer, "train", interrupt_after_training)
    assert main(["maml", *TINY, "--output-dir", str(tmp_path / "late")]) == 130
    run_dir = only_run_dir(tmp_path / "late")
    err = capsys.readouterr().err
    assert f"the last checkpoint is intact: continue with --resume {run_dir}" in err


def test_resume_takes_the_checkpoints_config_not_an_edited_config_yaml(tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    config, checkpoint = run_dir / "config.yaml", run_dir / "checkpoint.pt"
    before = checkpoint.read_bytes()
    edited = config.read_text().replace("fast_lr: 0.01", "fast_lr: 0.02")
    config.write_text(edited)
    capsys.readouterr()
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "30", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{config} was edited to fast_lr=0.02 (checkpoint: 0.01)" in err
    assert "may change only num_batches, " in err and err.count("\n") == 1
    assert config.read_text() == edited and checkpoint.read_bytes() == before
    # what a resume may change may be edited there: it is taken, the rest from the checkpoint
    config.write_text(edited.replace("fast_lr: 0.02", "fast_lr: 0.01").replace(
        "checkpoint_every: 10", "checkpoint_every: 5"))
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "25", "--no-progress"]) == 0
    state = torch.load(checkpoint, weights_only=True)
    assert state["iteration"] == 25 and state["config"]["checkpoint_every"] == 5
    assert state["config"]["fast_lr"] == 0.01


def test_resume_below_the_checkpoints_iteration_is_refused_and_changes_nothing(tmp_path,
                                                                               capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    before = {path.name: path.read_bytes() for path in run_dir.iterdir()}
    capsys.readouterr()
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "10", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (f"num_batches=10 is below the iteration of the checkpoint in {run_dir}, 20" in err
            and "give num_batches >= 20" in err and err.count("\n") == 1)
    assert {path.name: path.read_bytes() for path in run_dir.iterdir()} == before
    config = run_dir / "config.yaml"  # the same from an edited config.yaml
    config.write_text(config.read_text().replace("num_batches: 20", "num_batches: 5"))
    assert main(["maml", "--resume", str(run_dir), "--no-progress"]) == 2
    assert "num_batches=5 is below the iteration" in capsys.readouterr().err


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path, capsys, monkeypatch):
    import metarl.training as trainer

    real_train = trainer.train

    def terminated_after_training(*args, **kwargs):
        real_train(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises on return from the call
        raise AssertionError("SIGTERM did not stop the run")

    handler = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(trainer, "train", terminated_after_training)
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 143
    run_dir = only_run_dir(tmp_path)
    err = capsys.readouterr().err
    assert err.endswith(f"interrupted; the last checkpoint is intact: continue with --resume "
                        f"{run_dir}\n")
    assert "Traceback" not in err
    assert signal.getsignal(signal.SIGTERM) is handler  # restored when main returns


def test_every_command_takes_torch_threads_and_sine_runs_on_one(tmp_path, monkeypatch):
    from metarl import experiment

    assert experiment.make_config("maml", task="sine").torch_threads == 1
    assert experiment.make_config("maml", task="omniglot").torch_threads == 0
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert main(["maml", *TINY, "--output-dir", str(tmp_path / "a")]) == 0
    assert threads == [1]
    assert main(["maml", *TINY, "--torch-threads", "2", "--output-dir", str(tmp_path / "b")]) == 0
    run_dir = only_run_dir(tmp_path / "b")
    assert threads == [1, 2]
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--steps", "1",
                 "--no-baselines", "--torch-threads", "3"]) == 0
    assert threads == [1, 2, 3]
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--steps", "1",
                 "--no-baselines", "--output", str(tmp_path / "eval")]) == 0
    assert threads == [1, 2, 3, 2]  # the run's own


def test_a_forwarded_worker_traceback_is_reported_in_one_line():
    from metarl.rl.workers import WorkerError
    from metarl.run import one_line

    error = WorkerError("sampler worker 0 (pid 7, tasks 0:2) failed during sample:\n"
                        "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                        "ValueError: the goal is out of reach\n")
    assert one_line(error) == ("sampler worker 0 (pid 7, tasks 0:2) failed during sample: "
                               "ValueError: the goal is out of reach")
    assert one_line(WorkerError("sampler worker 1 is gone (exit code 1)")) == (
        "sampler worker 1 is gone (exit code 1)")


def test_evaluate_names_a_run_or_checkpoint_path_of_the_wrong_kind(tmp_path, capsys):
    (tmp_path / "run" / "checkpoint.pt").mkdir(parents=True)  # a folder where the file goes
    cases = [
        (["--run", str(tmp_path / "missing")],
         f"error: --run {tmp_path / 'missing'} is not a run directory; give the folder that "
         f"holds checkpoint.pt, or a checkpoint file with --checkpoint"),
        (["--checkpoint", str(tmp_path)],
         f"error: --checkpoint {tmp_path} is a directory; give a checkpoint file, or the run "
         f"directory with --run"),
        (["--run", str(tmp_path / "run")],
         f"error: checkpoint not found: {tmp_path / 'run' / 'checkpoint.pt'}"),
    ]
    for argv, expected in cases:
        assert main(["evaluate", *argv]) == 2
        assert capsys.readouterr().err.strip() == expected


@pytest.mark.parametrize("sizes", [["--hidden-sizes", "1000000", "1000000"],
                                   ["--meta-batch-size", "100000000000"]])
def test_sizes_beyond_the_machines_memory_are_one_line(tmp_path, capsys, sizes):
    assert main(["maml_trpo", "--env", "navigation_2d", *sizes, "--num-batches", "1",
                 "--torch-threads", "1", "--no-progress", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("run directory:")]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("error: out of memory (")
    assert "reduce --meta-batch-size, --fast-batch-size, --hidden-sizes" in lines[0]


def test_resume_of_a_run_stopped_before_its_first_checkpoint_says_to_start_anew(tmp_path,
                                                                                 capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("algo: maml_trpo\nenv: navigation_2d\n")
    assert main(["maml_trpo", "--resume", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --resume {run_dir}: the run stopped before its first checkpoint (written every "
        "--checkpoint-every iterations), so there is nothing to resume; start it anew without "
        "--resume")


def test_resume_refuses_an_output_dir_it_would_not_write_to(tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path / "a")]) == 0
    run_dir = only_run_dir(tmp_path / "a")
    capsys.readouterr()
    assert main(["maml", "--resume", str(run_dir), "--output-dir", str(tmp_path / "b"),
                 "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: output_dir={str(tmp_path / 'b')!r}: a resumed run continues in its own "
        f"directory, {run_dir}; leave --output-dir out (it may name only the folder that "
        "holds the run, after a move)")
    assert not (tmp_path / "b").exists()
    moved = tmp_path / "c"
    (tmp_path / "a").rename(moved)  # the folder that holds the run now: accepted, recorded
    assert main(["maml", "--resume", str(moved / run_dir.name), "--output-dir", str(moved),
                 "--num-batches", "21", "--no-progress"]) == 0
    assert f"output_dir: {moved}" in (moved / run_dir.name / "config.yaml").read_text()


def test_a_runs_config_yaml_repeats_the_run_with_its_command_only(tmp_path, capsys):
    assert main(["maml", *TINY, "--fast-lr", "0.02", "--output-dir", str(tmp_path / "a")]) == 0
    saved = only_run_dir(tmp_path / "a") / "config.yaml"
    assert main(["maml", "--config", str(saved), "--output-dir", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    assert "fast_lr: 0.02" in (only_run_dir(tmp_path / "b") / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["fomaml", "--config", str(saved)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: config file {saved} is the config of a 'maml' run (its algo: key); use it "
        "with python -m metarl.run maml, not fomaml")


def test_resuming_a_finished_run_says_there_is_nothing_to_train_and_writes_nothing(
        tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    before = sorted(path.name for path in run_dir.iterdir())
    capsys.readouterr()
    assert main(["maml", "--resume", str(run_dir), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"nothing to train: {run_dir} is at iteration 20, its num_batches; give "
        "--num-batches N > 20 to train it longer")
    assert sorted(path.name for path in run_dir.iterdir()) == before  # no new events file


def test_resume_with_another_command_names_the_run_s_own(tmp_path, capsys):
    assert main(["maml", *TINY, "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert main(["fomaml", "--resume", str(run_dir)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --resume {run_dir}: a 'maml' run, not 'fomaml'; resume it with python -m "
        f"metarl.run maml --resume {run_dir}")


def test_the_done_line_shows_a_long_curve_by_its_first_two_steps_and_its_last(tmp_path,
                                                                              capsys):
    assert main(["maml", "--task", "sine", "--meta-batch-size", "2", "--no-progress",
                 "--eval-steps", "12", "--eval-every", "1", "--num-batches", "1",
                 "--output-dir", str(tmp_path)]) == 0
    done = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("done: "))
    steps = [int(n) for n in re.findall(r"mse_step_(\d+)=", done)]
    assert steps == [0, 1, 12] and "train/meta_loss=" in done


@pytest.mark.parametrize("value, message", [
    ("-1e-3", "fast_lr=-0.001 must be > 0"), ("-inf", "fast_lr=-inf must be a finite number > 0"),
    ("-NaN", "fast_lr=nan must be a finite number > 0"), ("-.5", "fast_lr=-0.5 must be > 0")])
def test_a_negative_number_in_any_notation_is_a_value_named_as_out_of_range(value, message,
                                                                           capsys):
    assert main(["maml", "--task", "sine", "--fast-lr", value]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
