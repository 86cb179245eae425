"""Every episodic method end to end on the shipped Omniglot subsets: it trains, resumes exactly
as an uninterrupted run, is evaluated on the held-out episodes MAML's evaluation draws, and
refuses what it cannot do with one error line."""

import json
from pathlib import Path

import pytest
import torch
from run_helpers import one_error_line, only_run_dir

from metarl.evaluation import EVALUATION_SEED_OFFSET
from metarl.experiment import make_config
from metarl.run import main

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "omniglot"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"Omniglot subsets not found at {DATA}")
METHODS = ("protonet", "matching", "relation", "siamese", "mann")
#: Each method's smallest model, so a run takes a second or two.
SMALL = {"protonet": [], "matching": ["--fce", "--fce-steps", "2"], "relation": ["--relation-hidden", "4"],
         "siamese": [],
         "mann": ["--controller-size", "16", "--memory-rows", "8", "--memory-width", "8",
                  "--num-reads", "2"]}


def tiny(method: str, tmp_path: Path, cache: Path, *, batches: int) -> list[str]:
    return [method, "--task", "omniglot", "--data-dir", str(DATA), "--cache-dir", str(cache),
            "--num-batches", str(batches), "--meta-batch-size", "2", "--queries", "2",
            "--hidden", "8", "--eval-every", "2", "--eval-tasks", "3", "--checkpoint-every",
            "1", "--torch-threads", "1", "--no-progress", *SMALL[method]]


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_and_evaluates(method, tmp_path, omniglot_cache_dir):
    runs = tmp_path / "runs"
    assert main([*tiny(method, tmp_path, omniglot_cache_dir, batches=2),
                 "--output-dir", str(runs)]) == 0
    run_dir = only_run_dir(runs)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["algo"] == method and state["iteration"] == 2
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "5", "--no-progress"]) == 0
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    assert list(result["methods"]) == [method]
    assert (result["ways"], result["shots"], result["num_tasks"]) == (5, 1, 5)
    assert len(result["methods"][method]["mean"]) == 1
    assert 0.0 <= result["methods"][method]["mean"][0] <= 1.0


def _resumed_equals_uninterrupted(method, tmp_path, cache):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main([*tiny(method, tmp_path, cache, batches=3), "--output-dir", str(whole)]) == 0
    assert main([*tiny(method, tmp_path, cache, batches=2), "--output-dir", str(parts)]) == 0
    assert main([method, "--resume",
                 str(only_run_dir(parts)), "--num-batches", "3", "--no-progress"]) == 0
    a = torch.load(only_run_dir(whole) / "checkpoint.pt", weights_only=True)
    b = torch.load(only_run_dir(parts) / "checkpoint.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 3
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert torch.equal(a["generator"], b["generator"])


def test_resume_is_bit_identical(tmp_path, omniglot_cache_dir):
    _resumed_equals_uninterrupted("protonet", tmp_path, omniglot_cache_dir)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS[1:])
def test_every_method_resumes_bit_identically(method, tmp_path, omniglot_cache_dir):
    _resumed_equals_uninterrupted(method, tmp_path, omniglot_cache_dir)


@pytest.mark.parametrize("method", METHODS)
def test_regression_is_refused(method, tmp_path, capsys):
    assert main([method, "--task", "sine", "--output-dir", str(tmp_path)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {method} cannot do task='sine': it classifies")
    assert line.endswith("it runs on: omniglot")


def test_adaptation_options_are_refused(tmp_path, omniglot_cache_dir, capsys, monkeypatch):
    from metarl.supervised.episodic import trainer

    runs = tmp_path / "runs"
    assert main([*tiny("protonet", tmp_path, omniglot_cache_dir, batches=1),
                 "--output-dir", str(runs)]) == 0
    capsys.readouterr()

    def no_data(config):
        raise AssertionError("the data was loaded before the options were checked")

    monkeypatch.setattr(trainer, "build_learner", no_data)
    for flags in (["--steps", "3"], ["--steps", "0"], ["--baseline-iterations", "0"]):
        assert main(["evaluate", "--run", str(only_run_dir(runs)), *flags]) == 2  # 0 too
        assert (f"{flags[0]}: only for gradient-based runs; a protonet run answers in one "
                f"forward pass") in one_error_line(capsys)


def test_held_out_episodes_are_maml_s(omniglot_cache_dir):
    """An episodic run and a MAML run of the same seed and split are scored on the same
    episodes: both draw them from the test split with the evaluation seed."""
    from metarl.supervised.episodic.trainer import build_learner
    from metarl.supervised.omniglot.problem import OmniglotProblem

    common = {"data_dir": str(DATA), "cache_dir": str(omniglot_cache_dir), "queries": 2}
    episodic = build_learner(make_config("protonet", task="omniglot", **common))
    maml = OmniglotProblem(make_config("maml", task="omniglot", **common))
    draws = [problem.meta_batch_with_tasks(
        4, torch.Generator().manual_seed(EVALUATION_SEED_OFFSET), query_size=2)
        for problem in (episodic.problem, maml)]
    for a, b in zip(draws[0][:2], draws[1][:2]):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_several_shots_give_the_accuracy_against_k(tmp_path, omniglot_cache_dir, capsys):
    """``--shots 1 3``: one point per K, each the accuracy ``--shots K`` alone gives (the same
    held-out episodes; 1 is the run's own K, 3 another), in curve.json, curve.csv, per_task.csv
    and the printed table."""
    runs = tmp_path / "runs"
    assert main([*tiny("protonet", tmp_path, omniglot_cache_dir, batches=1),
                 "--output-dir", str(runs)]) == 0
    run_dir = only_run_dir(runs)
    evaluate = ["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--no-progress"]
    capsys.readouterr()
    assert main([*evaluate, "--shots", "1", "3", "--output", str(tmp_path / "curve")]) == 0
    assert "shots 1" in capsys.readouterr().out
    result = json.loads((tmp_path / "curve" / "curve.json").read_text())
    assert (result["shots"], result["num_tasks"], result["steps"]) == ([1, 3], 4, 0)
    assert len(result["methods"]["protonet"]["mean"]) == 2
    rows = read_csv(tmp_path / "curve" / "curve.csv")
    assert [(r["method"], r["shots"]) for r in rows] == [("protonet", "1"), ("protonet", "3")]
    per_task = read_csv(tmp_path / "curve" / "per_task.csv")
    assert len(per_task) == 4 * 2 and {r["shots"] for r in per_task} == {"1", "3"}
    for shots in ("1", "3"):
        assert main([*evaluate, "--shots", shots, "--output", str(tmp_path / shots)]) == 0
        single = json.loads((tmp_path / shots / "curve.json").read_text())
        assert single["shots"] == int(shots)  # one value: the single point of before
        assert [r["accuracy"] for r in read_csv(tmp_path / shots / "per_task.csv")] == [
            r["accuracy"] for r in per_task if r["shots"] == shots]


@pytest.mark.parametrize("shots, expected", [
    (["19"], "error: --shots 19 is out of range: use 1..18 (the run's characters have 20 "
             "drawings each, and its episodes take 2 of them per class as queries)"),
    (["1", "19"], "error: --shots 19 is out of range: use 1..18"),
    (["5", "1"], "error: --shots 5 1: give each value once, in increasing order"),
    (["0"], "error: shots=(0,) must be >= 1"),
])
def test_shots_beyond_the_drawings_are_one_error_line(shots, expected, tmp_path,
                                                       omniglot_cache_dir, capsys):
    runs = tmp_path / "runs"
    assert main([*tiny("protonet", tmp_path, omniglot_cache_dir, batches=1),
                 "--output-dir", str(runs)]) == 0
    capsys.readouterr()
    output = tmp_path / "out"
    assert main(["evaluate", "--run", str(only_run_dir(runs)), "--shots", *shots,
                 "--output", str(output), "--no-progress"]) == 2
    assert one_error_line(capsys).startswith(expected)
    assert not (output / "curve.json").exists()  # nothing scored before the check


def test_the_few_shot_table_reads_a_single_point_evaluation(tmp_path, omniglot_cache_dir,
                                                            experiment_script):
    """experiments/fewshot_table.py takes an episodic run's curve.json (one point) as the grid
    records it."""
    runs = tmp_path / "runs"
    assert main([*tiny("protonet", tmp_path, omniglot_cache_dir, batches=1),
                 "--output-dir", str(runs)]) == 0
    run_dir = only_run_dir(runs)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--no-progress"]) == 0
    curve = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    grid = tmp_path / "fewshot" / "5way1shot"
    grid.mkdir(parents=True)
    (grid / "grid_results.json").write_text(json.dumps([{
        "name": run_dir.name, "curve": curve,
        "options": {"meta_batch_size": 2, "output_dir": str(runs)}}]))
    mean, ci95 = (curve["methods"]["protonet"][key][0] for key in ("mean", "ci95"))
    (row,) = experiment_script("fewshot_table").table(tmp_path / "fewshot")[2:]
    assert row.startswith(f"| protonet | metric | **{100 * mean:.1f}** ± {100 * ci95:.1f} "
                          f"(98.8) | — (99.7) | — (96.0) | 1 × 2 / — / — |")

