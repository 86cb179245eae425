"""Adaptation curves: each task's score after 0, 1, ..., K inner steps, all tasks at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from metarl.core.maml import Params, adapt, stack_params, step_sizes

#: ``task_losses(params [tasks, ...], (x, y)) -> [tasks]``
TaskLosses = Callable[[Params, tuple[Tensor, Tensor]], Tensor]


def task_functions(problem: Any, model: Any) -> tuple[TaskLosses, TaskLosses]:
    """The per-task loss and score of ``problem`` through ``model.task_forward``: the
    ``task_losses`` and ``task_scores`` of ``adaptation_curve``."""

    def losses(params: Params, data: tuple[Tensor, Tensor]) -> Tensor:
        return problem.task_loss(model.task_forward(params, data[0]), data[1])

    def scores(params: Params, data: tuple[Tensor, Tensor]) -> Tensor:
        return problem.task_score(model.task_forward(params, data[0]), data[1])

    return losses, scores


def adaptation_curve(task_losses: TaskLosses, task_scores: TaskLosses, params: Params,
                     support: tuple[Tensor, Tensor], query: tuple[Tensor, Tensor], *, steps: int,
                     step_size: float | Sequence[float], chunk_size: int = 200,
                     progress: bool = False, desc: str = "adaptation curve") -> Tensor:
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
        progress: a bar of the tasks adapted, headed ``desc``, on stderr.

    Returns:
        ``[tasks, steps + 1]``: column k is the score after k steps, the same update
        ``metarl.core.maml.adapt`` makes.
    """
    sizes = step_sizes(step_size, steps)
    num_tasks = support[0].shape[0]
    chunks = []
    with tqdm(total=num_tasks, desc=desc, unit="task", disable=not progress,
              dynamic_ncols=True) as bar:
        for begin in range(0, num_tasks, chunk_size):
            part = slice(begin, begin + chunk_size)
            sup = (support[0][part], support[1][part])
            qry = (query[0][part], query[1][part])
            chunks.append(_chunk_curve(task_losses, task_scores, params, sup, qry, sizes))
            bar.update(sup[0].shape[0])
    return torch.cat(chunks)


def _chunk_curve(task_losses: TaskLosses, task_scores: TaskLosses, params: Params,
                 support: tuple[Tensor, Tensor], query: tuple[Tensor, Tensor],
                 sizes: Sequence[float]) -> Tensor:
    """``adaptation_curve`` of one chunk of tasks: ``[tasks, len(sizes) + 1]``. Scores are
    measured without a graph; only the support loss is differentiated, first order."""
    adapted = {k: v.detach().requires_grad_(True)
               for k, v in stack_params(params, support[0].shape[0]).items()}
    with torch.no_grad():
        scores = [task_scores(adapted, query)]
    for size in sizes:
        adapted = adapt(lambda p, d: task_losses(p, d).sum(), adapted, support,
                        step_size=size, first_order=True)
        adapted = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
        with torch.no_grad():
            scores.append(task_scores(adapted, query))
    return torch.stack(scores, dim=1)
