"""The command line: ``python -m metarl.run ALGO [--task NAME | --env NAME] [options]``.

Commands:

* one training command per entry of ``metarl.algorithms.ALGORITHMS`` (:func:`run_training`):
  the few-shot methods (``maml``, ``protonet``, ... with ``--task sine`` or ``--task omniglot
  --data-dir PATH``) and the meta-RL ones (``maml_trpo``, ``promp``, ... with ``--env
  navigation_2d``, ``cheetah_vel``, ...); each command's help page, its line on the top-level
  page and what it reports come from its entry;
* ``evaluate``: the adaptation curve of a finished run (``--run DIR`` or ``--checkpoint FILE``).

Every option is also a YAML key (``--config FILE``; flags override the file); see
``experiments/``. The task or env, which picks the shipped defaults, comes from ``--task`` /
``--env``, else the ``--config`` file, else the resumed run. ``--resume DIR`` continues a run
exactly as it started: it may change only the settings in its entry's ``resume_may_change``
(the budget, checkpointing, logging and machine resources). This module only parses, dispatches and reports
errors: bad input exits with status 2 and one line on stderr naming the bad value and the valid
choices, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from metarl import experiment, help_pages
from metarl.algorithms import ALGORITHMS, algorithm
from metarl.allocator import tune_malloc
from metarl.config import (
    ConfigError,
    add_flags,
    default_texts,
    explicit_flags,
    flag_name,
    from_mapping,
    shipped_defaults,
    validate,
)
from metarl.evaluate_run import EvaluateOptions, checkpoint_path, output_dir
from metarl.files import OutputPathError, WriteError
from metarl.ray_runtime import first_and_last_line as one_line  # an error, in one line
from metarl.runs import CHECKPOINT_NAME, CheckpointError, resume_hint

EXIT_FAILED = 1  # training stopped by a failure (a sampler worker died); its last checkpoint intact
EXIT_WRITE_FAILED = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 1  # a value became non-finite: training stopped, its last checkpoint intact
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UsageError(Exception):
    """Bad command-line input; reported as one line with exit status 2."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during training; the message says whether a checkpoint is there to
    resume, ``status`` is the exit status (130 or 143)."""

    def __init__(self, message: str, status: int = EXIT_INTERRUPTED):
        super().__init__(message)
        self.status = status


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run stops as it does on Ctrl-C: the sampler's
    workers stopped, the last checkpoint intact, the resume hint printed."""


class TrainingFailed(Exception):
    """Training stopped by a failure that is not bad input (a sampler worker died); reported
    as one line with the resume hint."""


#: A value that starts with a minus sign and is a number (``-1e-3``, ``-inf``, ``-nan``): a
#: value for the option before it, which then names it as out of range; argparse's own
#: pattern takes only ``-1`` and ``-0.5`` and reads the rest as unknown flags.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$",
                             re.IGNORECASE)


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line (no usage dump) through UsageError, and takes
    only whole flag names: a prefix such as ``--hidden-size`` (RL²'s flag) would otherwise
    be read as another command's ``--hidden-sizes``; every negative number is a value."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# --- training commands ---------------------------------------------------------------------

def run_training(algo: str, argv: Sequence[str]) -> int:
    """``ALGO [--task NAME | --env NAME] [options]``: train a run of ``algo``, an entry of
    ``metarl.algorithms.ALGORITHMS``: resolve the config (``metarl.experiment.make_config``),
    train the run (``metarl.experiment.Run``), report the last values."""
    entry = algorithm(algo)
    if entry.families is not None and _wants_help(argv):
        _families_help(algo).print_help()
        return 0
    family, saved = _pre_parse(argv, algo)
    args, config = _parse_config(argv, algo, family, saved)
    if saved is not None and config.num_batches == saved.iteration:  # nothing is touched
        print(f"nothing to train: {saved.run_dir} is at iteration {saved.iteration}, its "
              f"num_batches; give --num-batches N > {saved.iteration} to train it longer")
        return 0
    with experiment.Run(config, resume=saved) as run:
        print(f"run directory: {run.run_dir}", file=sys.stderr)
        with _report_stop(run.run_dir):
            last = run.train(progress=not args.no_progress)
    _report(run.run_dir, run.iteration, last, entry.reported)
    return 0


def _pre_parse(argv: Sequence[str], algo: str) -> tuple[str, experiment.SavedRun | None]:
    """The task or env, which picks the config class and the shipped defaults, and, with
    ``--resume DIR``, the run to resume (``metarl.experiment.choose_family``, ``open_run``)."""
    pre = Parser(add_help=False)
    pre.add_argument(flag_name(algorithm(algo).selector), dest="value", default=None)
    pre.add_argument("--config", default=None)
    pre.add_argument("--resume", default=None)
    known, _ = pre.parse_known_args(argv)
    saved = None if known.resume is None else experiment.open_run(known.resume, algo)
    return experiment.choose_family(algo, named=known.value, config_file=known.config,
                                    saved=saved), saved


def _parse_config(argv, algo, family, saved):
    entry = algorithm(algo)
    task = entry.shipped_task(family)
    config_cls = entry.config_class(family)
    defaults = shipped_defaults(config_cls, algo, task)
    parser = _command_parser(algo, entry.description + help_pages.defaults_note(
        algo, entry.selector, task), entry.examples)
    _add_run_flags(parser, algo)
    add_flags(parser, config_cls, shown_defaults=default_texts(defaults))
    args = parser.parse_args(argv)
    config = experiment.make_config(algo, config_file=args.config, resume=saved,
                                    **explicit_flags(args, config_cls))
    return args, config


# --- help pages ------------------------------------------------------------------------------


def _wants_help(argv: Sequence[str]) -> bool:
    return "-h" in argv or "--help" in argv


def _command_parser(command: str, description: str, examples: Sequence[str]) -> Parser:
    """A command's parser, its page headed by ``description`` and ending with ``examples``."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return Parser(prog=f"python -m metarl.run {command}", description=description, epilog=epilog,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_run_flags(parser: Parser, algo: str) -> None:
    """The options of a training command that are not config fields."""
    entry = algorithm(algo)
    selector = entry.selector
    parser.add_argument("--config", metavar="FILE",
                        help=f"YAML file of options; flags override it (--{selector} too, which "
                             f"picks the shipped defaults: flag, else the file's {selector}: "
                             f"key, else the resumed run's) (default: none)")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue the run in DIR exactly as it started; only "
                             f"{', '.join(entry.resume_may_change)} may change "
                             f"(default: start a new run)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (default: shown)")


def _families_help(algo: str) -> Parser:
    """The help page of an algorithm whose families have config classes of their own (``maml``):
    the options of every family, each with its default per family."""
    entry = algorithm(algo)
    classes = {name: entry.config_class(name) for name in entry.families()}
    parser = _command_parser(algo, entry.description + help_pages.families_note(
        algo, entry.selector), entry.examples)
    _add_run_flags(parser, algo)
    defaults = {name: default_texts(shipped_defaults(cls, algo, entry.shipped_task(name)))
                for name, cls in classes.items()}
    fields = {name: set(texts) for name, texts in defaults.items()}
    common = set.intersection(*fields.values())
    shown = {}
    for field in common:
        values = {name: texts[field] for name, texts in defaults.items()}
        shown[field] = (next(iter(values.values())) if len(set(values.values())) == 1 else
                        ", ".join(f"{value} for {name}" for name, value in values.items()))
    shown[entry.selector] = entry.default
    first = next(iter(classes))
    add_flags(parser.add_argument_group(f"options of every {entry.selector}"), classes[first],
              skip=tuple(fields[first] - common), shown_defaults=shown)
    for name, cls in classes.items():
        add_flags(parser.add_argument_group(f"{name} only"), cls, skip=tuple(common),
                  shown_defaults=defaults[name])
    return parser


@contextlib.contextmanager
def _report_stop(run_dir: Path) -> Iterator[None]:
    """Say with every way training can stop early whether ``run_dir`` holds a checkpoint to
    resume (checkpoints are written atomically, so one that exists is intact): Ctrl-C and
    SIGTERM (Interrupted), a failed write (a full disk, a folder made read-only), a sampler
    worker that died or failed (TrainingFailed, one line)."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        status = EXIT_TERMINATED if stopped_by_sigterm(interrupt) else EXIT_INTERRUPTED
        raise Interrupted(f"interrupted; {resume_hint(run_dir)}", status) from None
    except (OutputPathError, WriteError) as error:
        raise type(error)(f"{error}; {resume_hint(run_dir)}") from None
    except Exception as error:
        if is_out_of_memory(error):
            raise TrainingFailed(f"{out_of_memory_line(error)}; {resume_hint(run_dir)}") from None
        if not isinstance(error, _worker_errors()):  # imported only once something failed
            raise
        raise TrainingFailed(f"{one_line(error)}; {resume_hint(run_dir)}") from None


def is_out_of_memory(error: BaseException) -> bool:
    """A failed allocation: Python's or NumPy's ``MemoryError``, or PyTorch's allocator
    error (a ``RuntimeError``, also ``torch.OutOfMemoryError`` on a GPU)."""
    if isinstance(error, MemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "DefaultCPUAllocator" in text or "out of memory" in text.lower()
        or "can't allocate memory" in text)


def out_of_memory_line(error: BaseException) -> str:
    """What to say for ``error`` (``is_out_of_memory``): the allocation that failed and the
    options that size it."""
    detail = one_line(error).split("DefaultCPUAllocator: ")[-1].split(". Error code")[0]
    return (f"out of memory ({detail[:160]}); the sizes are too large for this "
            f"machine: reduce --meta-batch-size, --fast-batch-size, --hidden-sizes, --ways, "
            f"--shots, --queries or evaluate's --num-tasks / --episodes-per-task")


def _report(run_dir: Path, iterations: int, last: dict[str, float],
            prefixes: tuple[str, ...]) -> None:
    """The lines that close a training command: the iterations done and the last values
    logged under ``prefixes``, and the run directory."""
    shown = {k: v for k, v in last.items() if k.startswith(prefixes)}
    summary = ", ".join(f"{k}={shown[k]:.4g}" for k in summary_tags(shown))
    print(f"done: {iterations} iterations" + (f"; {summary}" if summary else ""))
    print(f"run directory: {run_dir}")


def summary_tags(tags: Iterable[str]) -> list[str]:
    """``tags`` in order, a curve's steps by number and only its first two and its last
    (``eval/mse_step_0``, ``_step_1``, ``_step_200``: not all 201)."""
    steps: dict[str, list[int]] = {}
    rest = []
    for tag in tags:
        match = re.fullmatch(r"(.*_step_)(\d+)", tag)
        if match:
            steps.setdefault(match[1], []).append(int(match[2]))
        else:
            rest.append(tag)
    for prefix, numbers in steps.items():
        numbers.sort()
        rest += [f"{prefix}{n}" for n in dict.fromkeys([*numbers[:2], numbers[-1]])]
    return sorted(rest, key=lambda tag: [int(p) if p.isdigit() else p
                                         for p in re.split(r"(\d+)", tag)])


# --- evaluate --------------------------------------------------------------------------------

def run_evaluate(argv: Sequence[str]) -> int:
    """``evaluate --run DIR``: the adaptation curves of a saved run
    (``metarl.experiment.evaluate``)."""
    parser = _command_parser("evaluate", help_pages.EVALUATE_HELP, help_pages.EVALUATE_EXAMPLES)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR",
                        help="run directory, evaluated at its checkpoint.pt (required, or "
                             "--checkpoint)")
    source.add_argument("--checkpoint", metavar="FILE",
                        help="a checkpoint file (required, or --run)")
    add_flags(parser, EvaluateOptions, shown_defaults={})  # each help text says its default
    parser.add_argument("--no-progress", action="store_true",
                        help="hide progress bars (default: shown)")
    args = parser.parse_args(argv)
    options = explicit_flags(args, EvaluateOptions)
    validate(from_mapping(EvaluateOptions, options, source="the command line"))  # values first
    if args.run is not None:
        source = Path(args.run)
        if not source.is_dir():
            raise ConfigError(f"--run {source} is not a run directory; give the folder that "
                              f"holds {CHECKPOINT_NAME}, or a checkpoint file with --checkpoint")
    else:
        source = Path(args.checkpoint)
        if source.is_dir():
            raise ConfigError(f"--checkpoint {source} is a directory; give a checkpoint file, "
                              f"or the run directory with --run")
    checkpoint = checkpoint_path(source)
    result = experiment.evaluate(source, progress=not args.no_progress, **options)
    print(result["table"])
    out_dir = output_dir(checkpoint, EvaluateOptions(output=options.get("output")))
    print(f"wrote {out_dir / 'curve.json'}, curve.csv, per_task.csv and curve.png")
    return 0


# --- dispatch --------------------------------------------------------------------------------

#: The commands that are not an algorithm's training command.
COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"evaluate": run_evaluate}


def commands() -> dict[str, Callable[[Sequence[str]], int]]:
    """Every command: one per algorithm of ``metarl.algorithms.ALGORITHMS`` (its training
    command, :func:`run_training`), then :data:`COMMANDS`."""
    training = {name: functools.partial(run_training, name) for name in ALGORITHMS}
    return {**training, **COMMANDS}


def main_help() -> str:
    """``python -m metarl.run --help``: every command with its line and an example."""
    lines = {name: (entry.summary, entry.examples[0]) for name, entry in ALGORITHMS.items()}
    return help_pages.main_help({**lines, "evaluate": help_pages.EVALUATE_LINE})


def _non_finite_errors() -> type[Exception]:
    """Training that diverged, or a policy that turned non-finite while it was evaluated."""
    from metarl.nonfinite import NonFiniteError

    return NonFiniteError


def _worker_errors() -> tuple[type[Exception], ...]:
    """A sampler worker process that failed or died, or a local Ray runtime that did not
    start."""
    from metarl.ray_runtime import RayStartError
    from metarl.rl.workers import WorkerError

    return WorkerError, RayStartError


def _domain_errors() -> tuple[type[Exception], ...]:
    """Errors of bad user input raised below the CLI (unknown env names, bad task dicts, env
    options a family does not take)."""
    from metarl import envs
    from metarl.supervised.omniglot.data import OmniglotError

    return (envs.registry.UnknownEnvError, envs.registry.NotATaskFamilyError,
            envs.EnvOptionError, OmniglotError)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(main_help(), end="")
        return 0 if argv else EXIT_USAGE
    command, rest = argv[0], argv[1:]
    tune_malloc()  # freed tensor memory stays in the process (metarl.allocator)
    try:
        with sigterm_as_interrupt():
            known = commands()
            if command not in known:
                raise UsageError(f"unknown algorithm {command!r}; choose from: "
                                 f"{', '.join(known)}")
            return known[command](rest)
    except (UsageError, ConfigError, CheckpointError, OutputPathError,
            *_domain_errors()) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except WriteError as error:  # a full disk: what was saved before is intact
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    except _non_finite_errors() as error:  # what was saved before is intact
        print(f"error: {error}", file=sys.stderr)
        return EXIT_DIVERGED
    except TrainingFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except _worker_errors() as error:  # a worker that failed before training started
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_FAILED
    except (MemoryError, RuntimeError) as error:  # before training, or in evaluate
        if not is_out_of_memory(error):
            raise
        print(f"error: {out_of_memory_line(error)}", file=sys.stderr)
        return EXIT_FAILED
    except Interrupted as interrupted:
        print(interrupted, file=sys.stderr)
        return interrupted.status
    except KeyboardInterrupt as interrupt:  # evaluate, or training before its run was ready
        print("interrupted" if command == "evaluate" else "interrupted before training started",
              file=sys.stderr)
        return EXIT_TERMINATED if stopped_by_sigterm(interrupt) else EXIT_INTERRUPTED


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` in the main thread (it
    unwinds like Ctrl-C); the previous handler is restored after. Elsewhere than in the main
    thread, where no handler can be installed, SIGTERM keeps its action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SIGTERMS.clear()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: SIGTERMs received while a command runs: code that catches the ``Terminated`` raised by the
#: handler and raises a plain KeyboardInterrupt instead (Ray's ``wait`` does) must still end
#: the command with SIGTERM's exit status.
_SIGTERMS: list[int] = []


def _raise_terminated(signum: int, frame: Any) -> NoReturn:
    _SIGTERMS.append(signum)
    raise Terminated


def stopped_by_sigterm(interrupt: KeyboardInterrupt) -> bool:
    """Whether ``interrupt`` stops the command for a SIGTERM (else it is Ctrl-C)."""
    return isinstance(interrupt, Terminated) or bool(_SIGTERMS)


if __name__ == "__main__":
    sys.exit(main())

