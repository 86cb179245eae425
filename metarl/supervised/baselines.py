"""Non-meta baselines that the MAML adaptation curve is compared against."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from metarl.core.maml import Params, parameters_of, stack_params
from metarl.supervised.problem import FewShotProblem


def pretrain_jointly(problem: FewShotProblem, model: nn.Module, *, iterations: int,
                     batch_size: int, lr: float, generator: torch.Generator,
                     progress: bool = False) -> Params:
    """Train one model on all tasks at once (no adaptation): the paper's "pretrained" baseline.

    Each iteration draws ``batch_size`` tasks and minimises the mean loss of the *shared*
    parameters on their support and query points with Adam. For regression this learns the
    average function over the task distribution; fine-tuning it on a task's support set is the
    comparison MAML must beat. (For classification with per-episode labels this is meaningless,
    so classification problems bring their own baseline.) ``progress``: a bar on stderr.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in _iterations(iterations, "pretrained baseline: training", progress):
        (xs, ys), (xq, yq) = problem.meta_batch(batch_size, generator, split="train")
        x, y = torch.cat([xs, xq], dim=1), torch.cat([ys, yq], dim=1)
        params = stack_params(parameters_of(model), batch_size)
        loss = problem.task_loss(model.task_forward(params, x), y).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {name: p.detach() for name, p in parameters_of(model).items()}


def train_sine_oracle(tasks, *, iterations: int, batch_size: int, points: int, lr: float,
                      generator: torch.Generator, hidden_sizes=(40, 40),
                      progress: bool = False) -> nn.Module:
    """The sine oracle: an MLP given the task itself, ``(x, A, φ) -> y``.

    It needs no adaptation (its error bounds what any adapted model can reach with this
    architecture); its curve is flat over adaptation steps. ``progress``: a bar on stderr.
    """
    from metarl.supervised.models import MLP

    model = MLP(3, 1, hidden_sizes, nonlinearity="relu")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in _iterations(iterations, "oracle baseline: training", progress):
        amplitude, phase = tasks.sample_tasks(batch_size, generator)
        x, y = tasks.sample_points(amplitude, phase, points, generator)
        loss = ((model(oracle_inputs(x, amplitude, phase)) - y) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def oracle_inputs(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """``[tasks, n, 1]`` inputs with each task's amplitude and phase: ``[tasks, n, 3]``."""
    n = x.shape[1]
    task = torch.stack([amplitude, phase], dim=-1)[:, None, :].expand(-1, n, 2)
    return torch.cat([x, task], dim=-1)


def _iterations(iterations: int, desc: str, progress: bool):
    """``range(iterations)``, with a bar on stderr when ``progress``."""
    return tqdm(range(iterations), desc=desc, unit="it", disable=not progress,
                dynamic_ncols=True)
