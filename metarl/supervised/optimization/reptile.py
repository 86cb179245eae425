"""Reptile (Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", arXiv
1803.02999, 2018), Algorithm 2 (batched), for sine and Omniglot.

Each meta-iteration t samples B tasks, trains a copy of θ on each task's support set with k
SGD steps (no graph to θ: Reptile never differentiates through the inner loop), and moves θ
toward the mean of the trained weights::

    θ'_i = SGD_k(θ; D_i^support, α)                    θ [...], θ' [B, ...]
    θ   ← θ + ε_t · (1/B) Σ_i (θ'_i − θ)
    ε_t = ε_0 · (1 − t / num_batches),  t = 0 .. num_batches − 1

(the paper anneals ε linearly to ``meta_step_final = 0``). The meta step is an SGD step of
learning rate ε_t on the "gradient" ``θ − mean_i θ'_i``: SGD without momentum has no state,
and ε_t is a function of the iteration, so a resumed run continues bit for bit.

The inner loop: SGD steps of ``fast_lr`` on the whole support set. The paper's Omniglot runs
use Adam (β1 = 0) on minibatches of 10 images drawn from 10 shots per class; metarl's
``evaluate`` and held-out curves fine-tune every method with plain SGD steps of ``fast_lr`` on
the support set, so Reptile trains with that same procedure: the initialisation is then
meta-learned for the adaptation it is measured with, the inner loop stays the pure ``adapt``
of MAML (no per-task optimiser state), and the paper's analysis (its section 5) is of SGD.

Reptile has no query loss, so the queries are unused in training (its "transduction" concerns
evaluation only); the post-adaptation query loss and score are still logged (no gradient) under
MAML's tags, so the training curves of the methods compare.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
from torch import Tensor

from metarl.checkpoint_format import check_run_state
from metarl.core.maml import LossFn, Params, adapt, parameters_of, stack_params
from metarl.device import to_device
from metarl.nonfinite import NonFiniteError, require_finite
from metarl.runs import check_compatible
from metarl.supervised.problem import FewShotProblem
from metarl.supervised.trainer import CHECKPOINT_SCHEMA, MAMLConfig, MetaLearner


def outer_step_size(initial: float, iteration: int, num_batches: int) -> float:
    """ε_t = ε_0 (1 − t / T), linear from ``initial`` at t = 0 to 0 at t = T = ``num_batches``
    (never below 0)."""
    if num_batches < 1:
        raise ValueError(f"num_batches={num_batches} is not valid for the annealing of "
                         f"epsilon; give num_batches >= 1")
    return initial * max(0.0, 1.0 - iteration / num_batches)


def inner_sgd(loss_fn: LossFn, params: Params, support: tuple[Tensor, Tensor], *,
              num_steps: int, step_size: float) -> Params:
    """θ'_i of every task: ``num_steps`` SGD steps from shared ``params {name: [...]}`` on
    ``support = (x [B, ...], y [B, ...])``; returns ``{name: [B, ...]}``, detached.

    ``loss_fn(stacked_params, support)``: the sum of the per-task losses (``metarl.core.maml``).
    The copies are leaves of their own, so no graph reaches ``params``.
    """
    copies = {k: v.detach().requires_grad_(True)
              for k, v in stack_params(params, support[0].shape[0]).items()}
    adapted = adapt(loss_fn, copies, support, num_steps=num_steps, step_size=step_size,
                    first_order=True)
    return {k: v.detach() for k, v in adapted.items()}


def reptile_direction(params: Params, adapted: Params) -> Params:
    """The meta step's "gradient" ``θ − (1/B) Σ_i θ'_i`` per parameter: ``params [...]``,
    ``adapted [B, ...]`` -> ``[...]``. An SGD step of size ε on it is Reptile's update."""
    return {name: p.detach() - adapted[name].mean(dim=0) for name, p in params.items()}


#: The Adam learning rate of the baselines ``evaluate`` compares a Reptile run with: MAML's β
#: (experiments/maml/*.yaml), since Reptile's ``meta_lr`` is its outer step size ε, no Adam rate.
BASELINE_LR = 1e-3


class ReptileLearner(MetaLearner):
    """Reptile on a few-shot problem: ``MetaLearner``'s model, task stream, held-out curves and
    checkpoints, with SGD (learning rate ε_t) on Reptile's direction as the meta step."""

    algo = "reptile"

    def __init__(self, problem: FewShotProblem, config: MAMLConfig):
        super().__init__(problem, config)
        # Stateless (no momentum): lr is set to ε_t before every step.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.meta_lr)

    def adapt(self, params: Params, support: tuple[Tensor, Tensor]) -> Params:
        """θ'_i for every task of ``support``: k = ``num_steps`` SGD steps of ``fast_lr``."""
        return inner_sgd(lambda p, d: self.task_losses(p, d).sum(), params, support,
                         num_steps=self.config.num_steps, step_size=self.config.fast_lr)

    def baseline_lr(self) -> float:
        """``BASELINE_LR``: ``meta_lr`` is ε here, not an Adam learning rate."""
        return BASELINE_LR

    def step(self) -> dict[str, float]:
        """One meta-iteration (Algorithm 2); logs the post-adaptation query loss and score,
        ε_t, and the held-out curve every ``eval_every`` iterations."""
        held_out = self.held_out()
        start = time.perf_counter()
        config = self.config
        epsilon = outer_step_size(config.meta_lr, self.iteration, config.num_batches)
        support, query = self.problem.meta_batch(config.meta_batch_size, self.generator,
                                                 split="train", query_size=config.queries)
        support, query = to_device((support, query), self.device)
        params = parameters_of(self.model)
        adapted = self.adapt(params, support)
        with torch.no_grad():  # logged only: Reptile has no query loss
            query_loss = self.task_losses(adapted, query).mean().item()
            score = self.task_scores(adapted, query).mean().item()
        if not math.isfinite(query_loss):
            raise NonFiniteError(f"meta_loss is {query_loss}")
        direction = reptile_direction(params, adapted)
        require_finite(direction, "the Reptile direction")  # before the step sees it
        for name, p in params.items():
            p.grad = direction[name]
        for group in self.optimizer.param_groups:
            group["lr"] = epsilon
        self.optimizer.step()
        require_finite(dict(self.model.named_parameters()), "the model after the Reptile step")
        self.iteration += 1
        values = {"train/meta_loss": query_loss,
                  f"train/post_adaptation_{self.problem.metric}": score,
                  "train/outer_step_size": epsilon,
                  "time/iteration_s": time.perf_counter() - start}
        if held_out is not None and self.iteration % config.eval_every == 0:
            values.update(self.held_out_curve(held_out))
        return values

    def load(self, state: dict[str, Any], *, source: str) -> None:
        """``MetaLearner.load``, refusing a checkpoint of another ``num_batches``: ε_t anneals
        over them, so the resumed run would follow another schedule than the saved one."""
        check_run_state(state, source=source, algo=self.algo, schema=CHECKPOINT_SCHEMA)
        check_compatible(state["config"], dataclasses.asdict(self.config), ("num_batches",),
                         source=source)
        super().load(state, source=source)
