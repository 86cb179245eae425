"""Seeded N-way K-shot episodes drawn from a split's characters and their rotations.

Each character's 90-degree rotations are further classes of the character's split. Episodes
are float32 in [0, 1], images ``[..., 1, 28, 28]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.supervised.omniglot.data.errors import TooFewDrawingsError, TooManyWaysError
from metarl.supervised.omniglot.data.images import OmniglotImages

ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot task, or a batch of them with a leading task axis ``[T, ...]``.

    Images float32 in [0, 1]; labels int64 in ``0..N-1``, class-major (support ``[0]*K + [1]*K
    + ...``, queries likewise with Q each).

    Attributes:
        support_x: ``[N*K, 1, 28, 28]`` (or ``[T, N*K, 1, 28, 28]``).
        support_y: ``[N*K]`` (or ``[T, N*K]``).
        query_x: ``[N*Q, 1, 28, 28]`` (or ``[T, N*Q, 1, 28, 28]``).
        query_y: ``[N*Q]`` (or ``[T, N*Q]``).
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def to(self, device: torch.device | str) -> Episode:
        return Episode(
            *(t.to(device) for t in (self.support_x, self.support_y, self.query_x, self.query_y))
        )


@dataclass(frozen=True)
class EpisodeIndices:
    """What an episode batch is made of: ``classes [T, N]`` (into ``EpisodeSampler.classes``),
    ``images [T, N, K+Q]`` (rows of ``OmniglotImages.images``; the first K are the support) and
    ``rotations [T, N]`` in degrees."""

    classes: np.ndarray
    images: np.ndarray
    rotations: np.ndarray


class EpisodeSampler:
    """Seeded N-way K-shot episodes from a set of characters and their rotations.

    The classes are every ``(character, rotation)`` pair, so a split of C characters has
    ``C * len(rotations)`` classes; an episode draws N distinct classes uniformly, then K + Q
    distinct drawings of each (support and query never share a drawing), and assigns labels
    ``0..N-1`` in draw order.

    Args:
        data: the loaded images.
        characters: this split's character keys (e.g. ``split.test``).
        ways, shots, queries: N, K and Q.
        rotations: degrees, multiples of 90; ``(0,)`` disables rotation classes.
        seed: seeds a ``numpy.random.Generator``; ``reseed(seed)`` starts it again from another
            seed, ``state_dict()`` / ``load_state_dict`` save and restore it for resuming.
        name: the split's name, for error messages.
    """

    def __init__(
        self,
        data: OmniglotImages,
        characters: Sequence[str],
        *,
        ways: int,
        shots: int,
        queries: int,
        rotations: Sequence[int] = ROTATIONS,
        seed: int = 0,
        name: str = "split",
    ):
        if ways < 1 or shots < 1 or queries < 0:
            raise ValueError(
                f"need ways >= 1, shots >= 1, queries >= 0; got {ways}, {shots}, {queries}"
            )
        bad = [r for r in rotations if r % 90 or not 0 <= r < 360]
        if bad or not rotations or len(set(rotations)) != len(rotations):
            raise ValueError(
                f"rotations must be distinct values from {ROTATIONS}, got {list(rotations)}"
            )
        self.data = data
        self.characters = tuple(characters)
        self.char_index = data.index_of(self.characters)
        self.rotations = tuple(int(r) for r in rotations)
        self.ways, self.shots, self.queries = ways, shots, queries
        self.num_classes = len(self.char_index) * len(self.rotations)
        if ways > self.num_classes:
            raise TooManyWaysError(
                f"ways={ways} but the {name} split has {len(self.char_index)} characters x "
                f"{len(self.rotations)} rotations = {self.num_classes} classes"
            )
        counts = data.counts()[self.char_index]
        #: The drawings of this split's character with the fewest: the most support and query
        #: images an episode's class can hold (0 for a split without characters).
        self.fewest_drawings = int(counts.min()) if len(counts) else 0
        if len(counts) and counts.min() < shots + queries:
            raise TooFewDrawingsError(
                f"shots + queries = {shots + queries} but some {name} characters have only "
                f"{counts.min()} drawings; use shots + queries <= {counts.min()}"
            )
        self.rng = np.random.default_rng(seed)

    @property
    def classes(self) -> list[str]:
        """Class keys ``"Alphabet/characterNN@rot"``, in class-id order."""
        return [f"{c}@{r}" for c in self.characters for r in self.rotations]

    def reseed(self, seed: int) -> None:
        """Draw the following episodes as a sampler made with ``seed`` would."""
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def sample_indices(self, num_tasks: int) -> EpisodeIndices:
        """Draw ``num_tasks`` episodes' classes, drawings and rotations (no pixels)."""
        n, m = self.ways, self.shots + self.queries
        classes = np.stack(
            [self.rng.choice(self.num_classes, n, replace=False) for _ in range(num_tasks)]
        )
        chars = self.char_index[classes // len(self.rotations)]
        rotations = np.asarray(self.rotations)[classes % len(self.rotations)]
        starts, counts = self.data.offsets[chars], self.data.counts()[chars]
        if np.all(counts == counts.flat[0]):  # every Omniglot character has 20 drawings
            draws = self.rng.random((*classes.shape, int(counts.flat[0]))).argsort(-1)[..., :m]
        else:
            draws = np.stack(
                [self.rng.choice(c, m, replace=False) for c in counts.reshape(-1)]
            ).reshape(*classes.shape, m)
        return EpisodeIndices(classes, starts[..., None] + draws, rotations)

    def episode_from(self, indices: EpisodeIndices) -> Episode:
        """The batched ``Episode`` (``[T, ...]``) for drawn indices."""
        images = self.data.images[indices.images]  # [T, N, K+Q, 28, 28] uint8 (a copy)
        for rotation in set(self.rotations) - {0}:
            mask = indices.rotations == rotation
            images[mask] = np.rot90(images[mask], rotation // 90, axes=(-2, -1))
        x = torch.from_numpy(images).float().div_(255.0).unsqueeze(-3)  # [T, N, K+Q, 1, 28, 28]
        t, n, k = x.shape[0], self.ways, self.shots
        labels = torch.arange(n)
        return Episode(
            support_x=x[:, :, :k].reshape(t, n * k, *x.shape[-3:]),
            support_y=labels.repeat_interleave(k).expand(t, -1).contiguous(),
            query_x=x[:, :, k:].reshape(t, n * self.queries, *x.shape[-3:]),
            query_y=labels.repeat_interleave(self.queries).expand(t, -1).contiguous(),
        )

    def sample_images(self, n: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """``n`` (class, drawing) pairs drawn uniformly: images ``[n, 1, 28, 28]`` (rotated as
        their class says) and class ids ``[n]`` in ``0..num_classes-1`` (``classes`` order);
        for training a plain classifier on this split."""
        classes = rng.integers(self.num_classes, size=n)
        chars = self.char_index[classes // len(self.rotations)]
        draws = (rng.random(n) * self.data.counts()[chars]).astype(np.int64)
        images = self.data.images[self.data.offsets[chars] + draws]
        rotations = np.asarray(self.rotations)[classes % len(self.rotations)]
        for rotation in set(self.rotations) - {0}:
            mask = rotations == rotation
            images[mask] = np.rot90(images[mask], rotation // 90, axes=(-2, -1))
        x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
        return x, torch.from_numpy(classes)

    def sample_batch(self, num_tasks: int) -> Episode:
        """A meta-batch: ``support_x [T, N*K, 1, 28, 28]``, ``support_y [T, N*K]``, etc."""
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        return self.episode_from(self.sample_indices(num_tasks))

    def sample(self) -> Episode:
        """One episode: ``support_x [N*K, 1, 28, 28]``, ``support_y [N*K]``, ``query_x
        [N*Q, 1, 28, 28]``, ``query_y [N*Q]``."""
        batch = self.sample_batch(1)
        return Episode(batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0])
