"""The one training loop, and the ``Trainer`` protocol every algorithm implements for it.

:func:`train` drives any :class:`Trainer` from its ``iteration`` to ``config.num_batches``:
one ``step()`` per iteration, its values logged to TensorBoard at step = iteration, the
progress bar's summary updated, a checkpoint of ``state()`` written atomically every
``checkpoint_every`` iterations and at the end. Resuming is loading a checkpoint with
``load()`` before calling :func:`train`: the loop continues from the loaded ``iteration``.
Ctrl-C (KeyboardInterrupt) leaves through the loop's ``finally``, so the bar and the
TensorBoard writer are closed and the last checkpoint is the last one fully written.
A step that finds a non-finite value raises ``NonFiniteError``; the loop turns it into a
``DivergenceError`` naming the last checkpoint written, before anything of that step is saved.

Adding an algorithm means adding a trainer, not a loop:

1. a config dataclass of its options (``metarl.config.option`` fields, with ``num_batches``,
   ``checkpoint_every``, ``seed``, ``torch_threads`` and ``output_dir``) and one
   ``experiments/{algo}/{task}.yaml`` of its shipped defaults;
2. a class with the members of :class:`Trainer` (``metarl.rl.trainer.MetaRLTrainer`` and
   ``metarl.supervised.trainer.MetaLearner`` are the two examples): ``step`` does one
   iteration and returns what to log, ``state``/``load`` are its checkpoint (with a schema in
   ``metarl.checkpoint_format``), anything periodic (a held-out curve) is part of ``step``;
3. one entry in ``metarl.algorithms.ALGORITHMS`` (the config key naming its task family, its
   config class, what a resume may change, how to build the trainer), from which
   ``metarl.experiment`` builds the run and calls :func:`train`; the command line names it in
   ``metarl.run.COMMANDS`` with its help page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from metarl.nonfinite import DivergenceError, NonFiniteError
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

    A non-finite iteration raises ``DivergenceError`` before its state is saved, naming the
    last checkpoint written (every value in it finite).
    """
    config = trainer.config
    logger = Logger(run_dir, resumed_after=trainer.iteration)
    layout = dict(trainer.layout)  # emptied once written
    last: dict[str, float] = {}
    checkpoint = run_dir / CHECKPOINT_NAME
    saved = trainer.iteration if checkpoint.exists() else None  # the last finite checkpoint
    bar = tqdm(total=config.num_batches, initial=trainer.iteration, disable=not progress,
               desc=trainer.name, unit="it", dynamic_ncols=True)
    try:
        with logging_redirect_tqdm([logging.getLogger("metarl")]):
            while trainer.iteration < config.num_batches:
                try:
                    values = trainer.step()
                except NonFiniteError as error:
                    raise DivergenceError(trainer.iteration + 1, str(error),
                                          checkpoint if saved is not None else None,
                                          saved) from error
                it = trainer.iteration
                logger.scalars(values, it)
                if layout and all(tag in values for tags in layout.values() for tag in tags):
                    logger.layout(layout)
                    layout = {}
                last.update(values)
                text = trainer.summary(values)
                if text is not None:
                    bar.set_postfix_str(text, refresh=False)
                bar.update(1)
                if it % config.checkpoint_every == 0 or it == config.num_batches:
                    save_checkpoint(checkpoint, trainer.state())
                    saved = it
        if not checkpoint.exists():
            save_checkpoint(checkpoint, trainer.state())
    finally:
        bar.close()
        logger.close()
    return last
