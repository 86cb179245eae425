"""The command line: ``python -m metarl.run ALGO [--task NAME | --env NAME] [options]``.

Algorithms:

* ``maml``: supervised MAML (``--task sine``);
* ``evaluate``: the adaptation curve of a finished run (``--run DIR`` or ``--checkpoint FILE``).

Every option is also a YAML key (``--config FILE``); see ``experiments/``. This module only
parses, dispatches and reports errors: bad input exits with status 2 and one line on stderr
naming the bad value and the valid choices, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from metarl.config import (
    ConfigError,
    add_flags,
    explicit_flags,
    read_yaml,
    resolve,
    to_dict,
)
from metarl.runs import CHECKPOINT_NAME, CONFIG_NAME, CheckpointError, new_run_dir

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input; reported as one line with exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) through UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# --- supervised MAML -------------------------------------------------------------------------

def supervised_tasks() -> dict[str, tuple[type, Callable[[Any], Any]]]:
    """Task name -> (config class, problem builder). Imported lazily: torch loads on use."""
    from metarl.supervised import sine

    return {"sine": (sine.SineConfig, sine.build_problem)}


def run_maml(argv: Sequence[str]) -> int:
    pre = Parser(add_help=False)
    pre.add_argument("--task", default=None)
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)

    saved = None
    if known.resume is not None:
        saved = _read_run_config(Path(known.resume), expected_algo="maml")
    tasks = supervised_tasks()
    task = known.task or (saved or {}).get("task", "sine")
    if task not in tasks:
        raise ConfigError(f"task={task!r} is not valid; choose from: {', '.join(tasks)}")
    if saved is not None and saved.get("task") != task:
        raise ConfigError(f"--task {task} does not match the resumed run's task {saved['task']!r}")
    config_cls, build_problem = tasks[task]

    parser = Parser(prog="python -m metarl.run maml",
                    description=f"Supervised MAML on {task} (spec.md section 4).")
    parser.add_argument("--config", help="YAML file of options (flags override it)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in DIR")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_flags(parser, config_cls)
    args = parser.parse_args(argv)
    config = resolve(config_cls, algo="maml", task=task, config_file=args.config,
                     flags=explicit_flags(args, config_cls), base=saved)

    from metarl.supervised.trainer import MetaLearner, train

    learner = MetaLearner(build_problem(config), config)
    if args.resume is not None:
        run_dir = Path(args.resume)
        from metarl.runs import load_checkpoint

        learner.load(load_checkpoint(run_dir / CHECKPOINT_NAME), source=str(run_dir))
    else:
        run_dir = new_run_dir(config.output_dir, "maml", task, config.seed)
    _write_run_config(run_dir, "maml", config)
    print(f"run directory: {run_dir}", file=sys.stderr)
    last = train(learner, run_dir, progress=not args.no_progress)
    summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.items()) if k.startswith(
        ("train/", "adaptation/")))
    print(f"done: {learner.iteration} iterations; {summary}")
    print(f"run directory: {run_dir}")
    return 0


# --- evaluate --------------------------------------------------------------------------------

def run_evaluate(argv: Sequence[str]) -> int:
    parser = Parser(prog="python -m metarl.run evaluate",
                    description="Adaptation curve of a trained run on held-out tasks.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR", help="run directory (uses its checkpoint.pt)")
    source.add_argument("--checkpoint", metavar="FILE", help="a checkpoint file")
    parser.add_argument("--num-tasks", type=int, default=600, help="held-out tasks (default 600)")
    parser.add_argument("--steps", type=int, default=10, help="adaptation steps K (default 10)")
    parser.add_argument("--shots", type=int, default=None,
                        help="support examples per task (default: the run's)")
    parser.add_argument("--baseline-iterations", type=int, default=10000,
                        help="training iterations of the pretrained baseline (default 10000)")
    parser.add_argument("--no-baselines", action="store_true", help="only the meta-learned model")
    parser.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the run's)")
    parser.add_argument("--output", metavar="DIR",
                        help="where to write results (default: RUN/evaluation)")
    args = parser.parse_args(argv)
    for name in ("num_tasks", "steps", "baseline_iterations", "shots"):
        value = getattr(args, name)
        minimum = 0 if name in ("steps", "baseline_iterations") else 2 if name == "num_tasks" else 1
        if value is not None and value < minimum:
            raise ConfigError(f"--{name.replace('_', '-')}={value} must be >= {minimum}")

    if args.run is not None:
        run_dir = Path(args.run)
        checkpoint = run_dir / CHECKPOINT_NAME
    else:
        checkpoint = Path(args.checkpoint)
        run_dir = checkpoint.parent
    from metarl.runs import load_checkpoint

    state = load_checkpoint(checkpoint)
    saved = dict(state.get("config") or {})
    if not saved:
        raise CheckpointError(f"checkpoint {checkpoint} holds no config; is it a metarl checkpoint?")
    task = saved.get("task")
    tasks = supervised_tasks()
    if task not in tasks:
        raise CheckpointError(f"checkpoint {checkpoint} is for task {task!r}; "
                              f"evaluate knows: {', '.join(tasks)}")
    config_cls, build_problem = tasks[task]
    from metarl.config import from_mapping, validate

    config = from_mapping(config_cls, saved, source=str(checkpoint))
    validate(config)

    from metarl.supervised.evaluate import EvalOptions, evaluate_supervised
    from metarl.supervised.trainer import MetaLearner

    learner = MetaLearner(build_problem(config), config)
    learner.load(state, source=str(checkpoint))
    options = EvalOptions(num_tasks=args.num_tasks, steps=args.steps, shots=args.shots,
                          baseline_iterations=args.baseline_iterations,
                          baselines=not args.no_baselines, seed=args.seed)
    out_dir = Path(args.output) if args.output else run_dir / "evaluation"
    result = evaluate_supervised(learner, out_dir, options, build_problem)
    print(result["table"])
    print(f"wrote {out_dir / 'curve.json'}, curve.csv and curve.png")
    return 0


# --- dispatch --------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "maml": run_maml,
    "evaluate": run_evaluate,
}


def _read_run_config(run_dir: Path, *, expected_algo: str) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run directory")
    saved = read_yaml(run_dir / CONFIG_NAME)
    algo = saved.pop("algo", expected_algo)
    if algo != expected_algo:
        raise ConfigError(f"--resume {run_dir} is a {algo!r} run, not {expected_algo!r}")
    return saved


def _write_run_config(run_dir: Path, algo: str, config: Any) -> None:
    import yaml

    from metarl.runs import atomic_write_bytes

    text = yaml.safe_dump({"algo": algo, **to_dict(config)}, sort_keys=False)
    atomic_write_bytes(run_dir / CONFIG_NAME, lambda handle: handle.write(text.encode()))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = f"usage: python -m metarl.run {{{','.join(COMMANDS)}}} [options]  (--help for each)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\n" + usage)
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    try:
        if command not in COMMANDS:
            raise UsageError(f"unknown algorithm {command!r}; choose from: {', '.join(COMMANDS)}")
        return COMMANDS[command](rest)
    except (UsageError, ConfigError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

