"""Adaptation curves as results: confidence intervals, JSON, CSV, plots.

A curve is a per-task array ``[tasks, steps + 1]`` (score after 0..K adaptation steps) for one
method (MAML, a pretrained baseline, a random initialisation, ...). Every experiment, supervised
or RL, reports through these functions (``report`` writes them all) so results read the same
everywhere.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metarl.files import atomic_open, ensure_dir

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class CurveSummary:
    """Mean and 95% CI half-width of a curve at each adaptation step."""

    mean: list[float]
    ci95: list[float]
    num_tasks: int


def summarize(per_task: np.ndarray) -> CurveSummary:
    """``per_task: [tasks, steps + 1]`` -> mean ± 1.96·std/√n at each step (unbiased std)."""
    values = np.asarray(per_task, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2:
        raise ValueError(f"a curve needs shape [tasks >= 2, steps + 1], got {values.shape}")
    half_width = Z_95 * values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    return CurveSummary(values.mean(axis=0).tolist(), half_width.tolist(), values.shape[0])


def write_curves(out_dir: str | Path, curves: Mapping[str, np.ndarray], *, metric: str,
                 meta: Mapping[str, object] | None = None,
                 tasks: Sequence[Mapping[str, object]] | None = None) -> dict[str, object]:
    """Write ``curve.json`` and ``curve.csv`` (one row per method and step) and the scores they
    summarise, ``per_task.csv`` (``write_per_task``); return the JSON."""
    out_dir = Path(out_dir)
    ensure_dir(out_dir)
    summaries = {label: summarize(values) for label, values in curves.items()}
    write_per_task(out_dir / "per_task.csv", curves, metric=metric, tasks=tasks)
    result = {
        "metric": metric,
        **(dict(meta) if meta else {}),
        "methods": {label: {"mean": s.mean, "ci95": s.ci95, "num_tasks": s.num_tasks}
                    for label, s in summaries.items()},
    }
    with atomic_open(out_dir / "curve.json", "w") as handle:
        handle.write(json.dumps(result, indent=2) + "\n")
    with atomic_open(out_dir / "curve.csv", "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "step", metric, "ci95", "num_tasks"])
        for label, s in summaries.items():
            for step, (m, h) in enumerate(zip(s.mean, s.ci95)):
                writer.writerow([label, step, f"{m:.6g}", f"{h:.6g}", s.num_tasks])
    return result


def write_per_task(path: str | Path, curves: Mapping[str, np.ndarray], *, metric: str,
                   tasks: Sequence[Mapping[str, object]] | None = None) -> None:
    """One row per method, task and step: the score behind each mean of ``curve.csv``, to see
    which tasks adaptation serves well (for instance returns against target velocity).

    ``tasks`` (one mapping per row of the curves, e.g. ``{"velocity": 1.27}``) add a column per
    parameter; a list parameter one per entry (``goal`` -> ``goal_0``, ``goal_1``)."""
    params = [_flat_task(task) for task in tasks] if tasks is not None else None
    columns = list(params[0]) if params else []
    for label, values in curves.items():
        if params is not None and len(params) != len(values):
            raise ValueError(f"{label}: {len(values)} tasks scored, {len(params)} tasks "
                             "described")
    with atomic_open(path, "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "task", "step", metric, *columns])
        for label, values in curves.items():
            for task, row in enumerate(np.asarray(values)):
                described = [params[task].get(c, "") for c in columns] if params else []
                for step, value in enumerate(row):
                    writer.writerow([label, task, step, f"{value:.6g}", *described])


def _flat_task(task: Mapping[str, object]) -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in task.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            flat.update({f"{key}_{i}": v for i, v in enumerate(np.asarray(value).ravel().tolist())})
        else:
            flat[key] = value
    return flat


def plot_curves(ax, curves: Mapping[str, np.ndarray], *, metric: str, log_y: bool = False,
                references: Mapping[str, list[float]] | None = None) -> None:
    """Mean with a shaded 95% CI per method on ``ax``; optional published reference curves,
    dashed, in the colour of the method they name (``"oracle (paper)"`` as ``"oracle"``)."""
    colours = {}
    for label, values in curves.items():
        s = summarize(values)
        steps = np.arange(len(s.mean))
        mean, half = np.array(s.mean), np.array(s.ci95)
        (line,) = ax.plot(steps, mean, marker="o", label=label)
        ax.fill_between(steps, mean - half, mean + half, alpha=0.25)
        colours[label.lower()] = line.get_color()
    for label, values in (references or {}).items():
        colour = colours.get(label.split(" (")[0].lower())
        ax.plot(np.arange(len(values)), values, linestyle="--", marker="x", label=label,
                color=colour)
    ax.set_xlabel("adaptation steps")
    ax.set_ylabel(metric)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()


def format_table(curves: Mapping[str, np.ndarray], *, metric: str) -> str:
    """A plain-text table: one row per method, ``mean ± ci95`` per step."""
    summaries = {label: summarize(values) for label, values in curves.items()}
    steps = max(len(s.mean) for s in summaries.values())
    width = max(len(label) for label in summaries) + 2
    header = f"{metric:<{width}}" + "".join(f"{'step ' + str(k):>18}" for k in range(steps))
    rows = [header]
    for label, s in summaries.items():
        cells = "".join(f"{f'{m:.3f} ± {h:.3f}':>18}" for m, h in zip(s.mean, s.ci95))
        rows.append(f"{label:<{width}}" + cells)
    return "\n".join(rows)


def report(out_dir: str | Path, curves: Mapping[str, np.ndarray], *, metric: str,
           meta: Mapping[str, object], title: str, table_metric: str | None = None,
           log_y: bool = False, references: Mapping[str, list[float]] | None = None,
           side_panel: Callable[[Any], None] | None = None,
           tasks: Sequence[Mapping[str, object]] | None = None) -> dict[str, object]:
    """Write ``curve.json``, ``curve.csv``, ``per_task.csv`` (``write_curves``; ``tasks``
    describe its rows) and ``curve.png`` into ``out_dir``;
    return the JSON with the plain-text table (``format_table``, headed ``table_metric``, default
    ``metric``) under ``"table"``.

    The figure is the curves with their 95% CIs and ``references`` (``plot_curves``) under
    ``title``, and, if given, ``side_panel(ax)`` drawn on a second axis beside them.
    """
    from matplotlib.figure import Figure  # no pyplot: no backend, no global figure state

    out_dir = Path(out_dir)
    result = write_curves(out_dir, curves, metric=metric, meta=meta, tasks=tasks)
    result["table"] = format_table(curves, metric=table_metric or metric)
    figure = Figure(figsize=(12 if side_panel else 6.5, 4.5))
    axes = figure.subplots(1, 2 if side_panel else 1, squeeze=False)
    plot_curves(axes[0, 0], curves, metric=metric, log_y=log_y, references=references)
    axes[0, 0].set_title(title)
    if side_panel:
        side_panel(axes[0, 1])
    figure.tight_layout()
    with atomic_open(out_dir / "curve.png", "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    return result
