"""What a checkpoint holds: one schema per kind of run, and the checksum that seals it.

A run's checkpoint is a dict of ``state_dict``s, tensors and plain values. Its kind follows
from its ``algo`` (and, for ``maml``, its config's ``task``):

* ``maml_trpo``: ``policy`` (the policy's weights), ``iteration``, ``config``;
* ``sine``: ``model``, ``optimizer`` (Adam's state), ``generator`` (the task stream's RNG
  state), ``iteration``, ``config``;
* ``omniglot``: as ``sine``, and ``problem`` (the character split), absent in checkpoints
  written before the split was saved.

:func:`check_run_state` checks a loaded dict against its kind's schema, so that a missing key,
an unexpected one, or a value of the wrong type is one ``CheckpointError`` naming it, before
any of it reaches a model. :func:`state_digest` is the SHA-256 that ``save_checkpoint`` stores
under ``"checksum"`` and ``load_checkpoint`` verifies: it covers every tensor's bytes (with its
dtype and shape) and every plain value, in a fixed order, so one changed byte anywhere fails
the check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

CHECKSUM_KEY = "checksum"
CHECKSUM_PREFIX = "sha256:"

#: A value's check: None when the value is well-formed, else what is wrong with it, phrased to
#: follow the value's name ("['w'] is str, expected a tensor").
Check = Callable[[Any], "str | None"]


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, malformed or belongs to another experiment."""


# --- the checksum ----------------------------------------------------------------------------

def state_digest(state: Mapping[str, Any]) -> str:
    """``"sha256:HEX"`` over every entry of ``state`` except its checksum: mappings in the
    order of their keys' ``repr``, each value tagged with its type, tensors as dtype, shape and
    raw bytes. A TypeError names a value of any other type."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != CHECKSUM_KEY})
    return CHECKSUM_PREFIX + digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}:".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(f"{{{len(value)}:".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'[' if isinstance(value, list) else '('}{len(value)}:".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        encoded = value.encode("utf-8", "surrogatepass")
        digest.update(f"s{len(encoded)}:".encode() + encoded)
    elif isinstance(value, bytes):
        digest.update(f"y{len(value)}:".encode() + value)
    elif isinstance(value, bool) or value is None:
        digest.update(f"{value};".encode())
    elif isinstance(value, int):
        digest.update(f"i{value};".encode())
    elif isinstance(value, float):
        digest.update(f"f{value.hex()};".encode())
    elif isinstance(value, (torch.dtype, torch.device)):
        digest.update(f"o{value};".encode())
    else:
        raise TypeError(f"a checkpoint cannot hold a {type(value).__name__} ({value!r:.60})")


def verify_digest(state: Mapping[str, Any], *, source: str) -> bool:
    """Check ``state``'s stored checksum; False when it has none (a checkpoint written before
    checksums were stored), a CheckpointError when it differs from the contents."""
    stored = state.get(CHECKSUM_KEY)
    if stored is None:
        return False
    if not isinstance(stored, str) or not stored.startswith(CHECKSUM_PREFIX):
        raise CheckpointError(f"checkpoint {source} is malformed: {CHECKSUM_KEY!r} is "
                              f"{_kind(stored)}, expected '{CHECKSUM_PREFIX}HEX'")
    try:
        actual = state_digest(state)
    except TypeError as error:
        raise CheckpointError(f"checkpoint {source} is malformed: {error}") from None
    if actual != stored:
        raise CheckpointError(f"checkpoint {source} is corrupt: its contents no longer match "
                              "the checksum stored when it was written (a changed byte)")
    return True


# --- the schemas -----------------------------------------------------------------------------

@dataclass(frozen=True)
class MayBeAbsent:
    """A schema entry that may be absent or None (written only by later versions)."""

    check: Check


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} ({text[:40]}{'...' if len(text) > 40 else ''})"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f" is {_kind(value)}, expected a str"


def _count(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return f" is {_kind(value)}, expected an int >= 0"


def _mapping(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return f" is {_kind(value)}, expected a mapping"
    odd = next((key for key in value if not isinstance(key, str)), None)
    return None if odd is None else f" has the key {odd!r}, expected names (str)"


def _tensors(value: Any) -> str | None:
    """A ``state_dict``: names to tensors, the floating ones finite."""
    problem = _mapping(value)
    if problem:
        return problem
    for name, tensor in value.items():
        if not isinstance(tensor, torch.Tensor):
            return f"[{name!r}] is {_kind(tensor)}, expected a tensor"
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"[{name!r}] holds NaN or infinite values"
    return None


def _optimizer(value: Any) -> str | None:
    """An optimiser's ``state_dict``: ``state`` (parameter index -> its tensors and numbers)
    and ``param_groups`` (a list of mappings, each with ``params``, a list of indices)."""
    if not isinstance(value, Mapping):
        return f" is {_kind(value)}, expected an optimizer state_dict"
    for key in ("state", "param_groups"):
        if key not in value:
            return f"[{key!r}] missing"
    state, groups = value["state"], value["param_groups"]
    if not isinstance(state, Mapping):
        return f"['state'] is {_kind(state)}, expected a mapping"
    for index, entry in state.items():
        if not _is_index(index) or not isinstance(entry, Mapping):
            return f"['state'][{index!r}] is {_kind(entry)}, expected a parameter index's state"
        odd = next((k for k, v in entry.items()
                    if not isinstance(k, str) or not isinstance(v, (torch.Tensor, int, float))),
                   None)
        if odd is not None:
            return f"['state'][{index!r}][{odd!r}] is {_kind(entry[odd])}, expected a tensor"
    if not isinstance(groups, list) or not groups:
        return f"['param_groups'] is {_kind(groups)}, expected a list of groups"
    for i, group in enumerate(groups):
        params = group.get("params") if isinstance(group, Mapping) else None
        if not isinstance(params, list) or not all(_is_index(p) for p in params):
            return f"['param_groups'][{i}] is {_kind(group)}, expected a group with params"
    return None


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _generator_state(value: Any) -> str | None:
    if isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1:
        return None
    return f" is {_kind(value)}, expected a generator state (a 1-D uint8 tensor)"


_RUN = {"algo": _text, "iteration": _count, "config": _mapping}
_SUPERVISED = {**_RUN, "model": _tensors, "optimizer": _optimizer, "generator": _generator_state}
#: Kind -> top-level key -> check. ``load_checkpoint`` adds and verifies ``CHECKSUM_KEY``.
SCHEMAS: dict[str, dict[str, Check | MayBeAbsent]] = {
    "maml_trpo": {**_RUN, "policy": _tensors},
    "sine": _SUPERVISED,
    "omniglot": {**_SUPERVISED, "problem": MayBeAbsent(_mapping)},
}
#: The ``algo`` of each kind of run (a ``maml`` run's kind is its config's ``task``).
ALGOS = {"maml_trpo": "maml_trpo", "sine": "maml", "omniglot": "maml"}


def run_kind(state: Mapping[str, Any], *, source: str) -> str:
    """The kind of run checkpoint ``state`` is (a key of ``SCHEMAS``), from its ``algo`` and,
    for ``maml``, its config's ``task``."""
    algo = state.get("algo")
    if algo is None:
        raise CheckpointError(f"checkpoint {source} is malformed: 'algo' missing")
    if algo == "maml_trpo":
        return algo
    if algo != "maml":
        raise CheckpointError(f"checkpoint {source} is not a metarl run checkpoint: algo="
                              f"{algo!r}, expected one of: {', '.join(sorted(set(ALGOS.values())))}")
    config = state.get("config")
    if not isinstance(config, Mapping):
        problem = " missing" if config is None else f" is {_kind(config)}, expected a mapping"
        raise CheckpointError(f"checkpoint {source} is malformed: 'config'{problem}")
    task = config.get("task")
    if task not in SCHEMAS or ALGOS[task] != "maml":
        known = ", ".join(kind for kind, of in ALGOS.items() if of == "maml")
        raise CheckpointError(f"checkpoint {source} is a maml run of task {task!r}; "
                              f"the tasks are: {known}")
    return task


def check_run_state(state: Mapping[str, Any], *, source: str, algo: str | None = None) -> str:
    """Check a run checkpoint against its kind's schema (``algo``: the one expected) and return
    its kind; a CheckpointError names the first missing, unexpected or ill-typed entry."""
    kind = run_kind(state, source=source)
    if algo is not None and ALGOS[kind] != algo:
        raise CheckpointError(f"checkpoint {source} is a {ALGOS[kind]!r} run, not {algo!r}")
    schema = SCHEMAS[kind]
    for key, check in schema.items():
        optional = isinstance(check, MayBeAbsent)
        if key not in state or (optional and state[key] is None):
            if optional:
                continue
            raise CheckpointError(f"checkpoint {source} is malformed: {key!r} missing")
        problem = (check.check if optional else check)(state[key])
        if problem is not None:
            raise CheckpointError(f"checkpoint {source} is malformed: {key!r}{problem}")
    unexpected = sorted(set(state) - set(schema) - {CHECKSUM_KEY}, key=repr)
    if unexpected:
        raise CheckpointError(f"checkpoint {source} is malformed: unexpected "
                              f"{', '.join(map(repr, unexpected))}; a {kind} checkpoint holds: "
                              f"{', '.join(schema)}")
    return kind
