"""Writing files safely: atomic replacement, output folders, and the two ways a write fails.

Every file metarl writes (checkpoints, ``config.yaml``, evaluation results, the Omniglot cache)
is written to a temp file beside its final path, flushed to disk and renamed over that path, so
a reader, or a resumed run, sees the previous file or the new one, never part of one. A failed
write removes its temp file and raises one of two errors, each one line for the CLI:

* :class:`OutputPathError`: the path cannot hold files (a regular file where a folder should
  be, no permission, a read-only file system). Bad input: exit status 2.
* :class:`WriteError`: writing failed midway (disk full, quota exceeded, an I/O error). Exit
  status 1; whatever was saved before is intact.

A process killed mid-write leaves its temp file (``.NAME.*.tmp``) behind, harmless beside the
intact file; :func:`remove_temp_files` clears them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

#: Errors that say the path itself is unusable (fix the path); any other OSError while writing
#: is a failed write (fix the disk, then run again).
PATH_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST,
                         errno.EISDIR, errno.ENOENT, errno.ENAMETOOLONG})
TEMP_SUFFIX = ".tmp"


class OutputPathError(ValueError):
    """An output path that cannot hold files: a regular file, not writable, read-only."""


class WriteError(Exception):
    """Writing failed midway (disk full, quota, I/O error); the previous file is intact."""


def write_failure(error: OSError, target: str, *, after: str = "") -> OutputPathError | WriteError:
    """The one-line error for ``error``, raised while writing ``target`` (e.g. "in FOLDER");
    ``after`` ends the message of a WriteError."""
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        reason = "a file is where a folder should be"
    else:
        reason = error.strerror or str(error) or type(error).__name__
    if error.errno in PATH_ERRNOS:
        return OutputPathError(f"cannot write {target}: {reason}; give a writable folder")
    return WriteError(f"cannot write {target}: {reason}{after}")


def ensure_dir(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) if missing and check that files can be
    written in it: an OutputPathError if it, or a parent, is a regular file or it is not
    writable, a WriteError if the disk is full."""
    path = Path(path)
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputPathError(f"cannot write in {path}: {blocking} is a file, not a folder; "
                              "give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", suffix=TEMP_SUFFIX, dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise write_failure(error, f"in {path}") from None
    return path


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """``with atomic_open(path, "w") as handle:`` writes ``handle`` to a temp file beside
    ``path`` and, when the block ends without an error, fsyncs it and renames it over ``path``.

    ``mode`` is ``"wb"`` or ``"w"`` (text, UTF-8, newlines as written: right for ``csv``). On
    any error the temp file is removed and ``path`` is untouched; an OSError becomes an
    OutputPathError or a WriteError (``write_failure``).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode={mode!r} is not valid; choose from: wb, w")
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, _created_mode())  # mkstemp's 0600 would hide it from the group and others
        text = {} if mode == "wb" else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **text) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _discard(tmp)
        raise write_failure(error, str(path), after=" (nothing half-written was left)") from None
    except BaseException:
        _discard(tmp)
        raise


def _created_mode() -> int:
    """The permissions a plain ``open(path, "w")`` gives a new file: 0o666 less the umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a binary temp file beside ``path``, then rename it over ``path``
    (``atomic_open``)."""
    with atomic_open(path, "wb") as handle:
        write(handle)


def remove_temp_files(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Remove the temp files that writes of ``names`` into ``folder`` left when their process
    was killed; returns those removed."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*{TEMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)
