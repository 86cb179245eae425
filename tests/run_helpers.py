"""Helpers the command-line tests share: the run directory a run made, its one error line.

Importable as ``run_helpers`` (setup.cfg puts ``tests/`` on ``sys.path`` for pytest).
"""

from pathlib import Path


def only_run_dir(root: Path) -> Path:
    """The single run directory under ``root`` (a test that made more fails here)."""
    (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


def error_line(err: str) -> str:
    """The one error line of ``err`` (the run directory is named on stderr before training
    starts), with no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("run directory:")]
    assert len(lines) == 1, err
    return lines[0]


def one_error_line(capsys) -> str:
    """The one non-empty line the command wrote to stderr, with no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]
