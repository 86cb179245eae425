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
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from metarl.evaluation import report

#: A method's label on the plot, by its curve's name in curve.json.
LABELS = {"maml": "MAML-TRPO", "promp": "ProMP", "rl2": "RL²"}
#: What the evaluations of one comparison must agree on: the held-out tasks.
SAME = ("env", "num_tasks", "seed")


def evaluation_dir(path: Path) -> Path:
    return path if (path / "curve.json").is_file() else path / "evaluation"


def load(path: Path) -> tuple[str, dict, np.ndarray]:
    """(method, curve.json, per-task returns ``[tasks, steps]``) of one evaluation: its first
    curve, the evaluated run's own (baselines come after it)."""
    folder = evaluation_dir(path)
    if not (folder / "curve.json").is_file():
        raise SystemExit(f"error: {folder / 'curve.json'}: no such file (evaluate the run "
                         "first: python -m metarl.run evaluate --run RUN_DIR)")
    result = json.loads((folder / "curve.json").read_text())
    method = next(iter(result["methods"]))
    scores: dict[tuple[int, int], float] = {}
    with open(folder / "per_task.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["method"] == method:
                scores[int(row["task"]), int(row["step"])] = float(row[result["metric"]])
    tasks = 1 + max(task for task, _ in scores)
    steps = 1 + max(step for _, step in scores)
    values = np.array([[scores[t, k] for k in range(steps)] for t in range(tasks)])
    return method, result, values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the figure and the pooled curves")
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    args = parser.parse_args(argv)
    pooled: dict[str, list[np.ndarray]] = {}
    first: dict | None = None
    iterations = 0
    for run in args.runs:
        method, result, values = load(run)
        first = first or result
        iterations = max(iterations, int(result.get("iteration", 0)))
        differ = [key for key in SAME if result.get(key) != first.get(key)]
        if differ:
            print(f"error: {run} was evaluated on other tasks than {args.runs[0]} ("
                  + ", ".join(f"{k}: {result.get(k)!r} vs {first.get(k)!r}" for k in differ)
                  + ")", file=sys.stderr)
            return 2
        pooled.setdefault(method, []).append(values)
    curves = {}
    for method, seeds in pooled.items():
        steps = min(v.shape[1] for v in seeds)
        label = f"{LABELS.get(method, method)} ({len(seeds)} seed{'s' * (len(seeds) > 1)})"
        curves[label] = np.mean([v[:, :steps] for v in seeds], axis=0)
    meta = {key: first.get(key) for key in SAME}
    meta["runs"] = [str(run) for run in args.runs]
    result = report(args.out, curves, metric="mean return", table_metric="return", meta=meta,
                    title=f"{first.get('env')}: held-out return ({first.get('num_tasks')} tasks, "
                          "95% CI)", iterations=iterations,
                    x_label="experience with the task: gradient steps, or episodes of a trial "
                            "(RL²)")
    print(result["table"])
    print(f"wrote {args.out}/curve.png, curve.json, curve.csv and per_task.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
