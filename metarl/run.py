"""The command line: ``python -m metarl.run ALGO [--task NAME | --env NAME] [options]``.

Algorithms:

* ``maml``: supervised MAML (``--task sine`` or ``--task omniglot --data-dir PATH``);
* ``maml_trpo``: meta-RL with MAML-TRPO (``--env navigation_2d``, ``cheetah_vel``, ...);
* ``evaluate``: the adaptation curve of a finished run (``--run DIR`` or ``--checkpoint FILE``).

Every option is also a YAML key (``--config FILE``; flags override the file); see
``experiments/``. The task or env, which picks the shipped defaults, comes from ``--task`` /
``--env``, else the ``--config`` file, else the resumed run. ``--resume DIR`` continues a run
exactly as it started: it may change only the settings in ``RESUME_MAY_CHANGE`` (the budget,
checkpointing, logging and machine resources). This module only parses, dispatches and reports
errors: bad input exits with status 2 and one line on stderr naming the bad value and the valid
choices, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from metarl import help_pages
from metarl.config import (
    ConfigError,
    add_flags,
    coerce,
    default_texts,
    explicit_flags,
    flag_name,
    read_yaml,
    resolve,
    shipped_defaults,
    to_dict,
)
from metarl.runs import CHECKPOINT_NAME, CONFIG_NAME, CheckpointError, new_run_dir

EXIT_USAGE = 2
EXIT_DIVERGED = 1  # a value became non-finite: training stopped, its last checkpoint intact
EXIT_INTERRUPTED = 130

#: The settings a resumed run may change: none alters what the run computes (RL episodes are
#: identical for any number of workers; the supervised held-out curves draw from their own
#: generator). Any other change is refused, since a resume must continue exactly like the
#: uninterrupted run (and the restored optimiser state would ignore a new ``meta_lr``).
RESUME_MAY_CHANGE = {
    "maml": ("num_batches", "checkpoint_every", "eval_every", "eval_tasks", "eval_steps",
             "output_dir", "data_dir", "cache_dir", "download"),
    "maml_trpo": ("num_batches", "checkpoint_every", "num_workers", "torch_threads",
                  "output_dir"),
}


class UsageError(Exception):
    """Bad command-line input; reported as one line with exit status 2."""


class Interrupted(Exception):
    """Ctrl-C during training; the message says whether a checkpoint is there to resume."""


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) through UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# --- training commands -----------------------------------------------------------------------

def supervised_tasks() -> dict[str, tuple[type, Callable[[Any], Any]]]:
    """Task name -> (config class, problem builder). Imported lazily: torch loads on use."""
    from metarl.supervised import omniglot_problem, sine

    return {"sine": (sine.SineConfig, sine.build_problem),
            "omniglot": (omniglot_problem.OmniglotConfig, omniglot_problem.build_problem)}


def run_maml(argv: Sequence[str]) -> int:
    """``maml --task NAME``: supervised MAML."""
    if _wants_help(argv):
        _maml_help().print_help()
        return 0
    task, saved = _pre_parse(argv, "task", "maml", default="sine")
    tasks = supervised_tasks()
    if task not in tasks:
        raise ConfigError(f"task={task!r} is not valid; choose from: {', '.join(tasks)}")
    config_cls, build_problem = tasks[task]
    args, config = _parse_config(argv, "maml", task, config_cls, saved, help_pages.MAML_HELP)

    from metarl.supervised.trainer import MetaLearner, train

    learner = MetaLearner(build_problem(config), config)
    run_dir = _run_dir(args, "maml", task, config, learner.load)
    with _report_interrupt(run_dir):
        last = train(learner, run_dir, progress=not args.no_progress)
    _report(run_dir, learner.iteration, last, ("train/", "adaptation/"))
    return 0


def run_maml_trpo(argv: Sequence[str]) -> int:
    """``maml_trpo --env NAME``: meta-RL with MAML-TRPO."""
    env, saved = _pre_parse(argv, "env", "maml_trpo", default="navigation_2d")
    from metarl import envs
    from metarl.envs.oracle import ORACLE_SUFFIX

    envs.registry.resolve(env)  # an unknown name fails here, listing the known ones
    from metarl.rl.config import MAMLTRPOConfig

    # ENV+oracle (the policy also observes the task) starts from ENV's shipped defaults
    args, config = _parse_config(argv, "maml_trpo", env.removesuffix(ORACLE_SUFFIX),
                                 MAMLTRPOConfig, saved, help_pages.MAML_TRPO_HELP)
    from metarl.rl.trainer import MetaRLTrainer, train

    with MetaRLTrainer(config) as trainer:
        run_dir = _run_dir(args, "maml_trpo", config.task, config, trainer.load)
        with _report_interrupt(run_dir):
            last = train(trainer, run_dir, progress=not args.no_progress)
    _report(run_dir, trainer.iteration, last, ("returns/",))
    return 0


def _pre_parse(argv: Sequence[str], key: str, algo: str, *,
               default: str) -> tuple[str, dict[str, Any] | None]:
    """The task or env (``key``), which picks the config class and the shipped defaults, and,
    with ``--resume DIR``, the saved run config.

    The name comes from the ``--task``/``--env`` flag, else the ``--config`` file, else the
    resumed run, else ``default``; a flag overrides the file, as every flag does.
    """
    pre = Parser(add_help=False)
    pre.add_argument(flag_name(key), dest="value", default=None)
    pre.add_argument("--config", default=None)
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)
    saved = None
    if known.resume is not None:
        saved = _read_run_config(Path(known.resume), expected_algo=algo)
    in_file = read_yaml(known.config) if known.config is not None else {}
    if known.value is not None:
        name, source = known.value, flag_name(key)
    elif key in in_file:
        name, source = coerce(key, in_file[key], str), known.config
    elif saved is not None and key in saved:
        return str(saved[key]), saved
    else:
        name, source = default, "the default"
    if saved is not None and saved.get(key) != name:
        raise ConfigError(f"{key}={name!r} (from {source}) does not match the resumed run's "
                          f"{key}={saved.get(key)!r}; a run resumes with its own {key}")
    return name, saved


def _parse_config(argv, algo, task, config_cls, saved, description):
    selector = "env" if algo == "maml_trpo" else "task"
    defaults = shipped_defaults(config_cls, algo, task)
    parser = _command_parser(algo, description + help_pages.defaults_note(algo, selector, task))
    _add_run_flags(parser, algo, selector)
    add_flags(parser, config_cls, shown_defaults=default_texts(defaults))
    args = parser.parse_args(argv)
    config = resolve(config_cls, algo=algo, task=task, config_file=args.config,
                     flags=explicit_flags(args, config_cls), base=saved,
                     may_change=RESUME_MAY_CHANGE[algo])
    return args, config


# --- help pages ------------------------------------------------------------------------------


def _wants_help(argv: Sequence[str]) -> bool:
    return "-h" in argv or "--help" in argv


def _command_parser(algo: str, description: str) -> Parser:
    """A command's parser, its page headed by ``description`` and ending with examples."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in help_pages.EXAMPLES[algo])
    return Parser(prog=f"python -m metarl.run {algo}", description=description, epilog=epilog,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_run_flags(parser: Parser, algo: str, selector: str) -> None:
    """The options of a training command that are not config fields."""
    parser.add_argument("--config", metavar="FILE",
                        help=f"YAML file of options; flags override it (--{selector} too, which "
                             f"picks the shipped defaults: flag, else the file's {selector}: "
                             f"key, else the resumed run's) (default: none)")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the run in DIR exactly as it started; only "
                             f"{', '.join(RESUME_MAY_CHANGE[algo])} may change "
                             f"(default: start a new run)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (default: shown)")


def _maml_help() -> Parser:
    """The page of ``maml --help``: the options of every task, each with its default per task."""
    tasks = supervised_tasks()
    parser = _command_parser("maml", help_pages.MAML_HELP + help_pages.wrap(
        "Defaults: built-in values overlaid with experiments/maml/TASK.yaml (the paper's "
        "settings). A --config FILE overrides them, and flags override the file."))
    _add_run_flags(parser, "maml", "task")
    defaults = {name: default_texts(shipped_defaults(cls, "maml", name))
                for name, (cls, _) in tasks.items()}
    fields = {name: set(texts) for name, texts in defaults.items()}
    common = set.intersection(*fields.values())
    shown = {}
    for field in common:
        values = {name: texts[field] for name, texts in defaults.items()}
        shown[field] = (next(iter(values.values())) if len(set(values.values())) == 1 else
                        ", ".join(f"{value} for {name}" for name, value in values.items()))
    shown["task"] = "sine"
    first, *_ = tasks.values()
    add_flags(parser.add_argument_group("options of every task"), first[0],
              skip=tuple(fields[next(iter(tasks))] - common), shown_defaults=shown)
    for name, (cls, _) in tasks.items():
        add_flags(parser.add_argument_group(f"{name} only"), cls, skip=tuple(common),
                  shown_defaults=defaults[name])
    return parser


def _run_dir(args, algo: str, task: str, config: Any, load: Callable[..., None]) -> Path:
    """The resumed run's directory (its checkpoint loaded) or a new one; writes config.yaml."""
    if args.resume is not None:
        from metarl.runs import load_checkpoint

        run_dir = Path(args.resume)
        load(load_checkpoint(run_dir / CHECKPOINT_NAME), source=str(run_dir))
    else:
        run_dir = new_run_dir(config.output_dir, algo, task, config.seed)
    _write_run_config(run_dir, algo, config)
    print(f"run directory: {run_dir}", file=sys.stderr)
    return run_dir


@contextlib.contextmanager
def _report_interrupt(run_dir: Path) -> Iterator[None]:
    """Turn Ctrl-C into Interrupted, saying whether ``run_dir`` holds a checkpoint to resume
    (checkpoints are written atomically, so one that exists is intact)."""
    try:
        yield
    except KeyboardInterrupt:
        if (run_dir / CHECKPOINT_NAME).is_file():
            raise Interrupted(f"interrupted; the last checkpoint is intact: continue with "
                              f"--resume {run_dir}") from None
        raise Interrupted(f"interrupted; no checkpoint was written yet in {run_dir}, so there "
                          f"is nothing to resume") from None


def _report(run_dir: Path, iterations: int, last: dict[str, float], prefixes) -> None:
    summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.items()) if k.startswith(prefixes))
    print(f"done: {iterations} iterations; {summary}")
    print(f"run directory: {run_dir}")


# --- evaluate --------------------------------------------------------------------------------

def run_evaluate(argv: Sequence[str]) -> int:
    parser = _command_parser("evaluate", help_pages.EVALUATE_HELP)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR",
                        help="run directory, evaluated at its checkpoint.pt (required, or "
                             "--checkpoint)")
    source.add_argument("--checkpoint", metavar="FILE",
                        help="a checkpoint file (required, or --run)")
    parser.add_argument("--num-tasks", type=int, default=None, metavar="N",
                        help="held-out tasks (default: 600 sine, 1000 Omniglot, 40 RL)")
    parser.add_argument("--steps", type=int, default=None, metavar="K",
                        help="adaptation steps K (default: 10 sine; Omniglot: the run's "
                             "eval_steps, 3 in the paper's setting; RL: 4 navigation, 3 "
                             "otherwise)")
    parser.add_argument("--shots", type=int, default=None, metavar="K",
                        help="supervised: support examples per task (default: the run's)")
    parser.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=None,
                        help="add the paper's baselines: a model pretrained on all tasks and "
                             "fine-tuned the same way (Omniglot: a classifier of the training "
                             "classes), an oracle given the task (sine, RL) and a random "
                             "initialisation (RL) (default: on for supervised runs, off for RL)")
    parser.add_argument("--baseline-iterations", type=int, default=None, metavar="N",
                        help="training iterations of the pretrained baseline and the RL oracle "
                             "(default: 10000 supervised; RL: the run's num_batches)")
    parser.add_argument("--episodes-per-task", type=int, default=None, metavar="N",
                        help="RL: episodes sampled per task and step (default: the run's "
                             "fast_batch_size; the paper's test batches were 4000 env steps)")
    parser.add_argument("--env-steps-per-task", type=int, default=None, metavar="N",
                        help="RL: instead of a number of episodes, batches of N env steps per "
                             "task drawn as the paper's rllab sampler drew them (N / horizon "
                             "episodes side by side, back to back, completed ones kept; the "
                             "paper's: 4000). Where episodes end early this holds more, and "
                             "more of the short, episodes (default: off, --episodes-per-task)")
    parser.add_argument("--later-lr-scale", type=float, default=None, metavar="X",
                        help="step size of steps 2.. as a fraction of fast_lr (default: the "
                             "paper's, 0.5 for RL and 1 for supervised runs)")
    parser.add_argument("--pretrained", metavar="DIR",
                        help="RL: an existing multi-task TRPO run (num_steps: 0) as the "
                             "pretrained baseline (default: --baselines trains one, kept in "
                             "OUTPUT/pretrained)")
    parser.add_argument("--oracle", metavar="DIR",
                        help="RL: an existing multi-task TRPO run on ENV+oracle (the policy "
                             "observes the task) as the oracle baseline (default: --baselines "
                             "trains one, kept in OUTPUT/oracle)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="evaluation seed; held-out tasks are drawn apart from training's "
                             "(default: the run's)")
    parser.add_argument("--output", metavar="DIR",
                        help="where to write results (default: RUN/evaluation)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide progress bars (default: shown)")
    args = parser.parse_args(argv)
    for name, minimum in (("num_tasks", 2), ("steps", 0), ("baseline_iterations", 0),
                          ("shots", 1), ("episodes_per_task", 1), ("env_steps_per_task", 1),
                          ("seed", 0)):
        value = getattr(args, name)
        if value is not None and value < minimum:
            raise ConfigError(f"--{name.replace('_', '-')}={value} must be >= {minimum}")
    if args.later_lr_scale is not None and not 0 < args.later_lr_scale < math.inf:
        raise ConfigError(f"--later-lr-scale={args.later_lr_scale} must be a number > 0")

    checkpoint = Path(args.checkpoint) if args.checkpoint else Path(args.run) / CHECKPOINT_NAME
    run_dir = checkpoint.parent
    from metarl.runs import load_checkpoint

    state = load_checkpoint(checkpoint)
    saved = dict(state.get("config") or {})
    if not saved:
        raise CheckpointError(f"checkpoint {checkpoint} holds no config; is it a metarl checkpoint?")
    out_dir = Path(args.output) if args.output else run_dir / "evaluation"
    if state.get("algo") == "maml_trpo":
        result = _evaluate_rl(args, state, saved, checkpoint, out_dir)
    else:
        result = _evaluate_supervised(args, state, saved, checkpoint, out_dir)
    print(result["table"])
    print(f"wrote {out_dir / 'curve.json'}, curve.csv, per_task.csv and curve.png")
    return 0


def _evaluate_supervised(args, state, saved, checkpoint: Path, out_dir: Path) -> dict[str, Any]:
    from metarl.config import from_mapping, validate

    rl_only = [flag for flag, value in (("--episodes-per-task", args.episodes_per_task),
                                        ("--env-steps-per-task", args.env_steps_per_task),
                                        ("--pretrained", args.pretrained),
                                        ("--oracle", args.oracle)) if value is not None]
    if rl_only:
        raise ConfigError(f"{', '.join(rl_only)}: only for MAML-TRPO runs; {checkpoint} is a "
                          f"supervised {saved.get('task')!r} run")
    task = saved.get("task")
    tasks = supervised_tasks()
    if task not in tasks:
        raise CheckpointError(f"checkpoint {checkpoint} is for task {task!r}; "
                              f"evaluate knows: {', '.join(tasks)}")
    config_cls, build_problem = tasks[task]
    config = from_mapping(config_cls, saved, source=str(checkpoint))
    validate(config)

    from metarl.supervised.evaluate import EvalOptions, evaluate_supervised
    from metarl.supervised.trainer import MetaLearner

    learner = MetaLearner(build_problem(config), config)
    learner.load(state, source=str(checkpoint))
    default_tasks, default_steps = (1000, config.eval_steps) if task == "omniglot" else (600, 10)
    options = EvalOptions(num_tasks=args.num_tasks or default_tasks,
                          steps=default_steps if args.steps is None else args.steps,
                          shots=args.shots,
                          baseline_iterations=10000 if args.baseline_iterations is None
                          else args.baseline_iterations,
                          baselines=args.baselines is not False, seed=args.seed,
                          later_lr_scale=1.0 if args.later_lr_scale is None
                          else args.later_lr_scale)
    return evaluate_supervised(learner, out_dir, options, build_problem)


def _evaluate_rl(args, state, saved, checkpoint: Path, out_dir: Path) -> dict[str, Any]:
    from metarl.config import from_mapping, validate
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import RLEvalOptions, evaluate_rl

    if args.shots is not None:
        raise ConfigError(f"--shots: only for supervised runs; {checkpoint} is a MAML-TRPO run "
                          f"(use --episodes-per-task for the evaluation batch)")
    config = from_mapping(MAMLTRPOConfig, saved, source=str(checkpoint))
    validate(config)
    options = RLEvalOptions(num_tasks=args.num_tasks or 40, steps=args.steps,
                            episodes_per_task=args.episodes_per_task,
                            env_steps_per_task=args.env_steps_per_task,
                            later_lr_scale=0.5 if args.later_lr_scale is None
                            else args.later_lr_scale,
                            baselines=bool(args.baselines),
                            pretrained=Path(args.pretrained) if args.pretrained else None,
                            oracle=Path(args.oracle) if args.oracle else None,
                            pretrain_iterations=args.baseline_iterations, seed=args.seed,
                            progress=not args.no_progress)
    return evaluate_rl(config, state, out_dir, options, source=str(checkpoint))


# --- dispatch --------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "maml": run_maml,
    "maml_trpo": run_maml_trpo,
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


def _non_finite_errors() -> type[Exception]:
    """Training that diverged, or a policy that turned non-finite while it was evaluated."""
    from metarl.nonfinite import NonFiniteError

    return NonFiniteError


def _domain_errors() -> tuple[type[Exception], ...]:
    """Errors of bad user input raised below the CLI (unknown env names, bad task dicts)."""
    from metarl import envs
    from metarl.supervised.omniglot import OmniglotError

    return (envs.registry.UnknownEnvError, envs.registry.NotATaskFamilyError, OmniglotError)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(help_pages.HELP, end="")
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    try:
        if command not in COMMANDS:
            raise UsageError(f"unknown algorithm {command!r}; choose from: {', '.join(COMMANDS)}")
        return COMMANDS[command](rest)
    except (UsageError, ConfigError, CheckpointError, *_domain_errors()) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except _non_finite_errors() as error:  # what was saved before is intact
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except Interrupted as interrupted:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # evaluate, or training before its run directory was ready
        print("interrupted" if command == "evaluate" else "interrupted before training started",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

