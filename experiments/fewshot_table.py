"""The few-shot comparison table of the README and docs/results.md, from the runs of
``reproduce_fewshot.sh``.

    python experiments/fewshot_table.py [OUT]     (OUT: the script's output folder)

For each setting (``OUT/5way1shot``, ``OUT/5way5shot``, ``OUT/20way1shot``: folders of
``experiments/grid.py``, or several grids' folders whose names start so) it reads
``grid_results.json`` and prints one Markdown row per method:
its held-out accuracy ± 95% CI over 1000 episodes in each setting (for a gradient-based method
the last adaptation step the evaluation took, as the papers report), the published number on
the full Omniglot beside it, and the run's training time on this machine (from its TensorBoard
``time/iteration_s``, summed; a dash where the run directory is not on this machine, as for runs
trained on other Ray nodes). A setting without a finished run of a method is a dash.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from metarl.scalars import training_seconds
from metarl.scripts import read_json, run_script

SETTINGS = ("5way1shot", "5way5shot", "20way1shot")
#: The methods in the table's order, with their family.
METHODS = {"maml": "optimization", "fomaml": "optimization", "reptile": "optimization",
           "anil": "optimization", "protonet": "metric", "matching": "metric",
           "relation": "metric", "siamese": "metric", "mann": "black-box"}
#: Published accuracies on the full Omniglot (5-way 1-shot, 5-way 5-shot, 20-way 1-shot), in
#: percent: the MAML paper's table for MAML, first-order MAML and MANN (82.8 and 94.9 are
#: MANN's 5-way accuracies at the second and fifth presentation of a class), each method's own
#: paper otherwise (Reptile: transductive). ANIL's paper reports no 5-way Omniglot number.
PUBLISHED = {"maml": (98.7, 99.9, 95.8), "fomaml": (98.3, 99.2, 89.4),
             "reptile": (97.7, 99.5, 89.4), "anil": (None, None, 96.2),
             "protonet": (98.8, 99.7, 96.0), "matching": (98.1, 98.9, 93.8),
             "relation": (99.6, 99.8, 97.6), "siamese": (97.3, 98.4, 88.2),
             "mann": (82.8, 94.9, None)}


def results(out: Path) -> dict[tuple[str, str], dict]:
    """(setting, method) -> the grid's record of its finished run."""
    found = {}
    for setting in SETTINGS:
        for path in sorted(out.glob(f"{setting}*/grid_results.json")):  # one grid or several
            for record in read_records(path):
                if "curve" in record:
                    check_finished(path, record)
                    found[setting, record["name"].split("__")[0]] = record
    return found


def read_records(path: Path) -> list[dict]:
    """The run records of the grid_results.json ``path``; SystemExit with one line if it is not
    a list of records with a name."""
    records = read_json(path, "run the grid again to rewrite it")
    if not isinstance(records, list):
        raise SystemExit(f"error: {path} holds a {type(records).__name__}, not the list of run "
                         "records experiments/grid.py writes")
    for index, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            raise SystemExit(f"error: {path}: record {index} has no \"name\"; it is not a run "
                             "record of experiments/grid.py")
    return records


def check_finished(path: Path, record: dict) -> None:
    """SystemExit naming ``path`` and the run unless ``record`` has what the table shows: a
    curve with its iteration and a finite last mean and interval, and the run's options."""
    where = f"{path}: run {record['name']}"
    curve, options = record["curve"], record.get("options")
    methods = curve.get("methods") if isinstance(curve, dict) else None
    if not isinstance(methods, dict) or not methods or "iteration" not in curve:
        raise SystemExit(f"error: {where}: its curve has no \"methods\" or \"iteration\"")
    if not isinstance(options, dict) or not {"meta_batch_size", "output_dir"} <= set(options):
        raise SystemExit(f"error: {where}: no \"options\" with meta_batch_size and output_dir")
    for key in ("mean", "ci95"):
        values = next(iter(methods.values())).get(key)
        if not isinstance(values, list) or not values:
            raise SystemExit(f"error: {where}: its curve has no {key!r}")
        if not isinstance(values[-1], int | float) or not math.isfinite(values[-1]):
            raise SystemExit(f"error: {where}: the curve's last {key!r} is {values[-1]!r}, not "
                             "a finite number")


def training_hours(run_dir: Path) -> float | None:
    """The run's summed ``time/iteration_s`` from its TensorBoard events, in hours; None if the
    run directory is not on this machine (trained on another node) or logged none."""
    if not run_dir.is_dir():
        return None
    total = training_seconds(run_dir)
    return total / 3600 if total else None


def cell(record: dict | None, published: float | None) -> str:
    paper = "—" if published is None else f"{published:.1f}"
    if record is None:
        return f"— ({paper})"
    curve = record["curve"]
    method = next(iter(curve["methods"]))
    mean, ci = curve["methods"][method]["mean"][-1], curve["methods"][method]["ci95"][-1]
    return f"**{100 * mean:.1f}** ± {100 * ci:.1f} ({paper})"


def table(out: Path) -> list[str]:
    found = results(out)
    lines = ["| method | family | 5-way 1-shot | 5-way 5-shot | 20-way 1-shot | iterations × "
             "episodes | training time |", "|---|---|---|---|---|---|---|"]
    for method, family in METHODS.items():
        records = [found.get((setting, method)) for setting in SETTINGS]
        if not any(records):
            continue
        budgets, hours = [], []
        for record in records:
            if record is None:
                budgets.append("—")
                hours.append("—")
                continue
            options = record["options"]
            budgets.append(f"{record['curve']['iteration']} × {options['meta_batch_size']}")
            spent = training_hours(Path(record["options"]["output_dir"]) / record["name"])
            hours.append("—" if spent is None else f"{spent:.2f} h")
        cells = " | ".join(cell(r, p) for r, p in zip(records, PUBLISHED[method]))
        lines.append(f"| {method} | {family} | {cells} | {' / '.join(budgets)} | "
                     f"{' / '.join(hours)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("runs/fewshot"),
                        metavar="OUT",
                        help="the output folder of reproduce_fewshot.sh (default: runs/fewshot)")
    out = parser.parse_args(argv).out
    if not out.is_dir():
        raise SystemExit(f"error: {out}: no such folder")
    lines = table(out)
    if len(lines) == 2:
        print(f"error: no finished runs under {out}/{{{','.join(SETTINGS)}}}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    print("\nours: held-out accuracy (%) on the small Omniglot subsets ± 95% CI over 1000 "
          "episodes (a gradient-based method after its evaluation's last step); in brackets, "
          "the published number on the full Omniglot")
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
