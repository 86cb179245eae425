"""What a checkpoint holds: one schema per kind of run, and the checksum that seals it.

A run's checkpoint is a dict of ``state_dict``s, tensors and plain values: ``algo``,
``iteration`` and ``config`` (:data:`RUN_ENTRIES`), and what its algorithm's
:class:`RunSchema` names, built from the checks here (:func:`tensors`, :func:`optimizer_state`,
:func:`generator_state`, ...). Each algorithm declares its schema in its entry of
``metarl.algorithms.ALGORITHMS``, which hands the table down with :func:`know_algorithms`; the
kind of a run is its ``algo``, or for an algorithm whose families hold different entries (a
``maml`` run's ``task``: an Omniglot checkpoint also holds its character split), the family.

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
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    shown = repr(value)
    return f"{type(value).__name__} ({shown[:40]}{'...' if len(shown) > 40 else ''})"


def text(value: Any) -> str | None:
    """A str."""
    return None if isinstance(value, str) else f" is {_kind(value)}, expected a str"


def count(value: Any) -> str | None:
    """An int >= 0 (not a bool)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return f" is {_kind(value)}, expected an int >= 0"


def mapping(value: Any) -> str | None:
    """A mapping with str keys."""
    if not isinstance(value, Mapping):
        return f" is {_kind(value)}, expected a mapping"
    odd = next((key for key in value if not isinstance(key, str)), None)
    return None if odd is None else f" has the key {odd!r}, expected names (str)"


def tensors(value: Any) -> str | None:
    """A ``state_dict``: names to tensors, the floating ones finite."""
    problem = mapping(value)
    if problem:
        return problem
    for name, tensor in value.items():
        if not isinstance(tensor, torch.Tensor):
            return f"[{name!r}] is {_kind(tensor)}, expected a tensor"
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"[{name!r}] holds NaN or infinite values"
    return None


def optimizer_state(value: Any) -> str | None:
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


def generator_state(value: Any) -> str | None:
    """A ``torch.Generator``'s state."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1:
        return None
    return f" is {_kind(value)}, expected a generator state (a 1-D uint8 tensor)"


#: What every run checkpoint holds; a :class:`RunSchema` names the rest.
RUN_ENTRIES: dict[str, Check | MayBeAbsent] = {"algo": text, "iteration": count,
                                               "config": mapping}


@dataclass(frozen=True)
class RunSchema:
    """What the checkpoints of one algorithm hold besides :data:`RUN_ENTRIES`: ``entries``
    (top-level key -> check). Where its runs hold different entries by family (a ``maml`` run's
    task), ``kind_key`` is the config key naming the family and ``kinds`` each family's entries
    beyond ``entries``; the family is then the kind of run, else the algorithm's name is."""

    entries: Mapping[str, Check | MayBeAbsent]
    kind_key: str | None = None
    kinds: Mapping[str, Mapping[str, Check | MayBeAbsent]] = field(default_factory=dict)

    def schema(self, kind: str) -> dict[str, Check | MayBeAbsent]:
        """Top-level key -> check of a checkpoint of ``kind``."""
        return {**RUN_ENTRIES, **self.entries, **self.kinds.get(kind, {})}

    def kind_of(self, state: Mapping[str, Any], *, source: str) -> str:
        """The kind of run checkpoint ``state`` (of this schema's algorithm) is."""
        algo = state["algo"]
        if self.kind_key is None:
            return algo
        config = state.get("config")
        if not isinstance(config, Mapping):
            problem = " missing" if config is None else f" is {_kind(config)}, expected a mapping"
            raise CheckpointError(f"checkpoint {source} is malformed: 'config'{problem}")
        kind = config.get(self.kind_key)
        if not isinstance(kind, str) or kind not in self.kinds:
            raise CheckpointError(f"checkpoint {source} is a {algo} run of {self.kind_key} "
                                  f"{kind!r}; the {self.kind_key}s are: {', '.join(self.kinds)}")
        return kind


class DeclaresCheckpoints(Protocol):
    """An algorithm, as far as its checkpoints go (``metarl.algorithms.Algorithm``)."""

    @property
    def checkpoint(self) -> Callable[[], RunSchema]:
        """The schema of its checkpoints."""


#: The algorithms whose checkpoints :func:`check_run_state` knows by the ``algo`` they name:
#: ``metarl.algorithms.ALGORITHMS``, which sits above this module and hands itself down with
#: :func:`know_algorithms` when imported (``metarl.experiment`` and the command line import it).
_algorithms: Mapping[str, DeclaresCheckpoints] = {}


def know_algorithms(table: Mapping[str, DeclaresCheckpoints]) -> None:
    """Check run checkpoints against the schemas of ``table``'s algorithms (the table itself is
    kept, so an entry added to it later is known too)."""
    global _algorithms
    _algorithms = table


def run_schemas() -> dict[str, dict[str, Check | MayBeAbsent]]:
    """Kind of run -> top-level key -> check, for every known algorithm."""
    schemas = {}
    for name, entry in _algorithms.items():
        declared = entry.checkpoint()
        for kind in declared.kinds or (name,):
            schemas[kind] = declared.schema(kind)
    return schemas


def check_run_state(state: Mapping[str, Any], *, source: str, algo: str | None = None,
                    schema: RunSchema | None = None) -> str:
    """Check a run checkpoint against its kind's schema and return its kind; a CheckpointError
    names the first missing, unexpected or ill-typed entry. ``algo``: the algorithm expected;
    ``schema``: its schema (a trainer's own), else that of the algorithm the checkpoint names."""
    kind, entries = _kind_and_entries(state, source=source, algo=algo, schema=schema)
    for key, check in entries.items():
        optional = isinstance(check, MayBeAbsent)
        if key not in state or (optional and state[key] is None):
            if optional:
                continue
            raise CheckpointError(f"checkpoint {source} is malformed: {key!r} missing")
        problem = (check.check if optional else check)(state[key])
        if problem is not None:
            raise CheckpointError(f"checkpoint {source} is malformed: {key!r}{problem}")
    unexpected = sorted(set(state) - set(entries) - {CHECKSUM_KEY}, key=repr)
    if unexpected:
        raise CheckpointError(f"checkpoint {source} is malformed: unexpected "
                              f"{', '.join(map(repr, unexpected))}; a {kind} checkpoint holds: "
                              f"{', '.join(entries)}")
    return kind


def _kind_and_entries(state: Mapping[str, Any], *, source: str, algo: str | None,
                      schema: RunSchema | None) -> tuple[str, dict[str, Check | MayBeAbsent]]:
    """The kind of ``state`` and what a checkpoint of that kind holds (see check_run_state)."""
    named = state.get("algo")
    if named is None:
        raise CheckpointError(f"checkpoint {source} is malformed: 'algo' missing")
    if schema is None:
        if not _algorithms:
            raise RuntimeError("no table of algorithms to check a run checkpoint against: "
                               "import metarl.algorithms first (metarl.experiment does)")
        if not isinstance(named, str) or named not in _algorithms:
            raise CheckpointError(f"checkpoint {source} is not a metarl run checkpoint: algo="
                                  f"{named!r}, expected one of: {', '.join(sorted(_algorithms))}")
        schema = _algorithms[named].checkpoint()
    if algo is not None and named != algo:
        raise CheckpointError(f"checkpoint {source} is a {named!r} run, not {algo!r}")
    kind = schema.kind_of(state, source=source)
    return kind, schema.schema(kind)
