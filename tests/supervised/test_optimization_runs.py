"""FOMAML, Reptile and ANIL through the command line: each trains on sine and Omniglot, resumes
exactly as an uninterrupted run, and is evaluated with its own label; Reptile refuses a new
budget on resume (its outer step size is annealed over it)."""

import json
from pathlib import Path

import pytest
import torch
from run_helpers import one_error_line, only_run_dir

from metarl.run import main

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "omniglot"
METHODS = ("fomaml", "reptile", "anil")
SINE = ["--task", "sine", "--meta-batch-size", "2", "--eval-every", "2", "--eval-tasks", "3",
        "--eval-steps", "2", "--checkpoint-every", "1", "--no-progress"]


@pytest.mark.parametrize("method", METHODS)
def test_sine_trains_and_evaluates_with_its_own_label(method, tmp_path):
    assert main([method, *SINE, "--num-batches", "3", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["algo"] == method and state["iteration"] == 3
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--steps", "2",
                 "--no-baselines", "--no-progress"]) == 0
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    assert list(result["methods"]) == [method]
    assert len(result["methods"][method]["mean"]) == 3


@pytest.mark.parametrize("method", ("fomaml", "anil"))  # Reptile's resume: test_optimization.py
def test_a_resumed_run_equals_the_uninterrupted_one(method, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main([method, *SINE, "--num-batches", "3", "--output-dir", str(whole)]) == 0
    assert main([method, *SINE, "--num-batches", "2", "--output-dir", str(parts)]) == 0
    assert main([method, "--resume", str(only_run_dir(parts)), "--num-batches", "3",
                 "--no-progress"]) == 0
    a = torch.load(only_run_dir(whole) / "checkpoint.pt", weights_only=True)
    b = torch.load(only_run_dir(parts) / "checkpoint.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 3
    assert all(torch.equal(a["model"][name], b["model"][name]) for name in a["model"])


def test_reptile_refuses_a_new_budget_on_resume(tmp_path, capsys):
    assert main(["reptile", *SINE, "--num-batches", "2", "--output-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["reptile", "--resume", str(only_run_dir(tmp_path)), "--num-batches", "4"]) == 2
    assert "num_batches" in one_error_line(capsys)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"Omniglot subsets not found at {DATA}")
@pytest.mark.parametrize("method", METHODS)
def test_omniglot_trains_and_evaluates(method, tmp_path, omniglot_cache_dir):
    assert main([method, "--task", "omniglot", "--data-dir", str(DATA), "--cache-dir",
                 str(omniglot_cache_dir), "--num-batches", "1", "--meta-batch-size", "2",
                 "--queries", "2", "--eval-every", "1", "--eval-tasks", "2", "--torch-threads",
                 "1", "--no-progress", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--no-baselines", "--no-progress"]) == 0
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    assert list(result["methods"]) == [method] and result["ways"] == 5
