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

from metarl.scripts import finite_float

#: The columns every ``per_task.csv`` starts with; the metric and the task parameters follow.
KEY_COLUMNS = ("method", "task", "step")


def read(path: Path, method: str, by: str) -> dict[int, tuple[float, dict[int, float]]]:
    """``{task: (value of by, {step: score})}`` of ``method``; SystemExit with one line if the
    file is not an evaluation's, lacks the method or the column, or holds a row that is
    incomplete or not finite."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if tuple(columns[:3]) != KEY_COLUMNS or len(columns) < 4:
                raise SystemExit(f"error: {path} is not an evaluation's per_task.csv (its "
                                 f"header should start with {', '.join(KEY_COLUMNS)}, metric)")
            parameters = columns[4:]
            parts = vector_columns(by, parameters)
            if not parts:
                choices = parameters + [f"{name}_norm" for name in vectors(parameters)]
                raise SystemExit(f"error: {path} has no task parameter {by!r}; task "
                                 f"parameters: {', '.join(choices) or 'none'}")
            tasks, methods = rows(path, reader, method, columns[3], by, parts)
    except UnicodeDecodeError:
        raise SystemExit(f"error: {path} is not a text CSV file") from None
    if not methods:
        raise SystemExit(f"error: {path} has no rows")
    if not tasks:
        raise SystemExit(f"error: {path} has no method {method!r}; methods: "
                         f"{', '.join(sorted(methods))}")
    steps = max(max(scores) for _, scores in tasks.values()) + 1
    for task, (_, scores) in sorted(tasks.items()):
        missing = [k for k in range(steps) if k not in scores]
        if missing:
            raise SystemExit(f"error: {path}: task {task} of {method!r} has no step "
                             f"{missing[0]} (the others have steps 0..{steps - 1})")
    return tasks


def rows(path: Path, reader: csv.DictReader, method: str, metric: str, by: str,
         parts: list[str]) -> tuple[dict[int, tuple[float, dict[int, float]]], set[str]]:
    """``method``'s tasks as :func:`read` returns them, and every method the file holds."""
    tasks: dict[int, tuple[float, dict[int, float]]] = {}
    methods = set()
    for row in reader:
        where = f"error: {path} line {reader.line_num}"
        if None in row.values() or None in row:
            raise SystemExit(f"{where}: the row does not have {len(reader.fieldnames)} fields")
        methods.add(row["method"])
        if row["method"] != method:
            continue
        try:
            task, step = int(row["task"]), int(row["step"])
            score = float(row[metric])
            values = [float(row[c]) for c in parts]
        except ValueError as error:
            raise SystemExit(f"{where}: {error}") from None
        if not all(math.isfinite(v) for v in (score, *values)):
            raise SystemExit(f"{where}: task {task}, step {step}: {metric} {score:g}, "
                             f"{', '.join(parts)} {', '.join(f'{v:g}' for v in values)}: "
                             "every value must be finite")
        value = values[0] if parts == [by] else math.hypot(*values)
        value, scores = tasks.setdefault(task, (value, {}))
        scores[step] = score
    return tasks, methods


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
        cells = [f"{sum(s[k] for s in members) / len(members):.1f}" if members else "—"
                 for k in range(steps)]
        lines.append(f"| {label} | {len(members)} | " + " | ".join(cells) + " |")
    return lines


def outside(tasks: dict[int, tuple[float, dict[int, float]]], by: str,
            edges: list[float]) -> str:
    """A note on the tasks no bin of ``edges`` holds (empty if every task is in one)."""
    left = sorted(v for v, _ in tasks.values() if not edges[0] <= v <= edges[-1])
    if not left:
        return ""
    return (f"note: {len(left)} of {len(tasks)} tasks fall outside --bins [{edges[0]:g}, "
            f"{edges[-1]:g}] ({by} {left[0]:.3g} to {left[-1]:.3g}); they are not in the table")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("--by", required=True, help="task parameter column, e.g. velocity, or "
                        "NAME_norm for the length of the vector NAME_0, NAME_1, ... (goal_norm)")
    parser.add_argument("--bins", type=finite_float, nargs="+",
                        help="bin edges, finite and increasing")
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
    note = outside(tasks, args.by, args.bins) if args.bins else ""
    if note:
        print(note, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
