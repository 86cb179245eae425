"""Run directories, TensorBoard logging and checkpoints.

A run directory ``runs/{algo}__{task}__{seed}__{time}`` holds:

* ``config.yaml``: the resolved config (what ``--resume`` reads back);
* TensorBoard event files (``events.out.tfevents.*``);
* ``checkpoint.pt``: the latest checkpoint, replaced atomically (``metarl.files``), so a crash
  or a full disk mid-write leaves the previous checkpoint intact; it carries a checksum of its
  contents, verified on load (``metarl.checkpoint_format``);
* results written by ``evaluate`` (``evaluation/``).
"""

from __future__ import annotations

import io
import itertools
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from metarl.checkpoint_format import (
    CHECKSUM_KEY,
    CheckpointError,
    RunSchema,
    check_run_state,
    state_digest,
    verify_digest,
)
from metarl.files import (
    OutputPathError,
    atomic_write_bytes,
    ensure_dir,
    remove_temp_files,
    write_failure,
)

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.yaml"

logger = logging.getLogger(__name__)


def new_run_dir(output_dir: str | Path, algo: str, task: str, seed: int) -> Path:
    """Create ``output_dir/{algo}__{task}__{seed}__{time}``, never reusing an existing one:
    each name is claimed by an atomic ``mkdir``, so runs started in the same second (in other
    processes too) take ``-2``, ``-3``, ... An OutputPathError if ``output_dir`` cannot hold
    folders."""
    root = ensure_dir(output_dir)
    base = f"{algo}__{task}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    for suffix in itertools.count(1):
        path = root / (base if suffix == 1 else f"{base}-{suffix}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as error:
            raise write_failure(error, f"the run directory {path}") from None
        return path
    raise AssertionError("unreachable")


def claim_run_dir(path: str | Path) -> Path:
    """Create the directory ``path`` for a new run whose name the caller chose (an experiment
    grid's, named from its settings), instead of :func:`new_run_dir`'s timestamped one. A
    folder left by a run stopped before its first checkpoint is reused (its temp files and
    the TensorBoard events of the steps it will log again removed); one that holds
    ``checkpoint.pt`` is a run to resume, not to start again: an OutputPathError. Also an
    OutputPathError if ``path`` cannot hold files."""
    path = ensure_dir(path)
    if (path / CHECKPOINT_NAME).exists():
        raise OutputPathError(f"{path} already holds a run ({CHECKPOINT_NAME}); resume it "
                              "instead of starting a new run there")
    remove_stale_temp_files(path)
    for events in path.glob("events.out.tfevents.*"):
        events.unlink()
    return path


def remove_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Remove the temp files of checkpoint and config writes that a killed process left in
    ``run_dir`` (run before resuming it); returns those removed."""
    return remove_temp_files(run_dir, (CHECKPOINT_NAME, CONFIG_NAME))


def resume_hint(run_dir: str | Path) -> str:
    """How to continue ``run_dir``: ``--resume`` if it holds a checkpoint (checkpoints are
    written atomically, so one that exists is intact), else that there is nothing to resume."""
    if (Path(run_dir) / CHECKPOINT_NAME).is_file():
        return f"the last checkpoint is intact: continue with --resume {run_dir}"
    return f"no checkpoint was written yet in {run_dir}, so there is nothing to resume"


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` a dict of state_dicts, tensors and plain values, with its checksum under
    ``"checksum"``, atomically (an OutputPathError or WriteError leaves the previous file)."""
    sealed = {**state, CHECKSUM_KEY: state_digest(state)}
    # Serialised in memory first: torch.save turns a failed file write into a RuntimeError
    # that no longer says why (a full disk), where the file write below keeps the OSError.
    buffer = io.BytesIO()
    torch.save(sealed, buffer)
    atomic_write_bytes(path, lambda handle: handle.write(buffer.getbuffer()))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and verify its checksum. A file that is
    missing, unreadable, not a dict or altered since it was written is a CheckpointError; one
    saved before checksums were stored loads with a warning that it is unverified."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # e.g. an "unexpected pickle protocol" of junk bytes
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    # Bytes that are not a checkpoint (junk, a truncated or altered file) make torch.load raise
    # whatever its zip reader or unpickler trips over: RuntimeError, UnpicklingError,
    # ValueError, UnicodeDecodeError, KeyError, IndexError, EOFError, TypeError, struct.error,
    # AssertionError, AttributeError, OSError were all seen. Only torch.load is in this try, so
    # each of them means one thing: the file cannot be read as a checkpoint.
    except Exception as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable "
                              f"({_first_line(error)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict of state "
                              f"(it holds a {type(state).__name__})")
    if not verify_digest(state, source=str(path)):
        logger.warning("warning: checkpoint %s carries no checksum (written before checksums "
                       "were stored), so it is loaded unverified", path)
    return state


def load_run_checkpoint(path: str | Path, *, algo: str | None = None,
                        schema: RunSchema | None = None) -> dict[str, Any]:
    """``load_checkpoint``, then the schema of its kind of run (``check_run_state``; ``algo``:
    the one expected, ``schema``: its schema, else that of the algorithm the checkpoint names),
    so that what is returned has every entry the run needs."""
    state = load_checkpoint(path)
    check_run_state(state, source=str(path), algo=algo, schema=schema)
    return state


def _first_line(error: BaseException) -> str:
    """What a load error says, in one line; for a refused pickle, which object was refused."""
    text = str(error).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        refused = text.split(marker, 1)[1].strip().splitlines()[0].split(". ")[0]
        if refused.startswith("Unsupported operand"):  # bytes that are no pickle at all
            return f"not a PyTorch file: {refused}"
        return f"it holds objects other than tensors and plain values: {refused}"
    lines = text.splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


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


def load_generator_strict(generator: torch.Generator, state: Any, *, source: str,
                          what: str) -> None:
    """``generator.set_state(state)`` with a one-line error naming ``what`` the generator draws
    (``"task-stream"``, ``"episode"``) when the saved state does not fit."""
    try:
        generator.set_state(state)
    except RuntimeError as error:
        raise CheckpointError(f"{source}: the saved {what} generator state does not fit "
                              f"({' '.join(str(error).split())[:200]})") from None


def load_optimizer_strict(optimizer: torch.optim.Optimizer, state: Mapping[str, Any], *,
                          source: str) -> None:
    """``optimizer.load_state_dict`` with a one-line error when the saved state does not fit
    the optimiser: other parameter groups, a state tensor of another shape than its parameter,
    a hyperparameter missing or of another type. ``state`` has passed the checkpoint schema."""
    saved_groups, groups = state["param_groups"], optimizer.param_groups
    sizes = [len(group["params"]) for group in saved_groups]
    if sizes != [len(group["params"]) for group in groups]:
        raise CheckpointError(f"{source}: the optimizer state holds parameter groups of sizes "
                              f"{sizes}; this model's: {[len(g['params']) for g in groups]}")
    for saved, group in zip(saved_groups, groups):
        for key, current in group.items():
            if key != "params" and not _same_kind(saved.get(key, ...), current):
                raise CheckpointError(f"{source}: the optimizer's {key}="
                                      f"{saved.get(key, 'missing')!r}, expected a value like "
                                      f"{current!r}")
        for index, param in zip(saved["params"], group["params"]):
            for name, value in state["state"].get(index, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise CheckpointError(
                        f"{source}: the optimizer's {name!r} of parameter {index} has shape "
                        f"{tuple(value.shape)}; the parameter has {tuple(param.shape)}")
    optimizer.load_state_dict(state)


def _same_kind(saved: Any, current: Any) -> bool:
    """Whether a saved hyperparameter can stand for ``current``: numbers for numbers, a
    tuple of as many numbers for a tuple, else the same type."""
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool)
    if isinstance(current, tuple):
        return (isinstance(saved, tuple) and len(saved) == len(current)
                and all(_same_kind(s, c) for s, c in zip(saved, current)))
    return type(saved) is type(current)


class Logger:
    """TensorBoard writer with namespaced tags (``namespace/metric``) and the step = iteration.

    ``layout`` groups tags onto one chart (TensorBoard's custom-scalars layout), e.g. the
    adaptation curve ``{"adaptation": ["returns/step_0", "returns/step_1"]}``.
    """

    def __init__(self, run_dir: str | Path, *, resumed_after: int = 0):
        # Steps are 1-based (step i = after iteration i). A run resumed from a checkpoint of
        # iteration n drops what a stopped process logged after n, and keeps step n itself.
        purge_step = resumed_after + 1 if resumed_after else None
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)

    def layout(self, multiline: Mapping[str, Sequence[str]]) -> None:
        """Write the custom-scalars layout: one chart per title, of its tags. Write it when the
        tags exist (with their first values): a chart of tags not yet written names nothing.
        Writing it again, as a resumed run does, changes nothing."""
        charts = {title: ["Multiline", list(tags)] for title, tags in multiline.items()}
        self.writer.add_custom_scalars({"metarl": charts})

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
