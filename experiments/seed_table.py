"""Adaptation curves of several training seeds side by side, and their mean, as Markdown.

    python experiments/seed_table.py EVAL_DIR [EVAL_DIR ...] [--method maml]
        [--recorded "LABEL:ITERATIONS:STEP0,STEP1,..."]

Each ``EVAL_DIR`` holds the ``curve.json`` of one ``evaluate`` (for instance of runs that differ
only in ``--seed``, all evaluated with the same ``--seed`` so on the same held-out tasks); they
must share the evaluation protocol (``PROTOCOL``: tasks, steps, step sizes, batches). One
row per directory (two of one training seed are refused): the training seed, its
meta-iterations and ``--method``'s mean return after each step; then the mean over the rows
± 1.96 standard errors of the per-seed means (how much the result moves with the training
seed, which one run's interval over tasks does not show; with few seeds narrower than a 95%
interval, for which Student's t takes 4.3 standard errors at 3 seeds and 2.8 at 5), and the
paper's values where ``curve.json`` holds them.
``--recorded`` adds the curve of a run whose evaluation folder is gone (its numbers as
docs/results.md records them, evaluated with the same protocol) as one more row, so that the
mean and interval count it too. docs/results.md's navigation_2d table over five seeds comes
from this script.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from metarl.evaluation import Z_95
from metarl.scripts import read_json

#: What must agree between the evaluations of one table: the held-out tasks and how each step
#: was sampled and taken.
PROTOCOL = ("env", "num_tasks", "seed", "steps", "step_sizes", "episodes_per_task",
            "env_steps_per_task")


def read(folder: Path, method: str) -> dict:
    """The ``curve.json`` of ``folder``; SystemExit with one line if it is missing, is not an
    evaluation's, lacks ``method`` or holds a non-finite mean."""
    path = folder / "curve.json"
    if folder.is_file():
        raise SystemExit(f"error: {folder} is a file; give the folder evaluate wrote")
    if not path.is_file():
        hint = (f" (did you mean {folder / 'evaluation'}?)"
                if (folder / "evaluation" / "curve.json").is_file()
                else " (give the folders evaluate wrote)")
        raise SystemExit(f"error: {path}: no such file{hint}")
    result = read_json(path, "evaluate again")
    if not isinstance(result, dict) or not isinstance(result.get("methods"), dict):
        raise SystemExit(f"error: {path} is not an evaluation's curve (no \"methods\")")
    if method not in result["methods"]:
        raise SystemExit(f"error: {path} has no method {method!r}; methods: "
                         f"{', '.join(sorted(result['methods']))}")
    if not isinstance(result.get("iteration"), int):
        raise SystemExit(f"error: {path} has no meta-iteration (\"iteration\")")
    curve = result["methods"][method].get("mean") if isinstance(
        result["methods"][method], dict) else None
    if not isinstance(curve, list) or not curve:
        raise SystemExit(f"error: {path}: method {method!r} has no mean return per step")
    for step, value in enumerate(curve):
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            raise SystemExit(f"error: {path}: the mean of {method!r} after {step} steps is "
                             f"{value}, not a finite number")
    return result


def recorded(text: str, method: str) -> tuple[str, dict]:
    """``(label, curve.json-like)`` from ``"LABEL:ITERATIONS:STEP0,STEP1,..."``; SystemExit with
    one line naming ``text`` if it does not parse or holds a non-finite return."""
    form = 'give "LABEL:ITERATIONS:STEP0,STEP1,...", e.g. "seed 0:500:-134.5,-75.3"'
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[0].strip():
        raise SystemExit(f"error: --recorded {text!r}: {form}")
    label, iterations, values = parts
    try:
        iteration = int(iterations)
        curve = [float(value) for value in values.split(",")]
    except ValueError:
        raise SystemExit(f"error: --recorded {text!r}: {form}") from None
    if iteration < 0 or not all(math.isfinite(value) for value in curve):
        raise SystemExit(f"error: --recorded {text!r}: iterations must be >= 0 and every "
                         "return finite")
    return label.strip(), {"iteration": iteration, "methods": {method: {"mean": curve}}}


def differences(results: list[dict]) -> list[str]:
    """The ``PROTOCOL`` keys in which the ``curve.json`` contents ``results`` differ, each with
    the values found (none: one table may hold them)."""
    found = []
    for key in PROTOCOL:
        values = {json.dumps(result.get(key)) for result in results}
        if len(values) > 1:
            found.append(f"{key} ({', '.join(sorted(values))})")
    return found


def table(rows: list[tuple[str, dict]], method: str) -> list[str]:
    """Markdown: one row per ``(label, curve.json)``, the mean over them ± 1.96 SE, the paper."""
    steps = min(len(result["methods"][method]["mean"]) for _, result in rows)
    lines = ["| run | iterations | " + " | ".join(f"step {k}" for k in range(steps)) + " |",
             "|---|---|" + "---|" * steps]
    curves = []
    for label, result in rows:
        curve = result["methods"][method]["mean"][:steps]
        curves.append(curve)
        lines.append(f"| {label} | {result['iteration']} | "
                     + " | ".join(f"{v:.2f}" for v in curve) + " |")
    n = len(curves)
    means = [sum(c[k] for c in curves) / n for k in range(steps)]
    cells = []
    for k, mean in enumerate(means):
        if n > 1:
            sd = math.sqrt(sum((c[k] - mean) ** 2 for c in curves) / (n - 1))
            cells.append(f"**{mean:.2f}** ± {Z_95 * sd / math.sqrt(n):.2f}")
        else:
            cells.append(f"**{mean:.2f}**")
    lines.append(f"| mean of {n} | | " + " | ".join(cells) + " |")
    published = next((result["published_maml"] for _, result in rows
                      if result.get("published_maml")), None)
    if published and method == "maml":
        cells = [f"{v:.2f}" for v in published[:steps]]
        lines.append("| paper | | " + " | ".join(cells + [""] * (steps - len(cells))) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="EVAL_DIR")
    parser.add_argument("--method", default="maml")
    parser.add_argument("--recorded", action="append", default=[], metavar="LABEL:ITER:CURVE",
                        help="one more row from numbers recorded elsewhere, e.g. "
                             '"seed 0:500:-134.5,-75.3,-66.5,-63.4" (repeatable)')
    args = parser.parse_args(argv)
    seen: set[Path] = set()
    for folder in args.folders:
        if folder.resolve() in seen:
            raise SystemExit(f"error: {folder} is given twice; each evaluation counts once")
        seen.add(folder.resolve())
    results = [(folder, read(folder, args.method)) for folder in args.folders]
    differ = differences([result for _, result in results])
    if differ:
        raise SystemExit(f"error: these evaluations differ in {'; '.join(differ)}; a mean over "
                         f"seeds needs the same protocol: {', '.join(PROTOCOL)}")
    rows = [recorded(text, args.method) for text in args.recorded]
    rows += [(f"seed {result.get('run_seed', '?')}", result) for _, result in results]
    labels = [label for label, _ in rows if label != "seed ?"]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise SystemExit(f"error: {repeated[0]} comes twice; a mean over seeds needs runs of "
                         "distinct training seeds (--seed), one row each")
    lengths = {len(result["methods"][args.method]["mean"]) for _, result in rows}
    if len(lengths) > 1:
        found = ", ".join(f"{label}: {len(result['methods'][args.method]['mean'])}"
                          for label, result in rows)
        raise SystemExit(f"error: the curves have different numbers of steps ({found}); "
                         "a --recorded curve needs one value per step of the evaluations")
    print("\n".join(table(rows, args.method)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
