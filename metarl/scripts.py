"""What the command-line scripts of ``experiments/`` and ``bench/`` share with ``metarl.run``:
argument types that refuse bad numbers by flag, and one line, not a traceback, for bad input.

    from metarl.scripts import positive_int, run_script

    parser.add_argument("--rounds", type=positive_int, default=3)
    ...
    if __name__ == "__main__":
        sys.exit(run_script(main))

:func:`run_script` prints ``error: MESSAGE`` on standard error and returns 2 for every error
that carries a message meant for the person at the command line (:func:`input_errors`: bad
configuration values, unknown env names, env options a family does not take, unusable output
paths, unreadable checkpoints, missing Omniglot data, a scalar a run did not log) and for a
non-finite value found in what a script reads (:class:`~metarl.nonfinite.NonFiniteError`).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The exit status of a script given bad input, as ``metarl.run``'s.
EXIT_BAD_INPUT = 2


def input_errors() -> tuple[type[Exception], ...]:
    """The exception types whose message is a complete one-line report of bad input."""
    from metarl.config import ConfigError
    from metarl.envs import EnvOptionError
    from metarl.envs.registry import NotATaskFamilyError, UnknownEnvError
    from metarl.envs.tasks import TaskError
    from metarl.files import OutputPathError, WriteError
    from metarl.nonfinite import NonFiniteError
    from metarl.runs import CheckpointError
    from metarl.scalars import MissingScalarError
    from metarl.supervised.omniglot.data import OmniglotError

    return (ConfigError, EnvOptionError, NotATaskFamilyError, UnknownEnvError, TaskError,
            OutputPathError, WriteError, NonFiniteError, CheckpointError, MissingScalarError,
            OmniglotError)


def run_script(main: Callable[[], int | None]) -> int:
    """``main()``'s exit status; for an error of :func:`input_errors`, ``error: MESSAGE`` on
    standard error and :data:`EXIT_BAD_INPUT`."""
    try:
        return main() or 0
    except input_errors() as error:
        message = str(error).strip() or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def read_json(path: Path, remedy: str) -> Any:
    """The JSON value in ``path``; SystemExit with one line (``... is not readable JSON
    (why); REMEDY``) if the file cannot be read or parsed."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(f"error: {path} is not readable JSON ({error}); {remedy}") from None


def _number(kind: Callable[[str], float], text: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return value


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``minimum`` (``--num-tasks: 1 must be >= 2``)."""
    def parse(text: str) -> int:
        value = _number(int, text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be >= {minimum}")
        return value
    parse.__name__ = f"int_at_least_{minimum}"
    return parse


#: An int >= 1 (``--rounds: 0 must be >= 1``).
positive_int = int_at_least(1)
#: An int >= 0 (seeds, counts that may be zero).
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """An argparse type: a finite float > 0."""
    value = _number(float, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


def finite_float(text: str) -> float:
    """An argparse type: any finite float (``nan`` and ``inf`` refused)."""
    return _number(float, text)
