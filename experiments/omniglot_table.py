"""The Omniglot table of docs/results.md from the runs of ``reproduce_omniglot.sh``.

    python experiments/omniglot_table.py [OUT]     (OUT: the script's output folder)

For each setting (5way1shot, 5way5shot, 20way1shot) it reads the config and
``evaluation/curve.json`` of the latest run that has an evaluation (a newer run without one, still
training or stopped, is named on standard error) and prints one Markdown row per method:
accuracy ± 95% CI after 0..3 steps, with the run's meta-iterations and meta-batch size. Ways and
shots are those of the evaluation (``curve.json``: ``evaluate --shots 5`` on a 1-shot run is a
5-shot row), or the run's config for files written before ``curve.json`` recorded the ways.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from metarl.config import read_yaml
from metarl.scripts import read_json, run_script

SETTINGS = ("5way1shot", "5way5shot", "20way1shot")
LABELS = {"maml": "MAML (ours)", "classifier": "classifier, head fine-tuned (ours)",
          "classifier_converged": "classifier, head after 100 steps (ours)"}


def evaluated_run(folder: Path) -> Path | None:
    """The latest ``maml__omniglot__*`` run in ``folder`` with an ``evaluation/curve.json``;
    newer runs without one are named on standard error."""
    for run in sorted(folder.glob("maml__omniglot__*"), reverse=True):
        if (run / "evaluation" / "curve.json").is_file():
            return run
        print(f"note: {run} has no evaluation/curve.json (still training, or stopped); the "
              f"table shows an older run of {folder.name} if one has it", file=sys.stderr)
    return None


def read_curve(path: Path) -> dict:
    """The ``curve.json`` ``path``; SystemExit with one line unless it holds the iteration and
    per method finite means and intervals."""
    curve = read_json(path, "evaluate the run again")
    methods = curve.get("methods") if isinstance(curve, dict) else None
    if not isinstance(methods, dict) or not methods or "iteration" not in curve:
        raise SystemExit(f"error: {path} is not an evaluation's curve (no \"methods\" or "
                         "\"iteration\")")
    for method, values in methods.items():
        for key in ("mean", "ci95"):
            series = values.get(key) if isinstance(values, dict) else None
            if not isinstance(series, list):
                raise SystemExit(f"error: {path}: method {method!r} has no {key!r}")
            bad = [v for v in series if not isinstance(v, int | float) or not math.isfinite(v)]
            if bad:
                raise SystemExit(f"error: {path}: the {key!r} of {method!r} holds {bad[0]!r}, "
                                 "not a finite number")
    return curve


def read_config(run: Path) -> dict:
    """The run's ``config.yaml`` (a ConfigError if unreadable); SystemExit if it lacks what the
    table shows."""
    config = read_yaml(run / "config.yaml")
    missing = [key for key in ("meta_batch_size", "ways", "shots") if key not in config]
    if missing:
        raise SystemExit(f"error: {run / 'config.yaml'} has no {', '.join(missing)}; is it a "
                         "maml run's config?")
    return config


def rows(out: Path) -> list[str]:
    lines = ["| setting | method | meta-iterations × tasks | step 0 | step 1 | step 2 | step 3 |",
             "|---|---|---|---|---|---|---|"]
    for setting in SETTINGS:
        run = evaluated_run(out / setting)
        if run is None:
            continue
        curve = read_curve(run / "evaluation" / "curve.json")
        config = read_config(run)
        budget = f"{curve['iteration']} × {config['meta_batch_size']}"
        name = f"{curve.get('ways', config['ways'])}-way {curve.get('shots', config['shots'])}-shot"
        for method, values in curve["methods"].items():
            cells = " | ".join(f"{100 * m:.1f} ± {100 * c:.1f}"
                               for m, c in zip(values["mean"], values["ci95"]))
            lines.append(f"| {name} | {LABELS.get(method, method)} | "
                         f"{budget if method == 'maml' else '—'} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("runs/omniglot"), metavar="OUT",
                        help="the output folder of reproduce_omniglot.sh (default: runs/omniglot)")
    out = parser.parse_args(argv).out
    if not out.is_dir():
        raise SystemExit(f"error: {out}: no such folder")
    lines = rows(out)
    if len(lines) == 2:
        print(f"error: no evaluated runs under {out}/{{{','.join(SETTINGS)}}}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
