"""What a few-shot problem gives the supervised MAML trainer.

Sine regression and Omniglot classification differ only in their data, model, loss and metric;
the meta-training loop (``trainer.py``) and the adaptation curves (``curves.py``) are shared.

Everything is batched over a leading task axis: a meta-batch is ``(support, query)`` with
``support = (x [tasks, K, ...], y [tasks, K, ...])``, the model evaluates task-stacked
parameters with ``task_forward(params, x)``, and losses come back per task, ``[tasks]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from metarl.core.maml import Params
from metarl.evaluation_options import EvalDefaults

Batch = tuple[Tensor, Tensor]
#: ``meta_loss(model, params, support, query, *, num_steps, step_size, first_order)
#: -> (losses [tasks], scores [tasks])``.
MetaLoss = Callable[..., tuple[Tensor, Tensor]]


class TaskModel(Protocol):
    """An ``nn.Module`` owning θ that can also run task-stacked parameters (``sine.model.MLP``)."""

    def task_forward(self, params: Params, x: Tensor) -> Tensor: ...

    def named_parameters(self): ...


class FewShotProblem(Protocol):
    """A distribution of few-shot tasks with its model, loss and metric."""

    #: Name of the metric ``task_score`` returns, e.g. ``"mse"`` or ``"accuracy"``.
    metric: str
    #: True when a larger score is better (accuracy), False when smaller is (MSE).
    higher_is_better: bool
    #: Whether a model pretrained on all tasks jointly is a meaningful baseline.
    pretrainable: bool
    #: Tasks per batched call when evaluating (bounds memory).
    eval_chunk_size: int
    #: Curves of ``baseline_curves`` drawn as a flat, labelled reference line: name -> label.
    flat_curves: Mapping[str, str]
    #: A faster meta-loss than the trainer's default (all tasks adapted at once on stacked
    #: parameters; see ``MetaLoss``), or None for that default. Omniglot adapts tasks in
    #: small groups.
    meta_loss: MetaLoss | None

    def state_dict(self) -> dict[str, Any] | None:
        """What the problem's tasks depend on beyond its config (Omniglot: the character
        split, made from whatever archives the data folder held), kept in every checkpoint;
        None when nothing (sine)."""

    def load_state_dict(self, state: Mapping[str, Any], *, source: str) -> None:
        """Restore what ``state_dict`` returned (on ``--resume`` and ``evaluate``)."""

    def build_model(self) -> nn.Module:
        """A fresh model (a TaskModel) with the problem's architecture."""

    def eval_defaults(self) -> EvalDefaults:
        """What ``evaluate``'s options mean when left unset for a run on this problem."""

    def task_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Training loss of each task, ``[tasks]``, from ``output [tasks, n, ...]``."""

    def task_score(self, output: Tensor, target: Tensor) -> Tensor:
        """Reported metric of each task, ``[tasks]``."""

    def meta_batch(self, num_tasks: int, generator: torch.Generator, *, split: str = "train",
                   query_size: int | None = None, shots: int | None = None) -> tuple[Batch, Batch]:
        """Sample ``num_tasks`` tasks of ``split`` ("train" or "test") as (support, query).
        Problems with real splits raise ``ValueError`` for any other name."""

    def meta_batch_with_tasks(self, num_tasks: int, generator: torch.Generator, *,
                              query_size: int, shots: int | None = None
                              ) -> tuple[Batch, Batch, Any]:
        """A held-out ``(support, query)`` for ``evaluate`` (the test split where there is one),
        with what defines its tasks where the problem knows it in closed form (sine:
        ``(amplitude [tasks], phase [tasks])``), else None."""

    def baseline_curves(self, support: Batch, query: Batch, tasks: Any, *, steps: int,
                        step_sizes: Sequence[float], iterations: int, oracle_iterations: int,
                        batch_size: int, lr: float, seed: int, progress: bool = False
                        ) -> dict[str, np.ndarray]:
        """Curves ``[tasks, steps + 1]`` of the problem's own non-meta baselines on a held-out
        batch (``tasks``: what ``meta_batch_with_tasks`` returned with it), besides the
        pretrained-on-all-tasks one that ``evaluate`` trains for ``pretrainable`` problems.

        A baseline that adapts takes ``steps`` SGD steps of ``step_sizes`` on each support set,
        as MAML does; one trained here runs ``iterations`` Adam steps at ``lr`` (an oracle,
        which bounds what adaptation reaches, ``oracle_iterations``; ``batch_size`` tasks per
        step where it trains on tasks), seeded from the evaluation ``seed``, and may
        be kept for later evaluations (Omniglot's classifier, in the data cache); ``progress``
        shows bars of the long phases on stderr. Sine: the oracle; Omniglot: the
        classifier."""
