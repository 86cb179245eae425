"""Adaptation curves of several training seeds side by side, and their mean, as Markdown.

    python experiments/seed_table.py EVAL_DIR [EVAL_DIR ...] [--method maml]

Each ``EVAL_DIR`` holds the ``curve.json`` of one ``evaluate`` (for instance of runs that differ
only in ``--seed``, all evaluated with the same ``--seed`` so on the same held-out tasks); they
must share the evaluation protocol (``PROTOCOL``: tasks, steps, step sizes, batches). One
row per directory: the training seed, its meta-iterations and ``--method``'s mean return after
each step; then the mean over the rows with a 95% interval over seeds (1.96 standard errors of
the per-seed means: how much the result moves with the training seed, which one run's interval
over tasks does not show), and the paper's values where ``curve.json`` holds them.
docs/results.md's navigation_2d table over five seeds comes from this script.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from metarl.evaluation import Z_95

#: What must agree between the evaluations of one table: the held-out tasks and how each step
#: was sampled and taken.
PROTOCOL = ("env", "num_tasks", "seed", "steps", "step_sizes", "episodes_per_task",
            "env_steps_per_task")


def read(folder: Path, method: str) -> dict:
    """The ``curve.json`` of ``folder``; SystemExit with one line if it is missing or lacks
    ``method``."""
    path = folder / "curve.json"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file (give the folders evaluate wrote)")
    result = json.loads(path.read_text())
    if method not in result["methods"]:
        raise SystemExit(f"error: {path} has no method {method!r}; methods: "
                         f"{', '.join(sorted(result['methods']))}")
    return result


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
    published = rows[0][1].get("published_maml")
    if published and method == "maml":
        cells = [f"{v:.2f}" for v in published[:steps]]
        lines.append("| paper | | " + " | ".join(cells + [""] * (steps - len(cells))) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="EVAL_DIR")
    parser.add_argument("--method", default="maml")
    args = parser.parse_args(argv)
    results = [(folder, read(folder, args.method)) for folder in args.folders]
    differ = differences([result for _, result in results])
    if differ:
        raise SystemExit(f"error: these evaluations differ in {'; '.join(differ)}; a mean over "
                         f"seeds needs the same protocol: {', '.join(PROTOCOL)}")
    rows = [(f"seed {result.get('run_seed', '?')}", result) for _, result in results]
    print("\n".join(table(rows, args.method)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
