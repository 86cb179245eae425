"""The class-disjoint train / val / test split of Omniglot's characters.

A class is a character, written ``"Alphabet/characterNN"``; splits are class-disjoint on these
keys (never on files), and each character's 90-degree rotations are further classes that belong
to the character's split (``EpisodeSampler`` makes them).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OmniglotSplit:
    """Class-disjoint character lists (``"Alphabet/characterNN"``), each sorted.

    ``to_dict()`` gives plain lists for a checkpoint (``OmniglotProblem.state_dict``);
    ``from_dict`` restores it.
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    seed: int | None = None

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for name in ("train", "val", "test"):
            for c in getattr(self, name):
                if c in seen:
                    raise ValueError(f"character {c!r} is in both the {seen[c]} and {name} splits")
                seen[c] = name

    def __getitem__(self, name: str) -> tuple[str, ...]:
        if name not in ("train", "val", "test"):
            raise KeyError(f"no split {name!r}; splits are train, val, test")
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OmniglotSplit:
        return cls(
            train=tuple(d["train"]), val=tuple(d["val"]), test=tuple(d["test"]), seed=d.get("seed")
        )


def _split_size(value: int | float, total: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be a count (int) or a fraction (float in [0, 1)), got {value!r}"
        )
    if isinstance(value, numbers.Integral):
        if not 0 <= value <= total:
            raise ValueError(f"{name}={value} characters, but there are {total}; use 0..{total}")
        return int(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name}={value} is not a fraction in [0, 1); give a float or an int count"
        )
    return round(value * total)


def split_characters(
    characters: Iterable[str], *, seed: int = 0, val: int | float = 0.1, test: int | float = 0.25
) -> OmniglotSplit:
    """Split characters into disjoint train / val / test sets, deterministically from ``seed``.

    ``val`` and ``test`` are counts (int) or fractions of all characters (float); train gets
    the rest. The split depends only on the set of characters and the seed (they are sorted
    first). Characters from every alphabet can land in every split, as in MAML's Omniglot split;
    rotations are not split here: a character's four rotations follow it.
    """
    pool = sorted(set(characters))
    n_val = _split_size(val, len(pool), "val")
    n_test = _split_size(test, len(pool), "test")
    if n_val + n_test > len(pool):
        raise ValueError(f"val ({n_val}) + test ({n_test}) exceed the {len(pool)} characters")
    order = np.random.default_rng(seed).permutation(len(pool))
    picked = [pool[i] for i in order]
    return OmniglotSplit(
        train=tuple(sorted(picked[n_val + n_test :])),
        val=tuple(sorted(picked[n_test : n_test + n_val])),
        test=tuple(sorted(picked[:n_test])),
        seed=seed,
    )
