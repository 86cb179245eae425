"""Adaptation curves as results: confidence intervals, JSON, CSV, plots.

A curve is a per-task array ``[tasks, steps + 1]`` (score after 0..K units of experience on the
new task: gradient steps for MAML, ``x_label`` names them) for one method (MAML, a pretrained
baseline, a random initialisation, ...). Its points are at x = 0..K unless ``x_values`` gives
each point's x, with ``x_name`` heading that column (the support examples per class of an
episodic run's curve over shots: ``x_name="shots"``, ``x_values=[1, 5, 10]``). Every experiment, supervised or RL, reports through
these functions (``report`` writes them all) so results read the same everywhere. Each kind of
run draws its curves with one function (``supervised/curves.py``, ``rl/evaluate.py``), fills
in its options (``metarl.evaluation_options``) and runs its baselines as plug-ins
(``supervised/problem.py``'s ``Baseline``, ``rl/baselines.py``'s ``RLBaseline``).
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
from metarl.nonfinite import NonFiniteError

Z_95 = 1.959963984540054
#: Held-out tasks of ``evaluate`` come from ``seed + EVALUATION_SEED_OFFSET``: a stream
#: disjoint from training's (and from the held-out set logged during supervised training).
EVALUATION_SEED_OFFSET = 2_000_029


def evaluation_step_sizes(fast_lr: float, steps: int, later_lr_scale: float) -> list[float]:
    """The step sizes of ``evaluate``'s ``steps`` adaptation steps: α = ``fast_lr`` for the
    first, α·``later_lr_scale`` for the others (the paper's RL evaluation: α, then α/2)."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return [fast_lr * (1.0 if k == 0 else later_lr_scale) for k in range(steps)]


@dataclass(frozen=True)
class CurveSummary:
    """Mean and 95% CI half-width of a curve at each adaptation step."""

    mean: list[float]
    ci95: list[float]
    num_tasks: int


def curve_x(x_values: Sequence[int] | None, points: int) -> list[int]:
    """The x of each of a curve's ``points``: ``x_values``, else the steps ``0..points - 1``;
    ``ValueError`` when ``x_values`` does not hold one value per point."""
    if x_values is None:
        return list(range(points))
    if len(x_values) != points:
        raise ValueError(f"{len(x_values)} x values {list(x_values)} for a curve of {points} "
                         "points")
    return list(x_values)


def summarize(per_task: np.ndarray) -> CurveSummary:
    """``per_task: [tasks, steps + 1]`` -> mean ± 1.96·std/√n at each step (unbiased std)."""
    values = np.asarray(per_task, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2:
        raise ValueError(f"a curve needs shape [tasks >= 2, steps + 1], got {values.shape}")
    half_width = Z_95 * values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    return CurveSummary(values.mean(axis=0).tolist(), half_width.tolist(), values.shape[0])


def write_curves(out_dir: str | Path, curves: Mapping[str, np.ndarray], *, metric: str,
                 meta: Mapping[str, object] | None = None,
                 tasks: Sequence[Mapping[str, object]] | None = None,
                 x_name: str = "step", x_values: Sequence[int] | None = None
                 ) -> dict[str, object]:
    """Write ``curve.json`` and ``curve.csv`` (one row per method and point, its x in column
    ``x_name``: the step, or ``x_values``) and the scores they summarise, ``per_task.csv``
    (``write_per_task``); return the JSON."""
    out_dir = Path(out_dir)
    ensure_dir(out_dir)
    summaries = {label: summarize(values) for label, values in curves.items()}
    write_per_task(out_dir / "per_task.csv", curves, metric=metric, tasks=tasks, x_name=x_name,
                   x_values=x_values)
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
        writer.writerow(["method", x_name, metric, "ci95", "num_tasks"])
        for label, s in summaries.items():
            for x, m, h in zip(curve_x(x_values, len(s.mean)), s.mean, s.ci95):
                writer.writerow([label, x, f"{m:.6g}", f"{h:.6g}", s.num_tasks])
    return result


def write_per_task(path: str | Path, curves: Mapping[str, np.ndarray], *, metric: str,
                   tasks: Sequence[Mapping[str, object]] | None = None, x_name: str = "step",
                   x_values: Sequence[int] | None = None) -> None:
    """One row per method, task and point (its x in column ``x_name``, as in ``curve.csv``):
    the score behind each mean of ``curve.csv``, to see which tasks adaptation serves well (for
    instance returns against target velocity).

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
        writer.writerow(["method", "task", x_name, metric, *columns])
        for label, values in curves.items():
            values = np.asarray(values)
            xs = curve_x(x_values, values.shape[1])
            for task, row in enumerate(values):
                described = [params[task].get(c, "") for c in columns] if params else []
                for x, value in zip(xs, row):
                    writer.writerow([label, task, x, f"{value:.6g}", *described])


def _flat_task(task: Mapping[str, object]) -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in task.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            flat.update({f"{key}_{i}": v for i, v in enumerate(np.asarray(value).ravel().tolist())})
        else:
            flat[key] = value
    return flat


def outlier_curves(means: Mapping[str, Sequence[float]], *, log_y: bool = False,
                   ratio: float = 4.0, squeeze: float = 3.0) -> list[str]:
    """The curves that end far from all the others and squeeze the others into one line (a
    random initialisation far below MAML, the pretrained model and the oracle, say); empty
    when there are none.

    ``means``: each method's mean score after 0..K steps (log10 of each with ``log_y``, where
    every mean is positive). The methods are sorted by their last mean and split at the widest
    gap between neighbours; the smaller side is far when that gap is at least ``ratio`` times
    the spread of the larger side's last means, the larger side holds at least two methods,
    and the larger side's means after adaptation (steps 1..K) span at most 1/``squeeze`` of
    the range of every mean (what one panel shows).
    """
    values = {label: np.asarray(v, dtype=np.float64) for label, v in means.items() if len(v)}
    if log_y and all(np.all(v > 0) for v in values.values()):
        values = {label: np.log10(v) for label, v in values.items()}
    if len(values) < 3 or not all(np.all(np.isfinite(v)) for v in values.values()):
        return []
    order = sorted(values, key=lambda label: values[label][-1])
    gaps = np.diff([values[label][-1] for label in order])
    cut = int(np.argmax(gaps)) + 1
    low, high = order[:cut], order[cut:]
    far, close = (low, high) if len(low) < len(high) else (high, low)
    if len(far) == len(close) or gaps[cut - 1] == 0:
        return []
    if gaps[cut - 1] < ratio * np.ptp([values[label][-1] for label in close]):
        return []
    adapted = np.concatenate([values[label][1:] if len(values[label]) > 1 else values[label]
                              for label in close])
    shown = np.ptp(np.concatenate(list(values.values())))
    return list(far) if squeeze * np.ptp(adapted) <= shown else []


def plot_curves(ax, curves: Mapping[str, np.ndarray], *, metric: str, log_y: bool = False,
                references: Mapping[str, Sequence[float]] | None = None,
                flat: Mapping[str, str] | None = None, first_step: int = 0,
                colours: Mapping[str, str] | None = None,
                x_label: str = "adaptation steps",
                x_values: Sequence[int] | None = None) -> None:
    """Mean with a shaded 95% CI per method on ``ax``, from adaptation step ``first_step`` on;
    optional published reference curves, dashed, in the colour of the method they name
    (``"oracle (paper)"`` as ``"oracle"``).

    ``flat``: methods drawn as a labelled horizontal reference line (their mean, which is the
    same after every step) instead of a curve, e.g. ``{"classifier_converged": "classifier,
    head after 100 steps"}``. ``colours``: a colour per method, to keep panels alike (default:
    ``curve_colours``). Adaptation steps (``x_label``) are whole numbers, and so are the x
    ticks; with ``x_values`` (one per point, the references' too) the points and the ticks are
    at those values instead of at the steps.
    """
    from matplotlib.ticker import MaxNLocator

    colours = dict(colours or curve_colours(curves))
    flat = flat or {}
    for label, values in curves.items():
        s = summarize(values)
        mean, half = np.array(s.mean[first_step:]), np.array(s.ci95[first_step:])
        colour = colours[label]
        if label in flat:
            ax.axhline(mean[0], color=colour, linestyle=":", linewidth=2, label=flat[label])
            ax.axhspan(mean[0] - half[0], mean[0] + half[0], color=colour, alpha=0.12)
            continue
        steps = curve_x(x_values, len(s.mean))[first_step:]
        ax.plot(steps, mean, marker="o", label=label, color=colour)
        ax.fill_between(steps, mean - half, mean + half, alpha=0.25, color=colour)
    lowered = {label.lower(): colour for label, colour in colours.items()}
    for label, values in (references or {}).items():
        shown = list(values)[first_step:]
        steps = curve_x(x_values, len(values))[first_step:]
        ax.plot(steps, shown, linestyle="--", marker="x", label=label,
                color=lowered.get(label.split(" (")[0].lower()))
    ax.set_xlabel(x_label)
    ax.set_ylabel(metric)
    if x_values is None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.set_xticks(list(x_values)[first_step:])
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def curve_colours(curves: Mapping[str, object]) -> dict[str, str]:
    """A colour of matplotlib's cycle for each method, in order."""
    import matplotlib

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(curves)}


def plot_zoomed(ax, curves: Mapping[str, np.ndarray], outliers: Sequence[str], *, metric: str,
                log_y: bool = False, references: Mapping[str, Sequence[float]] | None = None,
                flat: Mapping[str, str] | None = None, x_label: str = "adaptation steps",
                x_values: Sequence[int] | None = None) -> None:
    """The methods that are not ``outliers`` after adaptation (steps 1..K, or step 0 alone when
    K = 0), on their own axis so that their differences show; the published references of
    those methods with them."""
    close = {label: values for label, values in curves.items() if label not in outliers}
    first = 1 if min(np.shape(v)[1] for v in close.values()) > 1 else 0
    names = {label.lower() for label in close}
    shown = {label: values for label, values in (references or {}).items()
             if label.split(" (")[0].lower() in names}
    plot_curves(ax, close, metric=metric, log_y=log_y, references=shown, flat=flat,
                first_step=first, colours=curve_colours(curves), x_label=x_label,
                x_values=x_values)
    ax.set_title(f"after adaptation, without {', '.join(outliers)} (zoomed)", fontsize=10)


def format_table(curves: Mapping[str, np.ndarray], *, metric: str, x_name: str = "step",
                 x_values: Sequence[int] | None = None) -> str:
    """A plain-text table: one row per method, ``mean ± ci95`` per point, each column headed
    by its x (``step 0``, ..., or ``x_name`` and each of ``x_values``: ``shots 5``)."""
    summaries = {label: summarize(values) for label, values in curves.items()}
    steps = max(len(s.mean) for s in summaries.values())
    width = max(len(label) for label in summaries) + 2
    header = f"{metric:<{width}}" + "".join(f"{f'{x_name} {x}':>18}"
                                            for x in curve_x(x_values, steps))
    rows = [header]
    for label, s in summaries.items():
        cells = "".join(f"{f'{m:.3f} ± {h:.3f}':>18}" for m, h in zip(s.mean, s.ci95))
        rows.append(f"{label:<{width}}" + cells)
    return "\n".join(rows)


def check_finite_curves(curves: Mapping[str, np.ndarray], *, x_name: str = "step",
                        x_values: Sequence[int] | None = None) -> None:
    """``NonFiniteError`` naming the first method and adaptation step (or, with ``x_values``,
    the x of the point) whose score is NaN or infinite on some task (``curves``:
    ``[tasks, steps + 1]`` each), so that no curve with a non-finite point is written or
    averaged into a mean."""
    for label, values in curves.items():
        bad = ~np.isfinite(np.asarray(values, dtype=float).reshape(len(values), -1))
        if bad.any():
            step = int(np.nonzero(bad.any(axis=0))[0][0])
            if x_values is not None:
                x = curve_x(x_values, bad.shape[1])[step]
                raise NonFiniteError(
                    f"the {label} score is non-finite at {x_name} {x} on "
                    f"{int(bad[:, step].sum())} of {len(values)} tasks; no curve was written")
            raise NonFiniteError(
                f"the {label} score is non-finite after {step} adaptation step"
                f"{'' if step == 1 else 's'} on {int(bad[:, step].sum())} of {len(values)} "
                f"tasks (the model diverged while adapting: is a step size too large?); no "
                f"curve was written")


def report(out_dir: str | Path, curves: Mapping[str, np.ndarray], *, metric: str,
           meta: Mapping[str, object], title: str, iterations: int,
           table_metric: str | None = None, log_y: bool = False,
           references: Mapping[str, Sequence[float]] | None = None,
           flat: Mapping[str, str] | None = None,
           side_panel: Callable[[Any], None] | None = None,
           tasks: Sequence[Mapping[str, object]] | None = None,
           x_label: str = "adaptation steps", x_name: str = "step",
           x_values: Sequence[int] | None = None) -> dict[str, object]:
    """Write ``curve.json``, ``curve.csv``, ``per_task.csv`` (``write_curves``; ``tasks``
    describe its rows) and ``curve.png`` (``curve_figure``; ``x_label`` names its x axis, the
    experience on the new task) into ``out_dir``; return the JSON with the plain-text table
    (``format_table``, headed ``table_metric``, default ``metric``) under ``"table"``. The
    points are at steps 0..K, or at ``x_values`` (the CSV column and the table's headers say
    ``x_name``)."""
    x = {"x_name": x_name, "x_values": x_values}
    check_finite_curves(curves, **x)
    out_dir = Path(out_dir)
    result = write_curves(out_dir, curves, metric=metric, meta=meta, tasks=tasks, **x)
    result["table"] = format_table(curves, metric=table_metric or metric, **x)
    figure = curve_figure(curves, metric=metric, title=title, iterations=iterations,
                          log_y=log_y, references=references, flat=flat, side_panel=side_panel,
                          x_label=x_label, x_values=x_values)
    with atomic_open(out_dir / "curve.png", "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    return result


def curve_figure(curves: Mapping[str, np.ndarray], *, metric: str, title: str, iterations: int,
                 log_y: bool = False, references: Mapping[str, Sequence[float]] | None = None,
                 flat: Mapping[str, str] | None = None,
                 side_panel: Callable[[Any], None] | None = None,
                 x_label: str = "adaptation steps", x_values: Sequence[int] | None = None):
    """The figure of ``curve.png``: the curves with their 95% CIs, ``references`` and ``flat``
    reference lines (``plot_curves``, at ``x_values`` if given) under ``title`` and the number of meta-training
    ``iterations`` of the evaluated model; beside it, when some curves end far from the others
    (``outlier_curves``), the others zoomed (``plot_zoomed``), and, if given,
    ``side_panel(ax)``. A matplotlib ``Figure`` (no pyplot: no backend, no global state)."""
    from matplotlib.figure import Figure

    outliers = outlier_curves({label: summarize(values).mean for label, values in curves.items()},
                              log_y=log_y)
    panels = 1 + bool(outliers) + bool(side_panel)
    figure = Figure(figsize=(6.5 if panels == 1 else 5.75 * panels, 4.75))
    axes = list(figure.subplots(1, panels, squeeze=False)[0])
    plot_curves(axes[0], curves, metric=metric, log_y=log_y, references=references, flat=flat,
                x_label=x_label, x_values=x_values)
    axes[0].set_title(f"{title}\nafter {iterations:,} meta-training iterations", fontsize=10)
    if outliers:
        plot_zoomed(axes[1], curves, outliers, metric=metric, log_y=log_y,
                    references=references, flat=flat, x_label=x_label, x_values=x_values)
    if side_panel:
        side_panel(axes[-1])
    figure.tight_layout()
    return figure
