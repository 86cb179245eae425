"""MAML-TRPO, ProMP and RL² on one axis: the return on held-out tasks against the experience
with each task, from the evaluations of their runs.

    python experiments/compare_rl.py OUT RUN_DIR [RUN_DIR ...]

Each ``RUN_DIR`` is a run directory whose ``evaluation/`` ``evaluate`` wrote (or an evaluation
folder itself). Its method is its curve's name in ``curve.json`` (``maml`` for MAML-TRPO,
``promp``, ``rl2``); several runs of one method (seeds) are pooled: each held-out task's
returns are averaged over the seeds, and the 95% interval is over the tasks. The x axis is the
experience with the new task, k = 0, 1, ...: the return after k policy-gradient steps for
MAML-TRPO and ProMP (each step one batch of episodes of the task), in episode k of a trial for
RL². Every run must have been evaluated on the same held-out tasks (the same family, evaluation
seed and number of tasks: ``experiments/grid.py`` evaluates every run alike); a run that
differs stops the script with one line. Writes ``OUT/curve.png``, ``curve.json``, ``curve.csv``
and ``per_task.csv`` (``metarl.evaluation.report``) and prints the table.

``OUT`` must be a new folder or one this script wrote before (its ``curve.json`` lists the
pooled ``"runs"``): never one of the evaluations, or a folder holding another one, whose files
the output would replace. An evaluation given twice is refused rather than counted as two seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

from metarl.evaluation import report
from metarl.scripts import read_json, run_script

#: A method's label on the plot, by its curve's name in curve.json.
LABELS = {"maml": "MAML-TRPO", "promp": "ProMP", "rl2": "RL²"}
#: What the evaluations of one comparison must agree on: the held-out tasks.
SAME = ("env", "num_tasks", "seed")
#: The key of curve.json that marks this script's output (the pooled evaluations).
OWN_MARK = "runs"


def evaluation_dir(path: Path) -> Path:
    """The evaluation folder of ``path``: itself if it holds a curve.json, else its
    ``evaluation/``."""
    return path if (path / "curve.json").is_file() else path / "evaluation"


def read_curve(path: Path) -> dict:
    """The JSON object of the curve.json ``path``; SystemExit with one line if it is not one."""
    result = read_json(path, "evaluate the run again")
    if not isinstance(result, dict):
        raise SystemExit(f"error: {path} holds no JSON object; it is not an evaluation's curve")
    return result


def read_evaluation(folder: Path) -> tuple[str, dict]:
    """(method, curve.json) of the evaluation folder ``folder``: its first curve, the
    evaluated run's own (baselines come after it)."""
    path = folder / "curve.json"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file (evaluate the run first: python -m "
                         "metarl.run evaluate --run RUN_DIR)")
    result = read_curve(path)
    if OWN_MARK in result:
        raise SystemExit(f"error: {path} was written by compare_rl.py (it pools "
                         f"{', '.join(map(str, result[OWN_MARK]))}); give the evaluations "
                         "themselves")
    methods, metric = result.get("methods"), result.get("metric")
    if not isinstance(methods, dict) or not methods or not isinstance(metric, str):
        raise SystemExit(f"error: {path} is not an evaluation's curve (it needs \"methods\" "
                         "and \"metric\")")
    if not isinstance(result.get("iteration", 0), int):
        raise SystemExit(f"error: {path}: \"iteration\" is {result['iteration']!r}, not a "
                         "number of meta-iterations")
    return next(iter(methods)), result


def read_scores(path: Path, method: str, metric: str) -> dict[tuple[int, int], float]:
    """``{(task, step): score}`` of ``method`` in the per_task.csv ``path``, the column
    ``metric``; SystemExit with one line if the file is missing, lacks the column or holds a
    row that is not a score."""
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file (evaluate writes it beside curve.json; "
                         "evaluate the run again)")
    scores = {}
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            check_columns(path, reader.fieldnames or [], metric)
            for row in reader:
                if row["method"] == method:
                    key = (int(row["task"]), int(row["step"]))
                    scores[key] = finite_score(path, key, row[metric])
    except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as error:
        where = f"line {reader.line_num} is not a score row" if reader.line_num else "not CSV"
        raise SystemExit(f"error: {path}: {where} ({error})") from None
    if not scores:
        raise SystemExit(f"error: {path} holds no score of {method!r}, the method of its "
                         "curve.json")
    return scores


def check_columns(path: Path, columns: list[str], metric: str) -> None:
    """SystemExit unless the per_task.csv ``path`` has the columns method, task, step and
    ``metric`` (the metric its curve.json names)."""
    if not columns:
        raise SystemExit(f"error: {path} is empty (evaluate the run again)")
    for column in ("method", "task", "step", metric):
        if column not in columns:
            named = " (the metric curve.json names)" if column == metric else ""
            raise SystemExit(f"error: {path} has no column {column!r}{named}; its columns: "
                             f"{', '.join(columns)}")


def finite_score(path: Path, key: tuple[int, int], text: str) -> float:
    """The score ``text`` of (task, step) ``key``; SystemExit unless it is a finite number."""
    value = float(text)
    if not math.isfinite(value):
        raise SystemExit(f"error: {path}: the score of task {key[0]} at step {key[1]} is "
                         f"{text}, not a finite number")
    return value


def score_table(path: Path, scores: dict[tuple[int, int], float],
                num_tasks: object) -> np.ndarray:
    """``scores`` as ``[tasks, steps]``; SystemExit naming the first missing (task, step), or
    the count of tasks if it is not curve.json's ``num_tasks``."""
    tasks = 1 + max(task for task, _ in scores)
    steps = 1 + max(step for _, step in scores)
    if isinstance(num_tasks, int) and tasks != num_tasks:
        raise SystemExit(f"error: {path} scores {tasks} tasks; curve.json says {num_tasks}")
    if tasks < 2:
        raise SystemExit(f"error: {path} scores one task; a curve's interval needs two or more")
    for task in range(tasks):
        for step in range(steps):
            if (task, step) not in scores:
                raise SystemExit(f"error: {path} lacks the score of task {task} at step {step}")
    return np.array([[scores[t, k] for k in range(steps)] for t in range(tasks)])


def load(path: Path) -> tuple[str, dict, np.ndarray]:
    """(method, curve.json, per-task returns ``[tasks, steps]``) of one evaluation: its first
    curve, the evaluated run's own (baselines come after it)."""
    if not path.exists():
        raise SystemExit(f"error: {path}: no such folder")
    if path.is_file():
        raise SystemExit(f"error: {path} is a file; give a run directory or the evaluation "
                         "folder evaluate wrote")
    folder = evaluation_dir(path)
    method, result = read_evaluation(folder)
    scores = read_scores(folder / "per_task.csv", method, result["metric"])
    return method, result, score_table(folder / "per_task.csv", scores, result.get("num_tasks"))


def check_distinct(runs: list[Path]) -> None:
    """SystemExit naming a run given twice (also as its run directory and its evaluation)."""
    seen: dict[Path, Path] = {}
    for run in runs:
        folder = evaluation_dir(run).resolve()
        if folder in seen:
            also = "" if seen[folder] == run else f" (as {seen[folder]} and {run})"
            raise SystemExit(f"error: {run} is given twice{also}; each evaluation counts once")
        seen[folder] = run


def check_output(out: Path, runs: list[Path]) -> None:
    """SystemExit unless writing into ``out`` leaves every evaluation intact: ``out`` is none of
    ``runs`` (nor their evaluation folders) and holds no curve.json but this script's."""
    inputs = {p.resolve() for run in runs for p in (run, evaluation_dir(run))}
    if out.resolve() in inputs:
        raise SystemExit(f"error: OUT {out} is one of the evaluations to compare; give a new "
                         "folder for the output first: compare_rl.py OUT RUN_DIR ...")
    if (out / "evaluation" / "curve.json").is_file():
        raise SystemExit(f"error: OUT {out} is a run directory (it holds "
                         "evaluation/curve.json); give a new folder")
    if (out / "curve.json").exists() and not written_here(out / "curve.json"):
        raise SystemExit(f"error: OUT {out} already holds an evaluation (curve.json) that "
                         "compare_rl.py did not write; give a new folder")


def written_here(curve: Path) -> bool:
    """Whether the curve.json ``curve`` is this script's output, which a rerun may replace."""
    try:
        result = json.loads(curve.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(result, dict) and OWN_MARK in result


def check_same_tasks(loaded: list[tuple[Path, str, dict, np.ndarray]]) -> None:
    """SystemExit if a run was evaluated on other held-out tasks than the first."""
    first_run, _, first, _ = loaded[0]
    for run, _, result, _ in loaded[1:]:
        differ = [key for key in SAME if result.get(key) != first.get(key)]
        if differ:
            raise SystemExit(f"error: {run} was evaluated on other tasks than {first_run} ("
                             + ", ".join(f"{k}: {result.get(k)!r} vs {first.get(k)!r}"
                                         for k in differ) + ")")


def check_no_copies(loaded: list[tuple[Path, str, dict, np.ndarray]]) -> None:
    """SystemExit if two runs of one method hold the very same scores (one evaluation copied
    to two folders would count as two seeds) or were trained with the same seed (one run
    evaluated twice, or two variants of one seed: either way not two seeds)."""
    for index, (run, method, result, values) in enumerate(loaded):
        for earlier, earlier_method, earlier_result, earlier_values in loaded[:index]:
            if method != earlier_method:
                continue
            if np.array_equal(values, earlier_values):
                raise SystemExit(f"error: {run} holds the same scores as {earlier} (a copy of "
                                 "one evaluation?); each evaluation counts once")
            seed = result.get("run_seed")
            if seed is not None and seed == earlier_result.get("run_seed"):
                raise SystemExit(
                    f"error: {run} and {earlier} are both {LABELS.get(method, method)} runs of "
                    f"training seed {seed}; the runs of one method are pooled as seeds, so "
                    "each must come from its own --seed")


def pool(runs: list[Path]) -> tuple[dict[str, list[np.ndarray]], dict, int]:
    """(per-task returns of each method's runs, the first curve.json, the most
    meta-iterations); SystemExit if the runs' evaluations cannot be pooled."""
    loaded = [(run, *load(run)) for run in runs]
    check_same_tasks(loaded)
    check_no_copies(loaded)
    pooled: dict[str, list[np.ndarray]] = {}
    for _, method, _, values in loaded:
        pooled.setdefault(method, []).append(values)
    iterations = max(int(result.get("iteration", 0)) for _, _, result, _ in loaded)
    return pooled, loaded[0][2], iterations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path,
                        help="a new folder for the figure and the pooled curves (or this "
                             "script's earlier output)")
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    args = parser.parse_args(argv)
    check_distinct(args.runs)
    check_output(args.out, args.runs)
    pooled, first, iterations = pool(args.runs)
    curves = {}
    for method, seeds in pooled.items():
        steps = min(v.shape[1] for v in seeds)
        label = f"{LABELS.get(method, method)} ({len(seeds)} seed{'s' * (len(seeds) > 1)})"
        curves[label] = np.mean([v[:, :steps] for v in seeds], axis=0)
    meta = {key: first.get(key) for key in SAME}
    meta[OWN_MARK] = [str(run) for run in args.runs]
    result = report(args.out, curves, metric="mean return", table_metric="return", meta=meta,
                    title=f"{first.get('env')}: held-out return ({first.get('num_tasks')} tasks, "
                          "95% CI)", iterations=iterations,
                    x_label="experience with the task: gradient steps, or episodes of a trial "
                            "(RL²)")
    print(result["table"])
    print(f"wrote {args.out}/curve.png, curve.json, curve.csv and per_task.csv")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
