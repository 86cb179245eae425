"""Omniglot N-way K-shot classification for the supervised MAML trainer (docs/tasks.md).

Characters are split into train/test from ``split_seed`` (class-disjoint on (alphabet,
character)). The split and the names of the archives it was made from are saved in every
checkpoint (``state_dict``), and ``--resume`` and ``evaluate`` restore them: archives added to
the data folder later do not change a run's characters. Every character's 90-degree rotations
are further classes of the same split. Episodes: N ways, K support and Q query images per class.
The model is the paper's 4-block conv net, adapted with grouped convolutions
(``ConvNet.task_forward``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from metarl.config import ConfigError, option
from metarl.evaluation_options import EvalDefaults
from metarl.runs import CheckpointError
from metarl.supervised.omniglot.baseline import ClassifierBaseline
from metarl.supervised.omniglot.data import (
    KNOWN_ARCHIVES,
    ArchiveNotFoundError,
    Episode,
    EpisodeSampler,
    OmniglotImages,
    OmniglotSplit,
    TooManyWaysError,
    UnknownCharacterError,
    default_cache_dir,
    load_omniglot,
    split_characters,
)
from metarl.supervised.omniglot.maml import meta_loss as omniglot_meta_loss
from metarl.supervised.omniglot.model import ConvNet
from metarl.supervised.omniglot.options import OmniglotOptions
from metarl.supervised.trainer import MAMLConfig


@dataclass
class OmniglotConfig(OmniglotOptions, MAMLConfig):
    """Omniglot with the paper's settings: inner lr 0.4, 1 step (3 at test), meta-batch 32,
    15 queries per class, Adam 1e-3."""

    task: str = option("omniglot", "few-shot task family", choices=("sine", "omniglot"))
    num_batches: int = option(60000, "meta-iterations (meta-batches) to train for", minimum=0,
                              exclusive_minimum=False)
    meta_batch_size: int = option(32, "tasks per meta-iteration", minimum=0)
    fast_lr: float = option(0.4, "inner-loop learning rate (alpha)", minimum=0.0)
    shots: int = option(1, "K: support images per class", minimum=0)
    queries: int = option(15, "query images per class for the meta-loss", minimum=0)
    eval_steps: int = option(3, "inner steps in the held-out adaptation curve", minimum=0,
                             exclusive_minimum=False)


class OmniglotProblem:
    """N-way K-shot episodes from the train or test characters (see ``metarl.supervised.problem``)."""

    metric = "accuracy"
    higher_is_better = True
    #: Tasks per batched evaluation call (conv activations of 16 tasks ~ 0.3 GB).
    eval_chunk_size = 16

    #: The splits ``meta_batch`` draws from.
    splits = ("train", "test")

    def __init__(self, config: OmniglotConfig):
        self.config = config
        self.data = load_omniglot(config.data_dir, cache_dir=config.cache_dir or None,
                                  download=config.download)
        self.split = split_characters(self.data.characters, seed=config.split_seed, val=0,
                                      test=config.test_fraction)
        self.samplers = self._samplers(self.data, self.split)

    def _samplers(self, data: OmniglotImages, split: OmniglotSplit) -> dict[str, EpisodeSampler]:
        config = self.config
        rotations = (0, 90, 180, 270) if config.rotations else (0,)
        try:
            return {name: EpisodeSampler(data, split[name], ways=config.ways, shots=config.shots,
                                         queries=config.queries, rotations=rotations, name=name)
                    for name in self.splits}
        except TooManyWaysError as error:  # say which option sized the split
            classes = {name: len(split[name]) * len(rotations) for name in self.splits}
            smallest = min(classes, key=classes.get)  # the split that limits the ways
            change = f"{'raise' if smallest == 'test' else 'lower'} test_fraction"
            most = classes[smallest]
            fix = f"use ways <= {most}, or {change}" if most >= 2 else change
            raise TooManyWaysError(
                f"{error} (test_fraction={config.test_fraction:g} holds out {len(split.test)} "
                f"of the {len(split.train) + len(split.test)} characters); {fix}") from None

    def state_dict(self) -> dict[str, object]:
        """The character split and the archives it was made from (plain lists, for a
        checkpoint)."""
        return {"split": self.split.to_dict(), "archives": list(self.data.archives)}

    def load_state_dict(self, state: Mapping[str, object], *, source: str) -> None:
        """Episodes from a saved split, loading exactly the archives it was made from.

        Raises ``ArchiveNotFoundError`` when one of them is no longer in the data folder,
        ``UnknownCharacterError`` when a saved character is not in them (both
        ``OmniglotError``), ``CheckpointError`` when ``state`` is malformed.
        """
        try:
            archives = tuple(str(name) for name in state["archives"])
            split = OmniglotSplit.from_dict(state["split"])
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: the saved Omniglot split is malformed "
                                  f"({type(error).__name__}: {error})") from None
        unknown = [name for name in archives if name not in KNOWN_ARCHIVES]
        if unknown or not archives:
            raise CheckpointError(f"{source}: the saved Omniglot split names archives "
                                  f"{list(archives)}; expected some of: "
                                  f"{', '.join(KNOWN_ARCHIVES)}")
        data = self.data
        if archives != data.archives:
            try:
                data = load_omniglot(self.config.data_dir, archives=archives,
                                     cache_dir=self.config.cache_dir or None)
            except ArchiveNotFoundError as error:
                raise ArchiveNotFoundError(f"{source} was trained on the characters of "
                                           f"{', '.join(archives)}: {error}") from None
        if data is not self.data or split != self.split:
            try:
                samplers = self._samplers(data, split)
            except UnknownCharacterError as error:
                raise UnknownCharacterError(f"{source}'s saved split: {error}") from None
            self.data, self.split, self.samplers = data, split, samplers

    def check_shots(self, shots: int) -> None:
        """A ConfigError naming ``shots`` and the valid range unless an episode of each split
        can hold ``shots`` support images per class beside the config's queries (support and
        query never share a drawing, and a character has as many as its archive holds: 20 in
        Omniglot's)."""
        drawings = min(sampler.fewest_drawings for sampler in self.samplers.values())
        most = drawings - self.config.queries
        if not 1 <= shots <= most:
            raise ConfigError(f"--shots {shots} is out of range: use 1..{most} (the run's "
                              f"characters have {drawings} drawings each, and its episodes take "
                              f"{self.config.queries} of them per class as queries)")

    def build_model(self) -> ConvNet:
        return ConvNet(self.config.ways)

    def eval_defaults(self) -> EvalDefaults:
        """``evaluate``'s defaults: 1000 held-out episodes and the run's ``eval_steps`` (3 in
        the paper's setting) of the one step size, with the classifier baseline."""
        return EvalDefaults(num_tasks=1000, steps=self.config.eval_steps, later_lr_scale=1.0,
                            baselines=True)

    @staticmethod
    def task_loss(output: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy of each task: logits ``[T, n, N]``, labels ``[T, n]`` -> ``[T]``."""
        return F.cross_entropy(output.transpose(1, 2), target, reduction="none").mean(dim=1)

    @staticmethod
    def task_score(output: Tensor, target: Tensor) -> Tensor:
        """Accuracy of each task ``[T]``."""
        return (output.argmax(dim=-1) == target).float().mean(dim=1)

    def meta_loss(self, model: ConvNet, params, support, query, *, num_steps: int,
                  step_size: float, first_order: bool) -> tuple[Tensor, Tensor]:
        """Per-task query loss and accuracy ``[T]`` after adaptation, each group of tasks run as
        grouped convolutions (``maml.meta_loss``; why groups of two on a CPU, with the
        measurements, is in that module's docstring and in docs/results.md)."""
        episode = Episode(support[0], support[1], query[0], query[1])
        metrics = omniglot_meta_loss(model, params, episode, num_steps=num_steps,
                                     step_size=step_size, first_order=first_order)
        return metrics.loss, metrics.accuracy

    def meta_batch(self, num_tasks: int, generator: torch.Generator, *, split: str = "train",
                   query_size: int | None = None, shots: int | None = None):
        """``(support, query)`` with ``x [T, N*K, 1, 28, 28]``, ``y [T, N*K]``.

        The episode sampler is reseeded from ``generator`` on every call, so the trainer's
        generator state alone decides the episodes (and resuming reproduces them).
        ``query_size``/``shots`` are fixed by the config for classification and ignored.
        """
        if split not in self.samplers:
            raise ValueError(f"split={split!r} is not valid; choose from: "
                             f"{', '.join(self.samplers)}")
        sampler = self.samplers[split]
        sampler.reseed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        episode = sampler.sample_batch(num_tasks)
        return (episode.support_x, episode.support_y), (episode.query_x, episode.query_y)

    def baselines(self) -> tuple[ClassifierBaseline]:
        """The classifier of the train classes with its head fine-tuned (labels are per
        episode, so joint pretraining is meaningless here)."""
        return (ClassifierBaseline(),)

    def task_rows(self, tasks: None) -> None:
        """None: episodes have no closed form (``per_task.csv`` numbers them)."""
        return None

    def episode_title(self, shots: int) -> str:
        return f"{self.config.ways}-way K={shots}"

    def episode_meta(self) -> dict[str, int]:
        """Classification: the ways and the queries per class the episodes held."""
        return {"ways": self.config.ways, "queries_per_class": self.config.queries}

    def fits_panel(self, starts, held_out) -> None:
        """None: no side panel."""
        return None

    @property
    def cache_dir(self) -> Path:
        """The data cache folder (``--cache-dir``, else ``omniglot.default_cache_dir()``)."""
        return Path(self.config.cache_dir) if self.config.cache_dir else default_cache_dir()

    def meta_batch_with_tasks(self, num_tasks: int, generator: torch.Generator, *,
                              query_size: int, shots: int | None = None):
        """A test-split ``meta_batch`` (its episodes keep the config's shots and queries), and
        None: Omniglot has no closed-form tasks."""
        support, query = self.meta_batch(num_tasks, generator, split="test")
        return support, query, None


def build_problem(config: OmniglotConfig) -> OmniglotProblem:
    return OmniglotProblem(config)
