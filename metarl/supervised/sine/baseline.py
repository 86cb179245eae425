"""The sine oracle, which the MAML adaptation curve is compared against: it is given the task."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from metarl.device import CPU
from metarl.supervised.problem import HeldOut
from metarl.supervised.sine.model import MLP


def train_sine_oracle(tasks, *, iterations: int, batch_size: int, points: int, lr: float,
                      generator: torch.Generator, hidden_sizes=(40, 40),
                      progress: bool = False, device: torch.device = CPU
                      ) -> nn.Module:
    """The sine oracle: an MLP given the task itself, ``(x, A, φ) -> y``.

    It needs no adaptation (its error bounds what any adapted model can reach with this
    architecture); its curve is flat over adaptation steps. ``progress``: a bar on stderr.
    It trains on ``device``, its batches drawn on the CPU.
    """
    model = MLP(3, 1, hidden_sizes, nonlinearity="relu").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(iterations), desc="oracle baseline: training", unit="it",
                  disable=not progress, dynamic_ncols=True):
        amplitude, phase = tasks.sample_tasks(batch_size, generator)
        x, y = tasks.sample_points(amplitude, phase, points, generator)
        x, y, amplitude, phase = (t.to(device) for t in (x, y, amplitude, phase))
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



class SineOracle:
    """The oracle as a plug-in of ``evaluate --baselines``: ``train_sine_oracle`` for the
    evaluation's ``oracle_iterations`` (Adam at ``lr`` on ``batch_size`` tasks of the problem's
    ``query_size`` points, generator seed ``seed + 2``), scored on each held-out task given its
    amplitude and phase. It needs no adaptation: its curve is flat over the ``steps + 1``
    points, and its error bounds what an adapted model can reach."""

    name = "oracle"
    flat: dict[str, str] = {}

    def run(self, problem, held_out: HeldOut) -> dict[str, np.ndarray]:
        oracle = train_sine_oracle(problem.tasks, iterations=held_out.oracle_iterations,
                                   batch_size=held_out.batch_size, points=problem.query_size,
                                   lr=held_out.lr,
                                   generator=torch.Generator().manual_seed(held_out.seed + 2),
                                   progress=held_out.progress, device=held_out.device)
        query_x, query_y = held_out.query
        with torch.no_grad():
            prediction = oracle(oracle_inputs(query_x, *held_out.tasks))
            per_task = problem.task_score(prediction, query_y).cpu().numpy()
        return {self.name: np.repeat(per_task[:, None], held_out.steps + 1, axis=1)}

    def meta(self, held_out: HeldOut) -> dict[str, int]:
        """Its training iterations, which are not the other baselines'."""
        return {"oracle_iterations": held_out.oracle_iterations}
