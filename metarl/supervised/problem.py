"""What a few-shot problem gives the supervised MAML trainer.

Sine regression and Omniglot classification differ only in their data, model, loss and metric;
the meta-training loop (``trainer.py``) and the adaptation curves (``curves.py``) are shared.

Everything is batched over a leading task axis: a meta-batch is ``(support, query)`` with
``support = (x [tasks, K, ...], y [tasks, K, ...])``, the model evaluates task-stacked
parameters with ``task_forward(params, x)``, and losses come back per task, ``[tasks]``.

A problem whose tasks depend on more than its config (Omniglot: the character split, made from
whatever archives the data folder held) also has ``state_dict()`` and
``load_state_dict(state, *, source)``; the trainer keeps that state in every checkpoint and
restores it on ``--resume`` and ``evaluate``.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from metarl.core.maml import Params

Batch = tuple[Tensor, Tensor]


class TaskModel(Protocol):
    """An ``nn.Module`` owning θ that can also run task-stacked parameters (see models.py)."""

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

    def build_model(self) -> nn.Module:
        """A fresh model (a TaskModel) with the problem's architecture."""

    def task_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Training loss of each task, ``[tasks]``, from ``output [tasks, n, ...]``."""

    def task_score(self, output: Tensor, target: Tensor) -> Tensor:
        """Reported metric of each task, ``[tasks]``."""

    def meta_batch(self, num_tasks: int, generator: torch.Generator, *, split: str = "train",
                   query_size: int | None = None, shots: int | None = None) -> tuple[Batch, Batch]:
        """Sample ``num_tasks`` tasks of ``split`` ("train" or "test") as (support, query).
        Problems with real splits raise ``ValueError`` for any other name."""
