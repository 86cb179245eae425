"""Adaptation curves: each task's score after 0, 1, ..., K inner steps, all tasks at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from metarl.core.maml import Params, adapt, stack_params, step_sizes

#: ``task_losses(params [tasks, ...], (x, y)) -> [tasks]``
TaskLosses = Callable[[Params, tuple[Tensor, Tensor]], Tensor]


def adaptation_curve(task_losses: TaskLosses, task_scores: TaskLosses, params: Params,
                     support: tuple[Tensor, Tensor], query: tuple[Tensor, Tensor], *, steps: int,
                     step_size: float | Sequence[float], chunk_size: int = 200) -> Tensor:
    """Query score after each of ``0..steps`` SGD steps on the support set, per task.

    Args:
        task_losses: per-task training loss of task-stacked params, ``[tasks]``.
        task_scores: per-task reported metric, ``[tasks]``.
        params: the starting parameters ``{name: [...]}``, shared by all tasks (not
            differentiated: the curve is a measurement).
        support, query: ``(x, y)`` with a leading task axis.
        steps: K, the number of inner steps.
        step_size: α, a float or one value per step.
        chunk_size: tasks per batched call (bounds memory).

    Returns:
        ``[tasks, steps + 1]``: column k is the score after k steps, the same update
        ``metarl.core.maml.adapt`` makes.
    """
    sizes = step_sizes(step_size, steps)
    num_tasks = support[0].shape[0]
    chunks = []
    for begin in range(0, num_tasks, chunk_size):
        part = slice(begin, begin + chunk_size)
        sup = (support[0][part], support[1][part])
        qry = (query[0][part], query[1][part])
        adapted = {k: v.detach().requires_grad_(True)
                   for k, v in stack_params(params, sup[0].shape[0]).items()}
        scores = [task_scores(adapted, qry).detach()]
        for size in sizes:
            adapted = adapt(lambda p, d: task_losses(p, d).sum(), adapted, sup,
                            step_size=size, first_order=True)
            adapted = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
            scores.append(task_scores(adapted, qry).detach())
        chunks.append(torch.stack(scores, dim=1))
    return torch.cat(chunks)
