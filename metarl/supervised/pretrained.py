"""The pretrained baseline of a regression problem: one model trained on all tasks jointly."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from metarl.core.maml import Params, parameters_of, stack_params
from metarl.supervised.problem import FewShotProblem, HeldOut, Start


def pretrain_jointly(problem: FewShotProblem, model: nn.Module, *, iterations: int,
                     batch_size: int, lr: float, generator: torch.Generator,
                     progress: bool = False) -> Params:
    """Train one model on all tasks at once (no adaptation): the paper's "pretrained" baseline.

    Each iteration draws ``batch_size`` tasks and minimises the mean loss of the *shared*
    parameters on their support and query points with Adam. For regression this learns the
    average function over the task distribution; fine-tuning it on a task's support set is the
    comparison MAML must beat. (For classification with per-episode labels this is meaningless,
    so classification problems bring their own baseline.) ``progress``: a bar on stderr.
    Batches are drawn on the CPU and moved to the model's device.
    """
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(iterations), desc="pretrained baseline: training", unit="it",
                  disable=not progress, dynamic_ncols=True):
        (xs, ys), (xq, yq) = problem.meta_batch(batch_size, generator, split="train")
        x, y = torch.cat([xs, xq], dim=1).to(device), torch.cat([ys, yq], dim=1).to(device)
        params = stack_params(parameters_of(model), batch_size)
        loss = problem.task_loss(model.task_forward(params, x), y).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {name: p.detach() for name, p in parameters_of(model).items()}


class PretrainedBaseline:
    """The pretrained baseline as a plug-in of ``evaluate --baselines``: ``pretrain_jointly``
    for the evaluation's ``iterations`` (torch seed ``seed``, task generator ``seed + 1``), then
    fine-tuned on each support set like MAML. For regression problems (their ``baselines``)."""

    name = "pretrained"
    flat: dict[str, str] = {}

    def run(self, problem: FewShotProblem, held_out: HeldOut) -> dict[str, Start]:
        torch.manual_seed(held_out.seed)
        model = problem.build_model().to(held_out.device)
        params = pretrain_jointly(problem, model, iterations=held_out.iterations,
                                  batch_size=held_out.batch_size, lr=held_out.lr,
                                  generator=torch.Generator().manual_seed(held_out.seed + 1),
                                  progress=held_out.progress)
        return {self.name: Start(model, params)}

    def meta(self, held_out: HeldOut) -> dict[str, int]:
        """Nothing: curve.json's ``baseline_iterations`` are its iterations."""
        return {}
