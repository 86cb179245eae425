"""Adaptation curves as results: intervals, curve.json/csv and the per-task scores behind them."""

import csv
import json

import numpy as np
import pytest

from metarl.config import ConfigError
from metarl.evaluation import Z_95, curve_figure, outlier_curves, report, summarize, write_curves
from metarl.nonfinite import NonFiniteError


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
    with pytest.raises(SystemExit, match="no task parameter 'goal'; task parameters: velocity"):
        script.main([str(tmp_path / "per_task.csv"), "--by", "goal"])
    with pytest.raises(SystemExit, match="no method 'random'; methods: maml, oracle"):
        script.main([str(tmp_path / "per_task.csv"), "--by", "velocity", "--method", "random"])


def test_per_task_table_groups_a_vector_parameter_by_its_length(tmp_path, capsys,
                                                                 experiment_script):
    curves = {"maml": np.array([[10.0, 20.0], [30.0, 50.0], [-5.0, 5.0]])}
    write_curves(tmp_path, curves, metric="mean return",  # distances 0.5, 1.5 (a 3-4-5 goal: 5)
                 tasks=[{"goal": [0.3, 0.4]}, {"goal": [-0.9, 1.2]}, {"goal": [3.0, -4.0]}])
    script = experiment_script("per_task_table")
    assert script.main([str(tmp_path / "per_task.csv"), "--by", "goal_norm",
                        "--bins", "0", "2", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| goal_norm | tasks | step 0 | step 1 |"
    assert lines[2:] == ["| 0 - 2 | 2 | 20.0 | 35.0 |", "| 2 - 5 | 1 | -5.0 | 5.0 |"]
    with pytest.raises(SystemExit, match="no task parameter 'velocity_norm'; task parameters: "
                                         "goal_0, "
                                         "goal_1, goal_norm$"):
        script.main([str(tmp_path / "per_task.csv"), "--by", "velocity_norm"])


def test_per_task_table_says_what_the_bins_leave_out(tmp_path, capsys, experiment_script):
    write_curves(tmp_path, {"maml": np.array([[-10.0, -2.0], [-20.0, -4.0], [-30.0, -9.0]])},
                 metric="mean return",
                 tasks=[{"velocity": 0.2}, {"velocity": 0.4}, {"velocity": 2.0}])
    script = experiment_script("per_task_table")
    assert script.main([str(tmp_path / "per_task.csv"), "--by", "velocity",
                        "--bins", "0", "0.1", "1"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[2] == "| 0 - 0.1 | 0 | — | — |"  # an empty bin has no mean
    assert err == ("note: 1 of 3 tasks fall outside --bins [0, 1] (velocity 2 to 2); they are "
                   "not in the table\n")
    for column in ("step", "task", "method", "mean return"):  # not task parameters
        with pytest.raises(SystemExit, match=f"no task parameter '{column}'"):
            script.main([str(tmp_path / "per_task.csv"), "--by", column])


@pytest.mark.parametrize("corrupt, said", [
    (lambda text: text.replace(",-20,", ",nan,", 1), r"line 4: task 1, step 0: mean return nan"),
    (lambda text: text.replace("0.4", "inf", 1), r"line 4: .*velocity inf: every value must"),
    (lambda text: text[:text.rindex(",")], r"line 7: the row does not have 5 fields"),
    (lambda text: "\n".join(text.splitlines()[:-1]), r"task 2 of 'maml' has no step 1"),
    (lambda text: text.replace(",1,", ",x,", 1), r"line \d: invalid literal for int"),
    (lambda text: text.splitlines()[0], r"has no rows"),
    (lambda text: "a,b\n1,2\n", r"is not an evaluation's per_task.csv"),
])
def test_per_task_table_refuses_a_broken_csv_in_one_line(tmp_path, experiment_script, corrupt,
                                                         said):
    write_curves(tmp_path, {"maml": np.array([[-10.0, -2.0], [-20.0, -4.0], [-30.0, -9.0]])},
                 metric="mean return",
                 tasks=[{"velocity": 0.2}, {"velocity": 0.4}, {"velocity": 2.0}])
    path = tmp_path / "per_task.csv"
    path.write_text(corrupt(path.read_text()))
    with pytest.raises(SystemExit, match=said):
        experiment_script("per_task_table").main([str(path), "--by", "velocity"])


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
    other["env_steps_per_task"], other["run_seed"] = None, 0  # seed 0 evaluated twice
    (tmp_path / "s1" / "curve.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="seed 0 comes twice"):
        script.main(folders)


def test_seed_table_counts_a_recorded_curve_in_the_mean(tmp_path, capsys, experiment_script):
    folder = tmp_path / "s1"
    write_curves(folder, {"maml": np.array([[-38.0, -2.0], [-38.0, -2.0]])}, metric="return",
                 meta={"env": "navigation_2d", "num_tasks": 2, "seed": 0, "run_seed": 1,
                       "iteration": 100, "published_maml": [-40.4, -11.7, -3.3]})
    script = experiment_script("seed_table")
    assert script.main([str(folder), "--recorded", "seed 0:100:-40,-3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| seed 0 | 100 | -40.00 | -3.00 |"
    assert lines[3] == "| seed 1 | 100 | -38.00 | -2.00 |"
    assert lines[4] == f"| mean of 2 | | **-39.00** ± {Z_95:.2f} | **-2.50** ± {Z_95 / 2:.2f} |"
    assert lines[5] == "| paper | | -40.40 | -11.70 |"
    with pytest.raises(SystemExit, match="seed 1 comes twice; a mean over seeds needs runs of "
                                         "distinct training seeds"):
        script.main([str(folder), "--recorded", "seed 1:100:-40,-3"])
    for bad in ("-40,-3", "seed 0:many:-40,-3", "seed 0:100:-40,x", "seed 0:100:-40,nan",
                ":100:-40", "seed 0:100:-40,-3,-2.5"):
        with pytest.raises(SystemExit, match="--recorded"):
            script.main([str(folder), f"--recorded={bad}"])


@pytest.mark.parametrize("corrupt, said", [
    (lambda path: path.write_text(path.read_text()[:40]), "is not readable JSON"),
    (lambda path: path.write_text("[]"), "is not an evaluation's curve"),
    (lambda path: path.write_text(path.read_text().replace("-2.0", "NaN", 1)),
     "after 1 steps is nan, not a finite number"),
    (lambda path: path.write_text(path.read_text().replace('"iteration"', '"it"')),
     "has no meta-iteration"),
])
def test_seed_table_refuses_a_broken_curve_in_one_line(tmp_path, experiment_script, corrupt,
                                                       said):
    folder = tmp_path / "s1"
    write_curves(folder, {"maml": np.array([[-38.0, -2.0], [-38.0, -2.0]])}, metric="return",
                 meta={"env": "navigation_2d", "num_tasks": 2, "seed": 0, "run_seed": 1,
                       "iteration": 100})
    script = experiment_script("seed_table")
    assert script.main([str(folder)]) == 0
    corrupt(folder / "curve.json")
    with pytest.raises(SystemExit, match=said):
        script.main([str(folder)])


def test_seed_table_counts_each_folder_once_and_points_at_the_evaluation(tmp_path,
                                                                         experiment_script):
    folder = tmp_path / "run" / "evaluation"
    write_curves(folder, {"maml": np.array([[-38.0, -2.0], [-38.0, -2.0]])}, metric="return",
                 meta={"env": "navigation_2d", "num_tasks": 2, "seed": 0, "run_seed": 1,
                       "iteration": 100})
    script = experiment_script("seed_table")
    with pytest.raises(SystemExit, match="given twice"):
        script.main([str(folder), str(tmp_path / "run" / ".." / "run" / "evaluation")])
    with pytest.raises(SystemExit, match="did you mean .*evaluation"):
        script.main([str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="is a file; give the folder"):
        script.main([str(folder / "curve.json")])


def curves_ending_at(finals, tasks=4):
    """Per-task curves ``[tasks, 4]`` that start together at -40 and jump near ``finals`` in
    the first step (a small spread around each mean, so every interval is finite)."""
    spread = np.linspace(-0.1, 0.1, tasks)[:, None]
    return {label: np.array([-40.0, final - 1.0, final - 0.5, final])[None, :] + spread
            for label, final in finals.items()}


def start_and_end(finals):
    return {label: [-40.0, final] for label, final in finals.items()}


@pytest.mark.parametrize("means, log_y, far", [
    # One curve far from three close ones: it leaves them their own, zoomed panel.
    (start_and_end({"maml": -4.6, "pretrained": -4.3, "random init": -42.0, "oracle": -4.2}),
     False, ["random init"]),
    ({"maml": [3.2, 0.35, 0.11], "pretrained": [3.2, 2.5, 1.57], "oracle": [0.009] * 3}, True,
     []),  # spread evenly (on the log axis they are drawn on)
    # One curve ends far from the others, but they are not squeezed: the panel reads as it is.
    ({"maml": [0.2, 0.476, 0.443, 0.395], "classifier": [0.2, 0.409, 0.572, 0.581],
      "classifier_converged": [0.602] * 4}, False, []),
    (start_and_end({"maml": -4.6, "random init": -42.0}), False, []),  # nothing to zoom in on
    (start_and_end({"maml": -4.0, "pretrained": -4.0, "oracle": -4.0}), False, []),  # alike
    (start_and_end({"a": 1.0, "b": 1.1, "c": 9.0, "d": 9.1}), False, []),  # two even pairs
])
def test_a_second_panel_is_needed_only_for_curves_far_from_the_rest(means, log_y, far):
    assert outlier_curves(means, log_y=log_y) == far


def test_the_figure_says_what_was_trained_and_keeps_close_curves_readable(tmp_path):
    curves = curves_ending_at({"maml": -4.6, "pretrained": -4.3, "random init": -42.0,
                               "oracle": -4.2})
    figure = curve_figure(curves, metric="mean return", title="navigation_2d", iterations=100,
                          references={"MAML (paper)": [-40.4, -11.7, -3.3, -3.2]})
    main, zoomed = figure.axes
    assert "after 100 meta-training iterations" in main.get_title()
    assert all(float(tick).is_integer() for tick in main.get_xticks())
    assert "random init" not in [line.get_label() for line in zoomed.get_lines()]
    assert {"maml", "pretrained", "oracle", "MAML (paper)"} <= {
        line.get_label() for line in zoomed.get_lines()}
    low, high = zoomed.get_ylim()
    assert -20 < low < -11.7 and high < 0  # steps 1..3 of the close curves, not -42 or -40
    figure.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 10_000


def test_a_flat_baseline_is_a_labelled_reference_line(tmp_path):
    flat = np.full((4, 4), 0.92) + np.linspace(-0.01, 0.01, 4)[:, None]
    curves = {"maml": np.linspace(0.2, 0.97, 4)[None, :] + np.zeros((4, 1)),
              "classifier": np.linspace(0.2, 0.9, 4)[None, :] + np.zeros((4, 1)),
              "classifier_converged": flat}
    result = report(tmp_path, curves, metric="accuracy", meta={}, title="omniglot",
                    iterations=20, flat={"classifier_converged": "classifier, head after 100 "
                                                                 "steps"})
    assert result["methods"]["classifier_converged"]["mean"] == pytest.approx([0.92] * 4)
    figure = curve_figure(curves, metric="accuracy", title="omniglot", iterations=20,
                          flat={"classifier_converged": "classifier, head after 100 steps"})
    (axis,) = figure.axes
    (line,) = [line for line in axis.get_lines()
               if line.get_label() == "classifier, head after 100 steps"]
    assert list(line.get_ydata()) == pytest.approx([0.92, 0.92])
    assert line.get_marker() in ("None", "")
    assert (tmp_path / "curve.png").stat().st_size > 10_000


def test_rl_adaptation_curves_show_a_bar_of_their_steps_on_request(capsys):
    from metarl import envs
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import adaptation_returns
    from metarl.rl.trainer import MetaRLTrainer

    config = MAMLTRPOConfig(meta_batch_size=2, fast_batch_size=2, hidden_sizes=(8,),
                            num_workers=1)
    tasks = envs.registry.sample_tasks("navigation_2d", 2, seed=0)
    with MetaRLTrainer(config) as trainer:
        capsys.readouterr()
        shown = adaptation_returns(trainer, trainer.theta(), tasks, sizes=[0.1, 0.05], seed=0,
                                   progress=True, desc="maml: adaptation curve")
        assert "maml: adaptation curve: 100%" in capsys.readouterr().err
        hidden = adaptation_returns(trainer, trainer.theta(), tasks, sizes=[0.1, 0.05], seed=0)
        assert capsys.readouterr().err == ""
    assert shown.shape == (2, 3) and np.array_equal(shown, hidden)  # the bar changes nothing


def test_a_curve_over_shots_writes_its_x_values_where_steps_would_be(tmp_path):
    """``x_values`` put each point at its x: the CSV columns, the table's headers and the
    figure's ticks say shots, not steps."""
    scores = np.array([[0.4, 0.6, 0.8], [0.6, 0.8, 1.0]])
    result = report(tmp_path, {"protonet": scores}, metric="accuracy", meta={"shots": [1, 5, 10]},
                    title="omniglot", iterations=3, x_label="support examples per class",
                    x_name="shots", x_values=[1, 5, 10])
    assert result["shots"] == [1, 5, 10]
    assert result["methods"]["protonet"]["mean"] == pytest.approx([0.5, 0.7, 0.9])
    rows = read_rows(tmp_path / "curve.csv")
    assert list(rows[0]) == ["method", "shots", "accuracy", "ci95", "num_tasks"]
    assert [(r["shots"], float(r["accuracy"])) for r in rows] == [("1", 0.5), ("5", 0.7),
                                                                  ("10", 0.9)]
    per_task = read_rows(tmp_path / "per_task.csv")
    assert [(r["task"], r["shots"], r["accuracy"]) for r in per_task[3:]] == [
        ("1", "1", "0.6"), ("1", "5", "0.8"), ("1", "10", "1")]
    header = result["table"].splitlines()[0].split()
    assert header == ["accuracy", "shots", "1", "shots", "5", "shots", "10"]
    figure = curve_figure({"protonet": scores}, metric="accuracy", title="omniglot",
                          iterations=3, x_label="support examples per class",
                          x_values=[1, 5, 10])
    (axis,) = figure.axes
    assert axis.get_xlabel() == "support examples per class"
    assert list(axis.get_xticks()) == [1, 5, 10]
    (line,) = [line for line in axis.get_lines() if line.get_label() == "protonet"]
    assert list(line.get_xdata()) == [1, 5, 10]
    assert (tmp_path / "curve.png").stat().st_size > 10_000


def test_x_values_must_be_one_per_point_and_name_a_non_finite_point(tmp_path):
    with pytest.raises(ValueError, match=r"2 x values \[1, 5\] for a curve of 3 points"):
        write_curves(tmp_path, {"protonet": np.zeros((2, 3))}, metric="accuracy",
                     x_name="shots", x_values=[1, 5])
    scores = np.array([[0.4, np.nan], [0.6, 0.8]])
    with pytest.raises(NonFiniteError, match="the protonet score is non-finite at shots 5 on 1 "
                                             "of 2 tasks; no curve was written"):
        report(tmp_path, {"protonet": scores}, metric="accuracy", meta={}, title="t",
               iterations=1, x_name="shots", x_values=[1, 5])
    assert not (tmp_path / "curve.json").exists()


def fake_run(folder, returns, fast_batch_size, purge_from=None):
    """A run directory with ``returns/step_1`` logged at iterations 1.. and its config.yaml;
    ``purge_from`` writes the values from that iteration on a second time, as a resume does."""
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir()
    (folder / "config.yaml").write_text(f"meta_batch_size: 4\nfast_batch_size: {fast_batch_size}\n"
                                        "num_steps: 1\n")
    with SummaryWriter(log_dir=str(folder)) as writer:
        for step, value in enumerate(returns, start=1):
            stale = purge_from is not None and step >= purge_from  # to be written again
            writer.add_scalar("returns/step_1", value + (1000.0 if stale else 0.0), step)
    if purge_from:
        with SummaryWriter(log_dir=str(folder), purge_step=purge_from) as writer:
            for step, value in enumerate(returns[purge_from - 1:], start=purge_from):
                writer.add_scalar("returns/step_1", value, step)
    return str(folder)


def test_training_blocks_line_up_runs_by_iteration_or_by_episodes(tmp_path, capsys,
                                                                 experiment_script):
    twenty = fake_run(tmp_path / "a", [float(i) for i in range(1, 6)], 20, purge_from=3)
    forty = fake_run(tmp_path / "b", [10.0, 20.0, 30.0], 40)
    script = experiment_script("training_blocks")
    assert script.main([twenty, forty, "--block", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:5] == ["| 1-2 | 1.5 | 15.0 |", "| 3-4 | 3.5 | 30.0 (1) |",
                          "| 5-6 | 5.0 (1) |  |"]  # resumed: 3.0.. replace 1003.0..
    assert script.main([twenty, forty, "--block", "2", "--by", "episodes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # a block is 2 iterations x 160 episodes of run a, 1 iteration of run b
    assert lines[2:5] == ["| 0-0.32 | 1.5 | 10.0 |", "| 0.32-0.64 | 3.5 | 20.0 |",
                          "| 0.64-0.96 | 5.0 (1) | 30.0 |"]
    with pytest.raises(SystemExit, match="no scalar 'policy/std'; logged: returns/step_1"):
        script.main([twenty, "--tag", "policy/std"])
    nan = fake_run(tmp_path / "c", [1.0, float("nan")], 20)
    with pytest.raises(SystemExit, match="returns/step_1 is nan at iteration 2"):
        script.main([nan])


def test_training_blocks_name_what_is_not_a_run(tmp_path, experiment_script):
    (tmp_path / "runs").mkdir()
    run = fake_run(tmp_path / "runs" / "a", [1.0, 2.0], 20)
    script = experiment_script("training_blocks")
    with pytest.raises(SystemExit, match="runs has no TensorBoard events file .*holds the run a"):
        script.main([str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match="is a file, not a run directory"):
        script.main([str(tmp_path / "runs" / "a" / "config.yaml")])
    (tmp_path / "runs" / "a" / "config.yaml").write_text("meta_batch_size: 0\n")
    with pytest.raises(SystemExit, match="meta_batch_size=0; --by episodes needs"):
        script.main([run, "--by", "episodes"])
    (tmp_path / "runs" / "a" / "config.yaml").write_text("meta_batch_size: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):  # one line via run_script
        script.main([run, "--by", "episodes"])
