"""The ``device`` option: where the learner computes (``cpu``, ``cuda``, ``cuda:N``, ``auto``).

Declared once (:func:`device_option`) and used by every config that has a learner
(``maml``, ``maml_trpo``) and by ``evaluate``. The text is what a run records in its config;
:func:`resolve_device` turns it into a ``torch.device`` and is also the option's validity
check, so a config naming a device this machine does not have fails before anything is built
or written::

    cpu       the CPU
    cuda      the current CUDA device (cuda:0 unless CUDA_VISIBLE_DEVICES says otherwise)
    cuda:N    CUDA device N, 0 <= N < torch.cuda.device_count()
    auto      cuda where torch.cuda.is_available(), else cpu

Only the learner moves: models, optimiser state, adaptation, the TRPO step and the supervised
meta-step. Environments and samplers stay on the CPU, and checkpoints always hold CPU tensors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from metarl.config import ConfigError, option

#: The forms a device may take, as help pages and errors list them.
DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "auto")
#: The CPU, as a default argument.
CPU = torch.device("cpu")
#: What the option's help says of ``--resume``, which may change the device.
RESUME_NOTE = ("--resume may change it; a resumed run repeats the uninterrupted one bit for bit "
               "only on the same device")
_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def resolve_device(text: str) -> torch.device:
    """``text`` (one of ``DEVICE_CHOICES``) as a ``torch.device``; ``auto`` is cuda where
    CUDA is available, else cpu. A ConfigError, one line naming the value and the valid
    choices, for any other text and for a CUDA device this machine does not have."""
    valid = ", ".join(DEVICE_CHOICES)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = _CUDA_INDEX.fullmatch(text) if isinstance(text, str) else None
    if text != "cuda" and match is None:
        raise ConfigError(f"device={text!r} is not valid; choose from: {valid}")
    if not torch.cuda.is_available():
        raise ConfigError(f"device={text!r}: no CUDA device is visible on this machine "
                          f"(torch.cuda.is_available() is False); choose from: cpu, auto")
    if match is not None and int(match.group(1)) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"device={text!r}: this machine has {count} CUDA device(s), "
                          f"cuda:0..cuda:{count - 1}; choose from: {valid}")
    if match is None:  # "cuda": the current device, by its index (as tensors report theirs)
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(text)


def check_device(text: Any) -> None:
    """The option's validity check (``metarl.config.validate``): :func:`resolve_device`."""
    resolve_device(text)


def device_option(default: str | None = "cpu", extra: str = "") -> Any:
    """The ``device`` field of a config (``metarl.config.option``), checked by
    :func:`check_device`; ``extra`` ends its help text."""
    return option(default, "where the learner computes: cpu, cuda, cuda:N, or auto (cuda where "
                  "available, else cpu); sampling and data loading stay on the CPU" + extra,
                  metavar="{" + ",".join(DEVICE_CHOICES) + "}", check=check_device)


def to_device(data: Any, device: torch.device, *, non_blocking: bool = False) -> Any:
    """``data`` (a tensor, or tuples, lists and dicts of them) with every tensor on
    ``device``; tensors already there are returned as they are (no copy)."""
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=non_blocking)
    if isinstance(data, Mapping):
        return {k: to_device(v, device, non_blocking=non_blocking) for k, v in data.items()}
    if isinstance(data, (tuple, list)):
        return type(data)(to_device(v, device, non_blocking=non_blocking) for v in data)
    return data


def cpu_state(state: Any) -> Any:
    """A ``state_dict`` (nested dicts and lists of tensors, as an optimiser's) with every
    tensor on the CPU, as checkpoints hold them; CPU tensors are returned as they are."""
    return to_device(state, CPU)
