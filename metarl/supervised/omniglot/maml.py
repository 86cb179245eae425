"""MAML's meta-loss on a batch of Omniglot episodes (Finn et al. 2017, section 5.1).

For each task t of a meta-batch, with support set ``(x_s, y_s)`` and queries ``(x_q, y_q)``::

    θ'_t = θ - α ∇_θ CE(f_θ(x_s), y_s)          (num_steps times, metarl.core.maml.adapt)
    L_t  = CE(f_θ'_t(x_q), y_q)                   meta-loss = mean_t L_t

Two implementations with equal results (tested against each other, gradients included, and
against finite differences):

* ``meta_loss`` (the one to train with): tasks in groups. Each group's parameters get a task
  axis (``stack_params``), its networks run as grouped convolutions (``grouped_forward``), and
  ``adapt`` differentiates the *sum* of the group's per-task support losses, whose gradient with
  respect to task t's slice is task t's own gradient.
* ``meta_loss_loop``: a plain Python loop of ``adapt`` on ``ConvNet`` via ``functional_call``,
  the reference for tests and benchmarks.

The group size on a CPU is ``model.CPU_GROUP_SIZE`` (``model.task_slices`` decides the
groups for ``meta_loss`` and ``ConvNet.task_forward`` alike), chosen with
``python bench/omniglot.py``, whose measurements are in docs/results.md (Performance) and
docs/results-history.md (Omniglot speed): bigger groups spill the caches, as each op's working
set grows with the group. On a GPU all tasks go in one group. ``torch.func.vmap`` over tasks is
no alternative: through ``F.batch_norm`` in training mode its *second-order* meta-gradient is
wrong (vmap's batch-norm backward batching rule, pytorch/functorch#534).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from metarl.core.maml import Params, adapt, module_loss, stack_params
from metarl.supervised.omniglot.data import Episode
from metarl.supervised.omniglot.model import ConvNet, grouped_forward, task_slices


class TaskMetrics(NamedTuple):
    """Per-task query metrics after adaptation.

    Attributes:
        loss: ``[T]`` query cross-entropy of each adapted task; ``loss.mean()`` is the meta-loss
            (differentiable with respect to the meta-parameters).
        accuracy: ``[T]`` fraction of correctly classified queries (no gradient).
    """

    loss: Tensor
    accuracy: Tensor


def _check_batch(batch: Episode) -> None:
    if batch.support_x.dim() != 5 or batch.query_x.dim() != 5:
        raise ValueError(
            "expected a batch of episodes with a task axis (support_x [T, N*K, 1, 28, 28]), got "
            f"support_x {tuple(batch.support_x.shape)}; use EpisodeSampler.sample_batch"
        )


def grouped_support_loss(num_blocks: int):
    """``loss_fn(stacked_params, (x [T, B, ...], y [T, B]))``: the sum over tasks of each task's
    mean cross-entropy, so its gradient w.r.t. task t's parameter slice is task t's gradient."""

    def loss_fn(params: Params, data: tuple[Tensor, Tensor]) -> Tensor:
        x, y = data
        logits = grouped_forward(params, x, num_blocks=num_blocks)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]

    return loss_fn


def task_groups(batch: Episode, group_size: int | None) -> list[slice]:
    """Slices of the task axis, ``group_size`` tasks each (the last may be shorter).

    ``None`` picks ``model.CPU_GROUP_SIZE`` for CPU tensors and all tasks for any other device
    (``model.task_slices``, which ``ConvNet.task_forward`` uses too).
    """
    return task_slices(batch.support_x.shape[0], batch.support_x.device, group_size)


def _query_metrics(logits: Tensor, y: Tensor) -> TaskMetrics:
    """``logits [T, M, N]``, ``y [T, M]`` -> per-task mean cross-entropy and accuracy."""
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
    accuracy = (logits.detach().argmax(-1) == y).float().mean(1)
    return TaskMetrics(loss.mean(1), accuracy)


def meta_loss(
    model: ConvNet,
    params: Params,
    batch: Episode,
    *,
    num_steps: int = 1,
    step_size: float = 0.4,
    first_order: bool = False,
    group_size: int | None = None,
) -> TaskMetrics:
    """Adapt every task of ``batch`` on its support set, then score its queries; batched.

    Args:
        model: supplies the architecture (``num_blocks``); its own parameters are not used.
        params: meta-parameters ``{name: Tensor}`` named as ``model``'s (``parameters_of(model)``).
        batch: ``Episode`` with a task axis (``EpisodeSampler.sample_batch``).
        num_steps, step_size: inner SGD steps and α (paper: 1 step in training, 3 at test; 0.4).
        first_order: FOMAML (no second-order terms).
        group_size: tasks per grouped convolution; ``None``: ``model.CPU_GROUP_SIZE`` on CPU,
            all tasks on other devices. The results do not depend on it.

    Returns:
        ``TaskMetrics`` of shape ``[T]``; call ``.loss.mean().backward()`` for the meta-gradient.
    """
    _check_batch(batch)
    support_loss = grouped_support_loss(model.num_blocks)
    parts = []
    for part in task_groups(batch, group_size):
        adapted = adapt(
            support_loss,
            stack_params(params, part.stop - part.start),
            (batch.support_x[part], batch.support_y[part]),
            num_steps=num_steps,
            step_size=step_size,
            first_order=first_order,
        )
        logits = grouped_forward(adapted, batch.query_x[part], num_blocks=model.num_blocks)
        parts.append(_query_metrics(logits, batch.query_y[part]))
    if len(parts) == 1:
        return parts[0]
    return TaskMetrics(torch.cat([m.loss for m in parts]), torch.cat([m.accuracy for m in parts]))


def meta_loss_loop(
    model: ConvNet,
    params: Params,
    batch: Episode,
    *,
    num_steps: int = 1,
    step_size: float = 0.4,
    first_order: bool = False,
) -> TaskMetrics:
    """``meta_loss`` as a plain loop over tasks (``adapt`` + ``functional_call`` of ``model``)."""
    _check_batch(batch)
    loss_fn = module_loss(model, F.cross_entropy)
    losses, accuracies = [], []
    for t in range(batch.support_x.shape[0]):
        adapted = adapt(
            loss_fn,
            params,
            (batch.support_x[t], batch.support_y[t]),
            num_steps=num_steps,
            step_size=step_size,
            first_order=first_order,
        )
        logits = torch.func.functional_call(model, adapted, (batch.query_x[t],))
        metrics = _query_metrics(logits.unsqueeze(0), batch.query_y[t].unsqueeze(0))
        losses.append(metrics.loss)
        accuracies.append(metrics.accuracy)
    return TaskMetrics(torch.cat(losses), torch.cat(accuracies))
