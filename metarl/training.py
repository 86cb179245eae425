"""The one training loop, and the ``Trainer`` protocol every algorithm implements for it.

:func:`train` drives any :class:`Trainer` from its ``iteration`` to ``config.num_batches``:
one ``step()`` per iteration, its values logged to TensorBoard at step = iteration, the
progress bar's summary updated, a checkpoint of ``state()`` written atomically every
``checkpoint_every`` iterations and at the end. Resuming is loading a checkpoint with
``load()`` before calling :func:`train`: the loop continues from the loaded ``iteration``.
Ctrl-C (KeyboardInterrupt) leaves through the loop's ``finally``, so the bar and the
TensorBoard writer are closed and the last checkpoint is the last one fully written.
A step that finds a non-finite value raises ``NonFiniteError``, and so does a state to
checkpoint that holds one; the loop turns it into a ``DivergenceError`` naming the last
checkpoint written, before anything of that iteration is logged or saved.

Adding an algorithm means adding a trainer, not a loop:

1. a config dataclass of its options (``metarl.config.option`` fields, with ``num_batches``,
   ``checkpoint_every``, ``seed``, ``torch_threads`` and ``output_dir``) and one
   ``experiments/{algo}/{task}.yaml`` of its shipped defaults;
2. a class with the members of :class:`Trainer` (``metarl.rl.trainer.MetaRLTrainer`` and
   ``metarl.supervised.trainer.MetaLearner`` are the two examples): ``step`` does one
   iteration and returns what to log, ``state``/``load`` are its checkpoint (declared beside it
   as a ``metarl.checkpoint_format.RunSchema``), anything periodic (a held-out curve) is part
   of ``step``;
3. one entry in ``metarl.algorithms.ALGORITHMS`` (the config key naming its task family, its
   config class, what a resume may change, how to build the trainer, its checkpoint schema,
   its help texts), from which ``metarl.experiment`` builds the run and calls :func:`train`,
   the command line makes its command and help page, and its checkpoints are checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from metarl.nonfinite import DivergenceError, NonFiniteError, require_finite
from metarl.runs import CHECKPOINT_NAME, Logger, save_checkpoint


class Budget(Protocol):
    """The options of a run's config that the loop reads."""

    #: Iterations to train to.
    num_batches: int
    #: Iterations between checkpoints (one is always written at the end).
    checkpoint_every: int


class Trainer(Protocol):
    """One algorithm's training state, stepped one iteration at a time by :func:`train`."""

    #: The run's options; the loop reads ``num_batches`` and ``checkpoint_every``.
    config: Budget
    #: Iterations done (the loop trains while it is below ``config.num_batches``).
    iteration: int

    @property
    def name(self) -> str:
        """The progress bar's label, e.g. ``"maml_trpo navigation_2d"``."""

    @property
    def layout(self) -> Mapping[str, Sequence[str]]:
        """TensorBoard charts of several tags (title -> tags), written once their tags are."""

    def step(self) -> dict[str, float]:
        """One iteration: advance ``iteration`` by one and return the values to log (tag ->
        value); raise ``NonFiniteError`` before changing anything that a non-finite value
        would corrupt."""

    def summary(self, values: Mapping[str, float]) -> str | None:
        """The progress bar's text after an iteration that logged ``values``, or None to keep
        the text it shows."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: everything a resumed run needs to continue bit-identically."""

    def load(self, state: dict[str, Any], *, source: str) -> None:
        """Restore ``state()`` from a checkpoint (``source`` names it in errors)."""

    def close(self) -> None:
        """Release what the trainer holds (worker processes); idempotent."""


def train(trainer: Trainer, run_dir: Path, *, progress: bool = True) -> dict[str, float]:
    """Train ``trainer`` from its ``iteration`` to ``config.num_batches`` in ``run_dir``; return
    the last value logged for each tag.

    A non-finite iteration, or a non-finite value in the state to checkpoint, raises
    ``DivergenceError`` before that iteration is logged or saved, naming the last checkpoint
    written (every value in it finite).
    """
    config = trainer.config
    checkpoints = Checkpoints(run_dir / CHECKPOINT_NAME, trainer.iteration)
    logger = Logger(run_dir, resumed_after=trainer.iteration)
    layout = dict(trainer.layout)  # emptied once written
    last: dict[str, float] = {}
    bar = tqdm(total=config.num_batches, initial=trainer.iteration, disable=not progress,
               desc=trainer.name, unit="it", dynamic_ncols=True)
    try:
        with logging_redirect_tqdm([logging.getLogger("metarl")]):
            while trainer.iteration < config.num_batches:
                values, state = step(trainer, checkpoints)
                logger.scalars(values, trainer.iteration)
                if layout and all(tag in values for tags in layout.values() for tag in tags):
                    logger.layout(layout)
                    layout = {}
                last.update(values)
                text = trainer.summary(values)
                if text is not None:
                    bar.set_postfix_str(text, refresh=False)
                bar.update(1)
                if state is not None:
                    checkpoints.save(state, trainer.iteration)
        if not checkpoints.path.exists():  # nothing trained: the run still has a checkpoint
            checkpoints.save(finite_state(trainer), trainer.iteration)
    finally:
        bar.close()
        logger.close()
    return last


class Checkpoints:
    """A run's checkpoint file and the iteration of the last one written or found (every
    value in it finite), which a divergence names."""

    def __init__(self, path: Path, iteration: int):
        self.path = path
        self.saved = iteration if path.exists() else None

    def save(self, state: dict[str, Any], iteration: int) -> None:
        """Write ``state`` atomically as the checkpoint of ``iteration``."""
        save_checkpoint(self.path, state)
        self.saved = iteration

    def divergence(self, iteration: int, error: NonFiniteError) -> DivergenceError:
        """The error that stops training at ``iteration`` for ``error``."""
        return DivergenceError(iteration, str(error),
                               self.path if self.saved is not None else None, self.saved)


def step(trainer: Trainer, checkpoints: Checkpoints) -> tuple[dict[str, float],
                                                              dict[str, Any] | None]:
    """One iteration of ``trainer``: the values it logs, and its state where a checkpoint is
    due (every ``checkpoint_every`` iterations and at ``num_batches``), else None; a
    ``DivergenceError`` for a non-finite value in either."""
    config, iteration = trainer.config, trainer.iteration + 1
    try:
        values = trainer.step()
        if iteration % config.checkpoint_every and iteration != config.num_batches:
            return values, None
        return values, finite_state(trainer)
    except NonFiniteError as error:
        raise checkpoints.divergence(iteration, error) from error


def finite_state(trainer: Trainer) -> dict[str, Any]:
    """``trainer.state()``; a ``NonFiniteError`` naming any floating-point tensor in it (at any
    depth: weights, optimiser moments) that holds NaN or inf."""
    state = trainer.state()
    require_finite(dict(tensors_of(state)), "the state to checkpoint")
    return state


def tensors_of(value: Any, name: str = "") -> Iterator[tuple[str, Tensor]]:
    """Every tensor in nested mappings, lists and tuples, named by its dotted path."""
    if isinstance(value, Tensor):
        yield name, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from tensors_of(item, f"{name}.{key}" if name else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from tensors_of(item, f"{name}.{index}" if name else str(index))
