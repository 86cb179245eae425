"""Run directories, TensorBoard logging and atomic checkpoints.

A run directory ``runs/{algo}__{task}__{seed}__{time}`` holds:

* ``config.yaml``: the resolved config (what ``--resume`` reads back);
* TensorBoard event files (``events.out.tfevents.*``);
* ``checkpoint.pt``: the latest checkpoint, replaced atomically (temp file + ``os.replace``), so
  a crash mid-write leaves the previous checkpoint intact;
* results written by ``evaluate`` (``evaluation/``).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt or belongs to another experiment."""


def new_run_dir(output_dir: str | Path, algo: str, task: str, seed: int) -> Path:
    """Create ``output_dir/{algo}__{task}__{seed}__{time}`` (never reusing an existing one)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(output_dir) / f"{algo}__{task}__{seed}__{stamp}"
    path, suffix = base, 1
    while path.exists():
        suffix += 1
        path = base.with_name(f"{base.name}-{suffix}")
    path.mkdir(parents=True)
    return path


def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` a dict of state_dicts, tensors and plain values, atomically."""
    atomic_write_bytes(path, lambda handle: torch.save(dict(state), handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({first_line})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict of state")
    return state


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any],
                     keys: Sequence[str], *, source: str) -> None:
    """Fail when a checkpoint's config differs from ``current`` on any of ``keys``."""
    for key in keys:
        if key in saved and saved[key] != current.get(key):
            raise CheckpointError(
                f"{source} was saved with {key}={saved[key]!r}, but this run has "
                f"{key}={current.get(key)!r}")


def load_state_dict_strict(module: torch.nn.Module, state: Mapping[str, Any], *, source: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error on missing/unexpected/misshapen keys."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise CheckpointError(f"{source} does not match this model: {detail[:300]}") from None


class Logger:
    """TensorBoard writer with namespaced tags (``namespace/metric``) and the step = iteration.

    ``multiline`` groups tags onto one chart (TensorBoard's custom-scalars layout), e.g. the
    adaptation curve ``{"adaptation": ["returns/step_0", "returns/step_1"]}``.
    """

    def __init__(self, run_dir: str | Path, *, resumed_after: int = 0,
                 multiline: Mapping[str, Sequence[str]] | None = None):
        # Steps are 1-based (step i = after iteration i). A run resumed from a checkpoint of
        # iteration n drops what a stopped process logged after n, and keeps step n itself.
        purge_step = resumed_after + 1 if resumed_after else None
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        if multiline:
            charts = {title: ["Multiline", list(tags)] for title, tags in multiline.items()}
            self.writer.add_custom_scalars({"metarl": charts})

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
