"""Bad input to the reporting scripts of ``experiments/`` (compare_rl.py, select_later_lr.py,
fewshot_table.py): one error line naming the file or value, and nothing already saved replaced.
"""

import json

import numpy as np
import pytest
from run_helpers import one_error_line

from metarl.evaluation import write_curves
from metarl.scripts import run_script

#: The held-out tasks of the evaluations below (what compare_rl requires them to share).
TASKS = {"env": "navigation_2d", "num_tasks": 3, "seed": 0, "iteration": 10}


def evaluation(folder, offset=0.0, method="maml", run_seed=None):
    """An evaluation folder as ``evaluate`` writes it: curve.json (with the training seed, if
    given) and per_task.csv."""
    scores = np.array([[-40.0, -10.0], [-38.0, -9.0], [-42.0, -11.0]]) + offset
    meta = TASKS if run_seed is None else {**TASKS, "run_seed": run_seed}
    write_curves(folder, {method: scores}, metric="mean return", meta=meta)
    return folder


def files_of(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_compare_rl_pools_two_seeds_and_may_rewrite_its_own_output(tmp_path, experiment_script,
                                                                   capsys):
    script = experiment_script("compare_rl")
    runs = [str(evaluation(tmp_path / f"s{seed}", offset=seed)) for seed in (0, 1)]
    out = tmp_path / "out"
    for _ in range(2):  # a rerun replaces what compare_rl wrote itself
        assert script.main([str(out), *runs]) == 0
    assert "MAML-TRPO (2 seeds)" in capsys.readouterr().out
    assert json.loads((out / "curve.json").read_text())["runs"] == runs


def test_compare_rl_never_writes_over_an_evaluation(tmp_path, experiment_script):
    script = experiment_script("compare_rl")
    first, second = evaluation(tmp_path / "a"), evaluation(tmp_path / "b", offset=1)
    before = files_of(first), files_of(second)
    run_dir = tmp_path / "run"
    evaluation(run_dir / "evaluation", offset=2)
    for argv, said in (([first, second], "OUT .*a already holds an evaluation"),  # OUT forgotten
                       ([first, first], "OUT .*a is one of the evaluations"),
                       ([run_dir / "evaluation", run_dir], "is one of the evaluations"),
                       ([run_dir, second], "OUT .*run is a run directory")):
        with pytest.raises(SystemExit, match=said):
            script.main([str(path) for path in argv])
    assert (files_of(first), files_of(second)) == before


def test_compare_rl_counts_each_evaluation_once(tmp_path, experiment_script):
    script = experiment_script("compare_rl")
    run_dir = tmp_path / "run"
    evaluation(run_dir / "evaluation")
    out = str(tmp_path / "out")
    for twice in ([run_dir, run_dir], [run_dir, run_dir / "evaluation"],
                  [run_dir, tmp_path / "run" / ".." / "run"]):
        with pytest.raises(SystemExit, match="is given twice.*; each evaluation counts once"):
            script.main([out, *map(str, twice)])
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, data in files_of(run_dir / "evaluation").items():
        (copy / name).write_bytes(data)
    with pytest.raises(SystemExit, match="holds the same scores as .*run"):
        script.main([out, str(run_dir), str(copy)])
    assert not (tmp_path / "out").exists()


def test_compare_rl_pools_only_runs_of_distinct_training_seeds(tmp_path, experiment_script,
                                                             capsys):
    script = experiment_script("compare_rl")
    out = str(tmp_path / "out")
    same = [evaluation(tmp_path / f"same{i}", offset=i, run_seed=0) for i in (0, 1)]
    with pytest.raises(SystemExit, match="are both MAML-TRPO runs of training seed 0; .* each "
                                         "must come from its own --seed"):
        script.main([out, *map(str, same)])
    assert not (tmp_path / "out").exists()
    other = evaluation(tmp_path / "seed1", offset=1, run_seed=1)
    promp = evaluation(tmp_path / "promp0", offset=2, method="promp", run_seed=0)
    assert script.main([out, str(same[0]), str(other), str(promp)]) == 0  # seed 0 per method
    assert "MAML-TRPO (2 seeds)" in capsys.readouterr().out


@pytest.mark.parametrize("corrupt, said", [
    (lambda f: (f / "curve.json").write_text((f / "curve.json").read_text()[:50]),
     r"curve.json is not readable JSON"),
    (lambda f: (f / "per_task.csv").unlink(), r"per_task.csv: no such file"),
    (lambda f: (f / "per_task.csv").write_text(""), r"per_task.csv is empty"),
    (lambda f: (f / "per_task.csv").write_text(
        "\n".join((f / "per_task.csv").read_text().splitlines()[:-1]) + "\n"),
     r"lacks the score of task 2 at step 1"),
    (lambda f: (f / "curve.json").write_text(
        (f / "curve.json").read_text().replace('"mean return"', '"return"', 1)),
     r"has no column 'return' \(the metric curve.json names\)"),
    (lambda f: (f / "per_task.csv").write_text(
        (f / "per_task.csv").read_text().replace("-9", "nan", 1)),
     r"the score of task 1 at step 1 is nan, not a finite number"),
])
def test_compare_rl_names_the_broken_file_in_one_line(tmp_path, experiment_script, corrupt,
                                                      said):
    folder = evaluation(tmp_path / "ev")
    corrupt(folder)
    with pytest.raises(SystemExit, match=said):
        experiment_script("compare_rl").main([str(tmp_path / "out"), str(folder)])
    assert not (tmp_path / "out").exists()


def test_compare_rl_reports_an_unusable_out_without_a_traceback(tmp_path, experiment_script,
                                                                capsys):
    script = experiment_script("compare_rl")
    (tmp_path / "file").write_text("")
    folder = str(evaluation(tmp_path / "ev"))
    assert run_script(lambda: script.main([str(tmp_path / "file"), folder])) == 2
    assert "file is a file, not a folder" in one_error_line(capsys)


def select_later_lr_error(script, argv, capsys) -> str:
    """The error line of ``select_later_lr.py ARGV`` (after argparse's usage, if it refused)."""
    try:
        status = run_script(lambda: script.main(argv))
    except SystemExit as stop:  # argparse: usage, then the error
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_select_later_lr_refuses_what_is_no_maml_trpo_run(tmp_path, experiment_script,
                                                          monkeypatch, capsys):
    script = experiment_script("select_later_lr")
    monkeypatch.setattr(script, "evaluate", lambda *a: pytest.fail(f"evaluated {a}"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("")
    for name, text in (("blank", ""), ("broken", "meta_batch_size: [1,\n  : :\n"),
                       ("rl2", "algo: rl2\nseed: 0\n"), ("good", "algo: maml_trpo\nseed: 1\n")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(text)
    for run, said in (("nowhere", "nowhere: no such folder (give a maml_trpo run directory)"),
                      ("empty", "empty: no config.yaml"), ("file", "file is a file"),
                      ("blank", "its config.yaml names no algo"),
                      ("broken", "is not valid YAML"), ("rl2", "is a 'rl2' run")):
        assert said in select_later_lr_error(script, ["--run", str(tmp_path / run)], capsys)
    for argv, said in ((["--scales", "0.1", "nan"], "--scales: 'nan' must be a finite number"),
                       (["--scales", "0"], "--scales: 0 must be a finite number > 0"),
                       (["--episodes-per-task", "0"], "--episodes-per-task: 0 must be >= 1"),
                       (["--", "--steps", "1"], "--steps 1: choosing the size of steps 2.. "
                                                "needs --steps >= 2"),
                       (["--", "--steps=3", "--steps=x"], "--steps x: choosing")):
        assert said in select_later_lr_error(
            script, ["--run", str(tmp_path / "good"), *argv], capsys)


def grid_results(out, records, setting="5way1shot"):
    (out / setting).mkdir(parents=True, exist_ok=True)
    (out / setting / "grid_results.json").write_text(
        records if isinstance(records, str) else json.dumps(records))


def protonet_record(tmp_path, mean=0.95):
    return {"name": "protonet__omniglot__seed0", "status": "done",
            "curve": {"iteration": 10, "methods": {"protonet": {"mean": [mean],
                                                                "ci95": [0.01]}}},
            "options": {"meta_batch_size": 8, "output_dir": str(tmp_path / "other_node")}}


@pytest.mark.parametrize("records, said", [
    ('[{"name": "protonet__omn', "grid_results.json is not readable JSON"),
    ({"a": 1}, "holds a dict, not the list of run records"),
    ([{"curve": {}}], 'record 0 has no "name"'),
    (None, "run protonet__omniglot__seed0: the curve's last 'mean' is nan"),
])
def test_fewshot_table_names_a_broken_grid_record(tmp_path, experiment_script, records, said):
    grid_results(tmp_path, [protonet_record(tmp_path, float("nan"))] if records is None
                 else records)
    with pytest.raises(SystemExit, match=said):
        experiment_script("fewshot_table").main([str(tmp_path)])


def test_fewshot_table_shows_a_dash_for_a_run_trained_on_another_node(tmp_path,
                                                                      experiment_script, capsys):
    grid_results(tmp_path, [protonet_record(tmp_path)])  # its run directory is not here
    assert experiment_script("fewshot_table").main([str(tmp_path)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "protonet" in line]
    assert row.endswith("| 10 × 8 / — / — | — / — / — |")


def test_fewshot_table_takes_one_folder_and_has_a_usage(tmp_path, experiment_script, capsys):
    script = experiment_script("fewshot_table")
    with pytest.raises(SystemExit, match="nowhere: no such folder"):
        script.main([str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit) as stop:
        script.main(["--help"])
    assert stop.value.code == 0 and "usage: " in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        script.main([str(tmp_path), "extra"])
    assert stop.value.code == 2 and "unrecognized arguments: extra" in capsys.readouterr().err
