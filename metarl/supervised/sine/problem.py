"""Sine-wave regression (Finn et al. 2017, section 5.1; docs/tasks.md).

A task is y = A sin(x - φ) with amplitude A ~ U[0.1, 5.0] and phase φ ~ U[0, π]; inputs
x ~ U[-5, 5]. The model is an MLP 1-40-40-1 with ReLU, trained with the MSE loss. The
distribution is continuous, so "held-out tasks" are tasks drawn from a generator seeded apart
from the training one (see ``metarl.supervised.trainer``), not a separate split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from metarl.config import THREADS_MAX, option
from metarl.evaluation_options import EvalDefaults
from metarl.supervised.pretrained import PretrainedBaseline
from metarl.supervised.problem import HeldOut, Start
from metarl.supervised.sine.baseline import SineOracle
from metarl.supervised.sine.model import MLP
from metarl.supervised.sine.plots import plot_fits
from metarl.supervised.trainer import TORCH_THREADS_HELP, MAMLConfig


@dataclass(frozen=True)
class SineTasks:
    """The task distribution and its sampling; every draw comes from a given torch.Generator."""

    amplitude_range: tuple[float, float] = (0.1, 5.0)
    phase_range: tuple[float, float] = (0.0, math.pi)
    input_range: tuple[float, float] = (-5.0, 5.0)

    def sample_tasks(self, num_tasks: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Amplitudes and phases, each ``[num_tasks]``."""
        amplitude = _uniform(self.amplitude_range, (num_tasks,), generator)
        phase = _uniform(self.phase_range, (num_tasks,), generator)
        return amplitude, phase

    def sample_points(self, amplitude: Tensor, phase: Tensor, num_points: int,
                      generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Inputs and targets ``x, y: [tasks, num_points, 1]`` for each task."""
        x = _uniform(self.input_range, (amplitude.shape[0], num_points, 1), generator)
        return x, self.evaluate(amplitude, phase, x)

    @staticmethod
    def evaluate(amplitude: Tensor, phase: Tensor, x: Tensor) -> Tensor:
        """y = A sin(x - φ) for ``x: [tasks, n, 1]``."""
        return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])


def _uniform(bounds: tuple[float, float], shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator)


class SineProblem:
    """Few-shot sine regression for the supervised MAML trainer (see
    ``metarl.supervised.problem``).

    Args:
        shots: K, support points per task.
        query_size: query points per task for the meta-loss (evaluation passes its own).
        hidden_sizes: hidden layers of the MLP (paper: 40, 40).
    """

    metric = "mse"
    higher_is_better = False
    eval_chunk_size = 200
    #: The trainer's default meta-loss (all tasks at once) is the fast one for this MLP.
    meta_loss = None

    def __init__(self, shots: int = 10, query_size: int = 10,
                 hidden_sizes: tuple[int, ...] = (40, 40), tasks: SineTasks | None = None):
        self.shots = shots
        self.query_size = query_size
        self.hidden_sizes = tuple(hidden_sizes)
        self.tasks = tasks or SineTasks()

    def build_model(self) -> nn.Module:
        return MLP(1, 1, self.hidden_sizes, nonlinearity="relu")

    def eval_defaults(self) -> EvalDefaults:
        """``evaluate``'s defaults: the paper's 600 held-out tasks and 10 steps of the one step
        size, with the baselines."""
        return EvalDefaults(num_tasks=600, steps=10, later_lr_scale=1.0, baselines=True)

    def check_shots(self, shots: int) -> None:
        """Nothing to check: any K >= 1 points can be drawn from a sine's input range."""

    def state_dict(self) -> None:
        """None: sine tasks depend on the config alone."""
        return None

    def load_state_dict(self, state: Mapping[str, Any], *, source: str) -> None:
        """Nothing to restore (``state_dict`` is None)."""

    def task_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean squared error of each task: ``[tasks, n, 1] -> [tasks]``."""
        return ((output - target) ** 2).mean(dim=(1, 2))

    task_score = task_loss

    def meta_batch(self, num_tasks: int, generator: torch.Generator, *, split: str = "train",
                   query_size: int | None = None, shots: int | None = None):
        """``(support, query)`` with ``x, y: [tasks, points, 1]``; ``split`` is not used (the
        caller's generator decides whether tasks are held out)."""
        amplitude, phase = self.tasks.sample_tasks(num_tasks, generator)
        support = self.tasks.sample_points(amplitude, phase, shots or self.shots, generator)
        query = self.tasks.sample_points(amplitude, phase, query_size or self.query_size, generator)
        return support, query

    def meta_batch_with_tasks(self, num_tasks: int, generator: torch.Generator, *,
                              query_size: int, shots: int | None = None):
        """As ``meta_batch``, also returning ``(amplitude, phase)`` for plots."""
        amplitude, phase = self.tasks.sample_tasks(num_tasks, generator)
        support = self.tasks.sample_points(amplitude, phase, shots or self.shots, generator)
        query = self.tasks.sample_points(amplitude, phase, query_size, generator)
        return support, query, (amplitude, phase)

    def baselines(self) -> tuple[PretrainedBaseline, SineOracle]:
        """The paper's: a model pretrained on all tasks jointly and fine-tuned like MAML, and
        the oracle given the task."""
        return PretrainedBaseline(), SineOracle()

    def task_rows(self, tasks: tuple[Tensor, Tensor]) -> list[dict[str, float]]:
        """Each held-out task's amplitude and phase."""
        amplitude, phase = tasks
        return [{"amplitude": float(a), "phase": float(p)} for a, p in zip(amplitude, phase)]

    def episode_title(self, shots: int) -> str:
        return f"K={shots}"

    def episode_meta(self) -> dict[str, Any]:
        """Nothing beyond shots and query size."""
        return {}

    def fits_panel(self, starts: Mapping[str, Start], held_out: HeldOut):
        """The adapted fits of every start on a few held-out tasks (``plots.plot_fits``)."""
        return partial(plot_fits, problem=self, methods=starts, support=held_out.support,
                       true_tasks=held_out.tasks, sizes=held_out.step_sizes)


@dataclass
class SineConfig(MAMLConfig):
    """Sine regression with the paper's settings (docs/protocol.md)."""

    hidden_sizes: tuple[int, ...] = option((40, 40), "hidden layer sizes of the MLP", minimum=0)
    torch_threads: int = option(1, TORCH_THREADS_HELP, minimum=0, exclusive_minimum=False,
                                maximum=THREADS_MAX)


def build_problem(config: SineConfig) -> SineProblem:
    return SineProblem(shots=config.shots, query_size=config.queries,
                       hidden_sizes=config.hidden_sizes)
