"""Task spaces: how a family's task dicts are sampled and checked.

A task is a plain dict of named parameters, e.g. ``{"velocity": 1.3}`` or
``{"goal": [0.2, -0.4]}``, so tasks log, save (JSON/YAML) and compare with ``==``.
Values are Python floats (scalars) or lists of floats (vectors).

A :class:`TaskSpace` maps each key to a distribution that can both sample and
check a value:

- :class:`Uniform` -- ``U[low, high]`` (scalar) or ``U[low, high]^size`` (vector);
- :class:`Choice` -- one of a few values with equal probability (e.g. a direction +-1).

``TaskSpace.validate(task)`` returns the normalised task or raises :class:`TaskError`
naming the bad key or value and the valid range; a value outside the support of the
distribution is rejected, since the environments are only defined on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


class TaskError(ValueError):
    """A task dict is malformed (missing/unexpected key, wrong shape) or out of range."""


@dataclass(frozen=True)
class Uniform:
    """``U[low, high]`` for a scalar (``size=None``) or ``U[low, high]^size`` for a vector."""

    low: float
    high: float
    size: int | None = None

    def describe(self) -> str:
        box = f"[{self.low:g}, {self.high:g}]"
        return f"a float in {box}" if self.size is None else f"{self.size} floats in {box}"

    def default(self) -> float | list[float]:
        """The centre of the box."""
        centre = (self.low + self.high) / 2.0
        return centre if self.size is None else [centre] * self.size

    def sample(self, rng: np.random.Generator, n: int) -> list:
        """``n`` draws in one call (shape ``[n]`` or ``[n, size]``) as Python values."""
        shape = (n,) if self.size is None else (n, self.size)
        return rng.uniform(self.low, self.high, size=shape).tolist()

    def check(self, key: str, value) -> float | list[float]:
        array = _as_float_array(key, value, self.describe())
        expected_shape = () if self.size is None else (self.size,)
        if array.shape != expected_shape:
            raise TaskError(f"task[{key!r}] must be {self.describe()}, got {value!r}")
        if not np.all((array >= self.low) & (array <= self.high)):
            raise TaskError(
                f"task[{key!r}] = {value!r} is outside the task distribution: "
                f"expected {self.describe()}"
            )
        return float(array) if self.size is None else array.tolist()


@dataclass(frozen=True)
class Choice:
    """One of ``values`` with equal probability."""

    values: tuple[float, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(f"{v:g}" for v in self.values)

    def default(self) -> float:
        """The largest value (e.g. direction +1: forward)."""
        return float(max(self.values))

    def sample(self, rng: np.random.Generator, n: int) -> list:
        index = rng.integers(len(self.values), size=n)
        return [float(self.values[i]) for i in index]

    def check(self, key: str, value) -> float:
        array = _as_float_array(key, value, self.describe())
        if array.shape != () or float(array) not in self.values:
            raise TaskError(f"task[{key!r}] must be {self.describe()}, got {value!r}")
        return float(array)


@dataclass(frozen=True)
class TaskSpace:
    """Named task parameters of one family: ``{key: Uniform | Choice}``."""

    family: str
    fields: Mapping[str, Uniform | Choice]

    def describe(self) -> str:
        return ", ".join(f"{k!r}: {f.describe()}" for k, f in self.fields.items())

    def default(self) -> dict:
        """A fixed task inside the distribution, used until a task is set."""
        return {key: field.default() for key, field in self.fields.items()}

    def sample(self, rng: np.random.Generator, n: int) -> list[dict]:
        """``n`` tasks; each key is drawn for all tasks at once, keys in declaration order."""
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"number of tasks must be a non-negative int, got {n!r}")
        columns = {key: field.sample(rng, int(n)) for key, field in self.fields.items()}
        return [{key: columns[key][i] for key in self.fields} for i in range(int(n))]

    def validate(self, task: Mapping) -> dict:
        """Normalised copy of ``task``; raises :class:`TaskError` with the fix."""
        if not isinstance(task, Mapping):
            raise TaskError(
                f"{self.family} task must be a dict like {{{self.describe()}}}, "
                f"got {type(task).__name__}"
            )
        missing = [k for k in self.fields if k not in task]
        unexpected = [k for k in task if k not in self.fields]
        if missing or unexpected:
            raise TaskError(
                f"{self.family} task has missing keys {missing} and unexpected keys "
                f"{unexpected}; expected {{{self.describe()}}}"
            )
        return {key: field.check(key, task[key]) for key, field in self.fields.items()}


def _as_float_array(key: str, value, expected: str) -> np.ndarray:
    """``value`` as a finite float64 array; booleans, strings and None are not numbers here."""
    error = TaskError(f"task[{key!r}] must be {expected}, got {value!r}")
    try:
        items = np.ravel(np.asarray(value, dtype=object))
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as cause:
        raise error from cause
    if any(v is None or isinstance(v, bool | np.bool_ | str | bytes) for v in items):
        raise error
    if not np.isfinite(array).all():
        raise TaskError(f"task[{key!r}] must be finite ({expected}), got {value!r}")
    return array
