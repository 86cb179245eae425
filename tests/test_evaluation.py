"""Adaptation curves as results: intervals, curve.json/csv and the per-task scores behind them."""

import csv
import json

import numpy as np
import pytest

from metarl.evaluation import Z_95, summarize, write_curves


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_summary_is_the_mean_and_the_normal_interval():
    per_task = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
    s = summarize(per_task)
    assert s.mean == pytest.approx([2.0, 4.0])
    assert s.ci95 == pytest.approx([Z_95 * 2.0 / np.sqrt(3), Z_95 * np.sqrt(13) / np.sqrt(3)])
    with pytest.raises(ValueError, match="tasks >= 2"):
        summarize(np.zeros((1, 3)))


def test_per_task_rows_hold_every_score_with_its_task(tmp_path):
    curves = {"maml": np.array([[1.0, 2.0], [3.0, 5.0]]), "random init": np.zeros((2, 2))}
    tasks = [{"goal": [0.5, -0.25], "mass": 1.0}, {"goal": [1.5, 2.0], "mass": 2.0}]
    result = write_curves(tmp_path, curves, metric="return", tasks=tasks)
    rows = read_rows(tmp_path / "per_task.csv")
    assert list(rows[0]) == ["method", "task", "step", "return", "goal_0", "goal_1", "mass"]
    assert len(rows) == 2 * 2 * 2
    maml_task_1 = [r for r in rows if r["method"] == "maml" and r["task"] == "1"]
    assert [float(r["return"]) for r in maml_task_1] == [3.0, 5.0]
    assert {(r["goal_0"], r["goal_1"], r["mass"]) for r in maml_task_1} == {("1.5", "2.0", "2.0")}
    assert result["methods"]["maml"]["mean"] == [2.0, 3.5]
    assert json.loads((tmp_path / "curve.json").read_text())["methods"] == result["methods"]


def test_per_task_rows_without_task_parameters_number_the_tasks(tmp_path):
    write_curves(tmp_path, {"maml": np.array([[0.2], [0.4], [0.6]])}, metric="accuracy")
    rows = read_rows(tmp_path / "per_task.csv")
    assert [(r["task"], r["accuracy"]) for r in rows] == [("0", "0.2"), ("1", "0.4"),
                                                          ("2", "0.6")]


def test_tasks_that_do_not_match_the_scores_are_refused(tmp_path):
    with pytest.raises(ValueError, match="3 tasks scored, 2 tasks described"):
        write_curves(tmp_path, {"maml": np.zeros((3, 2))}, metric="return",
                     tasks=[{"velocity": 0.1}, {"velocity": 0.2}])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_per_task_table_groups_an_evaluation_by_a_task_parameter(tmp_path, capsys,
                                                                experiment_script):
    curves = {"maml": np.array([[-10.0, -2.0], [-20.0, -4.0], [-30.0, -9.0]]),
              "oracle": np.zeros((3, 2))}
    write_curves(tmp_path, curves, metric="mean return",
                 tasks=[{"velocity": 0.2}, {"velocity": 0.4}, {"velocity": 2.0}])
    script = experiment_script("per_task_table")
    assert script.main([str(tmp_path / "per_task.csv"), "--by", "velocity",
                        "--bins", "0", "1", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| 0 - 1 | 2 | -15.0 | -3.0 |"
    assert lines[3] == "| 1 - 2 | 1 | -30.0 | -9.0 |"  # the last bin holds its upper edge
    with pytest.raises(SystemExit, match="no column 'goal'; task parameters: velocity"):
        script.main([str(tmp_path / "per_task.csv"), "--by", "goal"])
    with pytest.raises(SystemExit, match="no method 'random'; methods: maml, oracle"):
        script.main([str(tmp_path / "per_task.csv"), "--by", "velocity", "--method", "random"])


def test_seed_table_lines_up_runs_and_their_mean_over_seeds(tmp_path, capsys, experiment_script):
    folders = []
    for seed, curve in ((0, [[-40.0, -4.0], [-40.0, -2.0]]), (1, [[-38.0, -2.0], [-38.0, -2.0]])):
        folder = tmp_path / f"s{seed}"
        write_curves(folder, {"maml": np.array(curve)}, metric="return",
                     meta={"env": "navigation_2d", "num_tasks": 2, "seed": 0, "run_seed": seed,
                           "iteration": 100, "published_maml": [-40.4, -11.7, -3.3]})
        folders.append(str(folder))
    script = experiment_script("seed_table")
    assert script.main(folders) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| seed 0 | 100 | -40.00 | -3.00 |"
    assert lines[3] == "| seed 1 | 100 | -38.00 | -2.00 |"
    # mean -39 / -2.5; standard deviation over the two seeds sqrt(2) / sqrt(0.5)
    assert lines[4] == f"| mean of 2 | | **-39.00** ± {Z_95:.2f} | **-2.50** ± {Z_95 / 2:.2f} |"
    assert lines[5] == "| paper | | -40.40 | -11.70 |"
    with pytest.raises(SystemExit, match="no method 'oracle'; methods: maml"):
        script.main([*folders, "--method", "oracle"])
    with pytest.raises(SystemExit, match="no such file"):
        script.main([str(tmp_path / "nowhere")])
    other = json.loads((tmp_path / "s1" / "curve.json").read_text())
    other["env_steps_per_task"] = 4000
    (tmp_path / "s1" / "curve.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="differ in env_steps_per_task"):
        script.main(folders)
