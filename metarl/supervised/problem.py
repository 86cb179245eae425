"""What a few-shot problem gives the supervised MAML trainer.

Sine regression and Omniglot classification differ only in their data, model, loss and metric;
the meta-training loop (``trainer.py``) and the adaptation curves (``curves.py``) are shared.
What a problem differs in at evaluation (its defaults, baselines, per-task rows, side panel) it
declares here.

Everything is batched over a leading task axis: a meta-batch is ``(support, query)`` with
``support = (x [tasks, K, ...], y [tasks, K, ...])``, the model evaluates task-stacked
parameters with ``task_forward(params, x)``, and losses come back per task, ``[tasks]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    #: Tasks per batched call when evaluating (bounds memory).
    eval_chunk_size: int
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

    def check_shots(self, shots: int) -> None:
        """A ConfigError naming ``shots`` and the valid range unless the tasks can hold
        ``shots`` support examples (per class, for classification) beside their queries
        (Omniglot: a character's drawings less the queries per class); ``evaluate --shots``
        calls it before it scores anything."""

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

    def baselines(self) -> Sequence[Baseline]:
        """The non-meta methods ``evaluate --baselines`` compares MAML with on this problem,
        in the order they run (sine: the pretrained model, the oracle; Omniglot: the
        classifier)."""

    def task_rows(self, tasks: Any) -> list[dict[str, float]] | None:
        """What ``per_task.csv`` records of each held-out task (``tasks``: what
        ``meta_batch_with_tasks`` returned), or None where the tasks have no closed form."""

    def episode_title(self, shots: int) -> str:
        """The episodes as the figure's title names them (``"K=10"``, ``"5-way K=1"``)."""

    def episode_meta(self) -> dict[str, Any]:
        """What ``curve.json`` records of the episodes besides shots and query size (Omniglot:
        ways and queries per class); empty where nothing."""

    def fits_panel(self, starts: Mapping[str, Start], held_out: HeldOut
                   ) -> Callable[[Any], None] | None:
        """A function drawing the figure's side panel (sine: adapted fits on a few held-out
        tasks from each start fine-tuned like MAML), or None for no panel."""


@dataclass(frozen=True)
class HeldOut:
    """One evaluation's held-out tasks and what every method compared on them shares."""

    support: Batch
    query: Batch
    #: What defines the tasks where the problem knows it in closed form (sine:
    #: ``(amplitude [tasks], phase [tasks])``), else None.
    tasks: Any
    #: K, and the SGD step size of each of the K steps every adapting method takes.
    steps: int
    step_sizes: list[float]
    #: Adam iterations of a baseline compared with MAML, and of an oracle (which bounds what
    #: adaptation can reach, whatever the run).
    iterations: int
    oracle_iterations: int
    #: Tasks per training step (the run's ``meta_batch_size``) and the learning rate (its
    #: ``meta_lr``) of a baseline trained on tasks.
    batch_size: int
    lr: float
    #: The evaluation seed, which a trained baseline's seeds derive from.
    seed: int
    #: Progress bars of the long phases on stderr.
    progress: bool
    #: Where the evaluation computes (``evaluate --device``): the held-out batches are there,
    #: and a baseline trains its model there.
    device: torch.device = torch.device("cpu")


@dataclass(frozen=True)
class Start:
    """A starting point ``evaluate`` fine-tunes on each support set as it does MAML: a model
    (a ``TaskModel``) and its parameters θ."""

    model: Any
    params: Params


class Baseline(Protocol):
    """A non-meta method compared with MAML under the same protocol (a plug-in of
    ``evaluate --baselines``, listed by the problem's ``baselines``)."""

    #: The method's name, its curve's label.
    name: str
    #: Curves drawn as a flat, labelled reference line: curve label -> legend label.
    flat: Mapping[str, str]

    def run(self, problem: FewShotProblem, held_out: HeldOut
            ) -> dict[str, Start | np.ndarray]:
        """Its curves by label: each a ``Start`` that ``evaluate`` fine-tunes like MAML, or a
        finished curve ``[tasks, steps + 1]``."""

    def meta(self, held_out: HeldOut) -> dict[str, Any]:
        """What ``curve.json`` records of it beyond the evaluation's own keys (the oracle: its
        ``oracle_iterations``); empty where nothing."""
