"""Training curves of several runs side by side: a logged scalar averaged over blocks, as Markdown.

    python experiments/training_blocks.py RUN_DIR [RUN_DIR ...] [--tag returns/step_1]
        [--block 20] [--by iterations|episodes] [--digits 1]

Reads each run's TensorBoard scalars (a resumed run's later writes replace what it logged
after its last checkpoint) and prints one row per block of ``--block`` meta-iterations, one
column per run: the mean of ``--tag`` over the block's iterations. ``returns/step_1`` is the
mean training return after the adaptation step, ``returns/step_0`` before it; any tag the run
logged works (``policy/std``, ``episodes/length_step_1``, ...).

``--by episodes`` lines the runs up by the episodes they sampled instead: a block is as many
episodes as ``--block`` iterations of the first run sample (meta_batch_size x
fast_batch_size x (num_steps + 1), from each run's ``config.yaml``), so a run that samples
twice the episodes per iteration fills a block in half the iterations. A block a run has not
finished shows how many of its iterations it holds, e.g. ``153.2 (7)``.

docs/results.md quotes these block means for the ant_dir runs.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from metarl.config import read_yaml
from metarl.scalars import MissingScalarError, logged_scalar, logged_scalars
from metarl.scripts import run_script

#: The options of config.yaml that set the episodes one meta-iteration samples.
EPISODE_OPTIONS = ("meta_batch_size", "fast_batch_size", "num_steps")


def episodes_per_iteration(run_dir: Path) -> int:
    """meta_batch_size x fast_batch_size x (num_steps + 1) from ``run_dir``'s config.yaml;
    ConfigError (one line at the command line) if the file is missing or malformed."""
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise SystemExit(f"error: {run_dir}: no config.yaml (is it a run directory?)")
    config = read_yaml(config_path)
    values = {}
    for name in EPISODE_OPTIONS:
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (name != "num_steps"):
            raise SystemExit(f"error: {config_path}: {name}={value!r}; --by episodes needs "
                             f"{', '.join(EPISODE_OPTIONS)} as ints (>= 1, num_steps >= 0)")
        values[name] = value
    return values["meta_batch_size"] * values["fast_batch_size"] * (values["num_steps"] + 1)


def check_run_dir(run: Path) -> None:
    """SystemExit with one line unless ``run`` is a folder with a TensorBoard events file."""
    if run.is_file():
        raise SystemExit(f"error: {run} is a file, not a run directory")
    if not run.is_dir():
        raise SystemExit(f"error: {run}: no such run directory")
    if not any(run.glob("events.out.tfevents.*")):
        inside = sorted(p.name for p in run.iterdir() if any(p.glob("events.out.tfevents.*")))
        hint = (f"; it holds the run{'s' if len(inside) > 1 else ''} {', '.join(inside[:3])}"
                if inside else "")
        raise SystemExit(f"error: {run} has no TensorBoard events file (is it a run "
                         f"directory?){hint}")


def blocks(values: dict[int, float], iterations_per_block: float) -> dict[int, list[float]]:
    """``{block index: values}`` with iteration i (1-based) in block (i - 1) // size."""
    grouped: dict[int, list[float]] = {}
    for step, value in values.items():
        grouped.setdefault(math.floor((step - 1) / iterations_per_block + 1e-9), []).append(value)
    return grouped


def table(run_dirs: list[Path], tag: str, block: int, by: str, digits: int = 1) -> list[str]:
    sizes = [float(block)] * len(run_dirs)
    per_block = 0.0  # thousands of episodes per block, --by episodes
    if by == "episodes":
        per_iteration = [episodes_per_iteration(run) for run in run_dirs]
        sizes = [block * per_iteration[0] / count for count in per_iteration]
        per_block = block * per_iteration[0] / 1000
    columns = []
    for run, size in zip(run_dirs, sizes):
        try:
            values = logged_scalar(run, tag)
        except MissingScalarError as error:
            empty = " (its events files are empty or unreadable)" if not logged_scalars(run) else ""
            raise SystemExit(f"error: {error}{empty}") from None
        for step, value in values.items():
            if not math.isfinite(value):
                raise SystemExit(f"error: {run}: {tag} is {value} at iteration {step}")
        columns.append((blocks(values, size), size))
    last = max((max(grouped, default=-1) for grouped, _ in columns), default=-1)
    unit = "iterations" if by == "iterations" else "episodes (thousands)"
    lines = [f"| {unit} | " + " | ".join(f"run {i + 1}" for i in range(len(run_dirs))) + " |",
             "|---" * (len(run_dirs) + 1) + "|"]
    for index in range(last + 1):
        cells = []
        for grouped, size in columns:
            values = grouped.get(index, [])
            full = round(size * (index + 1)) - round(size * index)
            cell = f"{sum(values) / len(values):.{digits}f}" if values else ""
            cells.append(cell + (f" ({len(values)})" if values and len(values) < full else ""))
        label = (f"{index * block + 1}-{(index + 1) * block}" if by == "iterations"
                 else f"{index * per_block:g}-{(index + 1) * per_block:g}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.extend(f"run {i + 1}: {run} ({size:g} iterations per block)"
                 for i, (run, size) in enumerate(zip(run_dirs, sizes)))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--tag", default="returns/step_1")
    parser.add_argument("--block", type=int, default=20, help="meta-iterations per block")
    parser.add_argument("--by", choices=("iterations", "episodes"), default="iterations")
    parser.add_argument("--digits", type=int, default=1, help="decimals of each mean")
    args = parser.parse_args(argv)
    if args.block < 1:
        parser.error(f"--block {args.block}: must be >= 1")
    if not 0 <= args.digits <= 12:
        parser.error(f"--digits {args.digits}: must be in 0..12")
    for run in args.runs:
        check_run_dir(run)
    print("\n".join(table(args.runs, args.tag, args.block, args.by, args.digits)))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
