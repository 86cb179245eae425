"""Scores by task parameter: an evaluation's ``per_task.csv`` grouped into bins, as Markdown.

    python experiments/per_task_table.py CSV --by velocity [--bins 0 0.5 1 1.5 2]
        [--method maml]

``CSV`` is the ``per_task.csv`` that ``evaluate`` writes next to ``curve.json`` (one row per
method, task and step, with the task's parameters as columns). Tasks are grouped by the column
``--by`` into the half-open bins ``[b_i, b_(i+1))`` of ``--bins`` (the last bin is closed;
default: one bin per distinct value, e.g. the directions of cheetah_dir), and each row of the
table is one bin: its number of tasks and the mean score of ``--method`` after each step.
A vector parameter, stored as the columns ``NAME_0, NAME_1, ...``, is grouped by its length
with ``--by NAME_norm`` (ant_goal: ``--by goal_norm``, the goal's distance from the start).
docs/results.md's cheetah_vel table by target velocity comes from this script.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path


def read(path: Path, method: str, by: str) -> dict[int, tuple[float, dict[int, float]]]:
    """``{task: (value of by, {step: score})}`` of ``method``; SystemExit with one line if the
    file lacks the method or the column."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        parameters = [c for c in columns if c not in ("method", "task", "step")][1:]
        parts = [by] if by in columns else vector_columns(by, parameters)
        if not parts:
            choices = parameters + [f"{name}_norm" for name in vectors(parameters)]
            raise SystemExit(f"error: {path} has no column {by!r}; task parameters: "
                             f"{', '.join(choices) or 'none'}")
        metric = columns[3]
        tasks: dict[int, tuple[float, dict[int, float]]] = {}
        methods = set()
        for row in reader:
            methods.add(row["method"])
            if row["method"] != method:
                continue
            task = int(row["task"])
            value = float(row[by]) if parts == [by] else math.hypot(*map(float, (row[c] for c in parts)))
            value, scores = tasks.setdefault(task, (value, {}))
            scores[int(row["step"])] = float(row[metric])
    if not tasks:
        raise SystemExit(f"error: {path} has no method {method!r}; methods: "
                         f"{', '.join(sorted(methods))}")
    return tasks


def vectors(parameters: list[str]) -> list[str]:
    """The vector parameters among ``parameters``: names ``NAME`` with a column ``NAME_0``."""
    return [c[:-2] for c in parameters if c.endswith("_0")]


def vector_columns(by: str, parameters: list[str]) -> list[str]:
    """The columns ``by`` is computed from: ``[by]`` for a column, ``NAME_0, NAME_1, ...`` for
    ``NAME_norm``; empty if neither exists."""
    if by in parameters:
        return [by]
    name = by.removesuffix("_norm")
    if by.endswith("_norm") and name in vectors(parameters):
        return [c for c in parameters if c.rpartition("_")[0] == name
                and c.rpartition("_")[2].isdigit()]
    return []


def bin_label(edges: list[float], i: int) -> str:
    return f"{edges[i]:g} - {edges[i + 1]:g}"


def table(tasks: dict[int, tuple[float, dict[int, float]]], by: str,
          edges: list[float] | None) -> list[str]:
    """Markdown rows: one per bin of ``edges`` (or per distinct value without them)."""
    groups: dict[str, list[dict[int, float]]] = defaultdict(list)
    order: list[str] = []
    if edges is None:
        for value in sorted({v for v, _ in tasks.values()}):
            order.append(f"{value:g}")
    else:
        order = [bin_label(edges, i) for i in range(len(edges) - 1)]
    for value, scores in tasks.values():
        if edges is None:
            groups[f"{value:g}"].append(scores)
            continue
        for i in range(len(edges) - 1):
            last = i == len(edges) - 2
            if edges[i] <= value < edges[i + 1] or (last and value == edges[i + 1]):
                groups[bin_label(edges, i)].append(scores)
                break
    steps = max(max(scores) for _, scores in tasks.values()) + 1
    lines = [f"| {by} | tasks | " + " | ".join(f"step {k}" for k in range(steps)) + " |",
             "|---|---|" + "---|" * steps]
    for label in order:
        members = groups.get(label, [])
        means = [sum(s[k] for s in members) / len(members) if members else float("nan")
                 for k in range(steps)]
        lines.append(f"| {label} | {len(members)} | "
                     + " | ".join(f"{m:.1f}" for m in means) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--by", required=True, help="task parameter column, e.g. velocity, or "
                        "NAME_norm for the length of the vector NAME_0, NAME_1, ... (goal_norm)")
    parser.add_argument("--bins", type=float, nargs="+", help="bin edges, increasing")
    parser.add_argument("--method", default="maml")
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        parser.error(f"{args.csv}: no such file (evaluate writes per_task.csv next to "
                     "curve.json)")
    if args.bins is not None and (len(args.bins) < 2 or any(
            b >= c for b, c in zip(args.bins, args.bins[1:]))):
        parser.error(f"--bins {' '.join(f'{b:g}' for b in args.bins)}: give at least two "
                     "increasing edges")
    tasks = read(args.csv, args.method, args.by)
    print("\n".join(table(tasks, args.by, args.bins)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
