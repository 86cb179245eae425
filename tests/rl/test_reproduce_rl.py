"""``experiments/reproduce_rl.py`` with a tiny budget: its files, continuing, refusing bad input."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_helpers import one_error_line

from metarl.run import main as metarl_main
from metarl.scripts import run_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "reproduce_rl.py"
TRAINING = ["--meta-batch-size", "2", "--fast-batch-size", "2", "--hidden-sizes", "8", "8",
            "--cg-iters", "2", "--num-workers", "1", "--torch-threads", "1"]
TINY = ["--env", "navigation_2d", "--num-batches", "2", "--chunk", "1", "--num-tasks", "2",
        "--episodes-per-task", "2", "--pretrain-iterations", "1"]


def figures() -> dict[str, int]:
    folder = REPO / "docs" / "figures"
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


@pytest.fixture(scope="module")
def script(experiment_script):
    return experiment_script("reproduce_rl")


class Stopped(Exception):
    """Stands for a kill of the script between two of its commands."""


def in_process(calls: list, stop_at: int | None = None):
    """The script's ``run`` through ``metarl.run.main`` in this process (no interpreter start)."""
    def run(*argv):
        calls.append(argv)
        if len(calls) == stop_at:
            raise Stopped
        assert metarl_main(list(argv)) == 0
    return run


def test_a_rerun_continues_a_stopped_run_and_skips_one_without_checkpoint(
        script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(script, "REPO", tmp_path / "repo")  # where --publish would write
    out = tmp_path / "out"
    argv = [*TINY, "--out", str(out), "--", *TRAINING]
    empty = out / "navigation_2d" / "maml_trpo__navigation_2d__0__29990101-000000"
    empty.mkdir(parents=True)  # stopped before its first checkpoint (and sorted last)
    (empty / "config.yaml").write_text("algo: maml_trpo\nenv: navigation_2d\n")
    calls = []
    monkeypatch.setattr(script, "run", in_process(calls, stop_at=2))
    with pytest.raises(Stopped):  # stopped when the second chunk starts
        script.main(argv)
    assert calls[0][:1] == ("maml_trpo",) and "--resume" not in calls[0]  # a new run
    assert "note: skipping" in capsys.readouterr().out
    (run_dir,) = [p for p in (out / "navigation_2d").iterdir() if p != empty]
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"] == 1

    calls.clear()
    monkeypatch.setattr(script, "run", in_process(calls))
    script.main(argv)  # the same command again: continues that run
    assert calls[0] == ("maml_trpo", "--resume", str(run_dir), "--num-batches", "2",
                        "--no-progress", "--num-workers", "1", "--torch-threads", "1")
    assert calls[1][0] == "evaluate" and len(calls) == 2
    assert sorted((out / "navigation_2d").iterdir()) == sorted([empty, run_dir])
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"] == 2
    assert (run_dir / "evaluation" / "curve.json").is_file()
    section = (run_dir / "evaluation" / "results_section.md").read_text()
    # the command that trains this run, from its saved config: the flags after -- included
    assert ("`python -m metarl.run maml_trpo --env navigation_2d --seed 0 --num-batches 2 "
            "--meta-batch-size 2 --fast-batch-size 2 --hidden-sizes 8 8 --cg-iters 2`") in section
    assert "--publish does that" in capsys.readouterr().out
    assert not (tmp_path / "repo").exists()
    script.main([*argv[:-len(TRAINING) - 1], "--skip-training", "--publish"])  # no flags
    assert "--hidden-sizes 8 8 --cg-iters 2`" in (run_dir / "evaluation" / "results_section.md").read_text()
    assert (tmp_path / "repo" / "docs" / "figures" / "navigation_2d.png").read_bytes() == (
        run_dir / "evaluation" / "curve.png").read_bytes()

    # given again with other options, the flags after -- are refused, not silently ignored
    with pytest.raises(SystemExit) as stop:
        script.main([*TINY, "--out", str(out), "--", *TRAINING, "--hidden-sizes", "16"])
    assert stop.value.code == 2
    assert "hidden_sizes=(16,) (the run has (8, 8))" in capsys.readouterr().err


def test_the_script_as_a_program_reports_an_existing_run_without_publishing(tmp_path):
    before = figures()
    out = tmp_path / "out"
    assert metarl_main(["maml_trpo", "--num-batches", "2", *TRAINING, "--no-progress",
                        "--output-dir", str(out / "navigation_2d")]) == 0
    (run_dir,) = (out / "navigation_2d").iterdir()
    done = subprocess.run([sys.executable, str(SCRIPT), *TINY, "--out", str(out), "--",
                           *TRAINING], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "maml_trpo --resume" not in done.stdout  # trained far enough: only evaluates
    assert list((out / "navigation_2d").iterdir()) == [run_dir]
    assert (run_dir / "evaluation" / "results_section.md").is_file()
    assert (run_dir / "evaluation" / "curve.json").is_file()
    assert figures() == before and not (tmp_path / "docs").exists()


def test_the_paper_test_batches_are_the_default(script, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert metarl_main(["maml_trpo", "--num-batches", "1", *TRAINING, "--no-progress",
                        "--output-dir", str(out / "navigation_2d")]) == 0
    calls = []
    monkeypatch.setattr(script, "run", in_process(calls))
    script.main(["--env", "navigation_2d", "--num-batches", "1", "--num-tasks", "2",
                 "--pretrain-iterations", "1", "--out", str(out), "--skip-training"])
    (evaluate,) = calls
    assert evaluate[evaluate.index("--env-steps-per-task") + 1] == "4000"
    (run_dir,) = (out / "navigation_2d").iterdir()
    section = (run_dir / "evaluation" / "results_section.md").read_text()
    assert "(batches of 4000 env steps, 40 episodes side by side per task and step;" in section


def test_a_resume_that_does_not_advance_stops(script, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert metarl_main(["maml_trpo", "--num-batches", "1", *TRAINING, "--no-progress",
                        "--output-dir", str(out / "navigation_2d")]) == 0
    monkeypatch.setattr(script, "run", lambda *argv: None)  # a resume that trains nothing
    with pytest.raises(SystemExit, match="at iteration 1 did not advance it"):
        script.main([*TINY, "--out", str(out), "--", *TRAINING])


@pytest.mark.parametrize("argv, expected", [
    (["--chunk", "0"], "--chunk: 0 must be >= 1"),
    (["--num-batches", "-1"], "--num-batches: -1 must be >= 1"),
    (["--pretrain-iterations", "0"], "--pretrain-iterations: 0 must be >= 1"),
    (["--num-tasks", "1"], "--num-tasks: 1 must be >= 2"),
    (["--episodes-per-task", "1.5"], "--episodes-per-task: '1.5' is not a valid int"),
    (["--later-lr-scale", "inf"], "--later-lr-scale: 'inf' must be a finite number"),
    (["--seed", "-1"], "--seed: -1 must be >= 0"),
    (["--", "--seed", "3"], "--seed after --: set by this script"),
    (["--", "--nonlinearity", "sigmoid"], "nonlinearity='sigmoid'"),
    (["--", "--no-such-flag"], "after --: unrecognized arguments: --no-such-flag"),
])
def test_bad_input_stops_before_anything_runs(script, argv, expected, tmp_path, monkeypatch,
                                             capsys):
    monkeypatch.setattr(script, "run", lambda *a: pytest.fail(f"ran {a}"))
    with pytest.raises(SystemExit) as stop:
        script.main(["--env", "navigation_2d", "--out", str(tmp_path), *argv])
    assert stop.value.code == 2 and expected in capsys.readouterr().err


@pytest.mark.parametrize("config, checkpoint, said", [
    ("algo: maml_trpo\nenv: navigation_2d\n", b"PK\x03\x04 a torn zip",
     "checkpoint.pt is corrupt or unreadable"),
    ("meta_batch_size: [1,\n  : :\n", None, "config.yaml is not valid YAML"),
    ("", None, "config.yaml is not the config of a maml_trpo run (algo: None)"),
])
@pytest.mark.parametrize("skip", [[], ["--skip-training"]])
def test_a_broken_run_is_reported_in_one_line_before_anything_runs(
        script, tmp_path, monkeypatch, capsys, config, checkpoint, said, skip):
    run_dir = tmp_path / "navigation_2d" / "maml_trpo__navigation_2d__0__20260101-000000"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(config)
    (run_dir / "checkpoint.pt").write_bytes(checkpoint or b"")
    monkeypatch.setattr(script, "run", lambda *a: pytest.fail(f"ran {a}"))
    argv = ["--env", "navigation_2d", "--out", str(tmp_path), *skip]
    assert run_script(lambda: script.main(argv)) == 2
    assert said in one_error_line(capsys)


def test_an_unknown_env_is_named_even_without_training(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(script, "run", lambda *a: pytest.fail(f"ran {a}"))
    argv = ["--env", "nope", "--out", str(tmp_path), "--skip-training"]
    assert run_script(lambda: script.main(argv)) == 2
    assert one_error_line(capsys).startswith("error: unknown env 'nope'; known task families:")
