"""ProMP: Proximal Meta-Policy Search (Rothfuss, Lee, Clavera, Asfour and Abbeel, ICLR 2019,
Algorithm 1) on the MAML machinery of MAML-TRPO: the same policy, episodes, advantages and
inner loop (``metarl.core.maml.adapt``), another inner objective and another outer step.

One meta-iteration, given episodes D_i of every task i sampled with θ_o (the current θ) and
episodes D'_i sampled with the adapted θ'_{o,i}::

    A_i, A'_i = normalise(GAE(r, linear baseline fitted per task))          as MAML-TRPO
    for n = 1 .. num_outer_steps:                                           same D_i, D'_i
        θ'_i(θ) = θ + α ∇_θ J^LVC_i(θ; D_i)   (num_steps times, differentiated through)
        J(θ)    = 1/K Σ_i L^CLIP_i(θ'_i(θ); D'_i) - η KL̄(π_θo ‖ π_θ; D_i)
        θ ← Adam step on -J(θ)                                              lr β = outer_lr
    η ← η/2 or 2η when KL̄(π_θo ‖ π_θ) left [target/1.5, 1.5·target]        with adaptive_kl

J^LVC (``promp_objectives.lvc_objective``) has the policy gradient as its gradient, so θ'_{o,i}
is MAML's VPG step, and ``evaluate`` adapts a ProMP policy as it adapts a MAML-TRPO one; only
the Hessian through which the outer gradient flows differs (lower variance). At the later outer
steps θ ≠ θ_o, and the inner objective importance-weights the pre-update steps by π_θ / π_θo,
as the authors' implementation does.

With ``num_steps > 1`` every inner step reuses D_i (as MAML-TRPO's do) and the penalty stays
on the pre-update KL alone; the reference implementation samples between inner steps and
penalises each step's KL with a coefficient of its own.

Defaults (``PROMPConfig``, ``experiments/promp/*.yaml``): the authors' released run scripts
(``run_scripts/pro-mp_run_*.py`` of github.com/jonasrothfuss/ProMP): α = 0.1, β = 1e-3,
5 outer steps, ε = 0.3, η = 5e-4 fixed (adaptive off; target KL 0.01 when on).

A non-finite objective or gradient at any outer step is a ``NonFiniteError`` raised before that
step's Adam update (the trainer then stops the run before anything of the iteration is saved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from metarl.core.maml import Params, adapt, parameters_of, stack_params
from metarl.nonfinite import NonFiniteError
from metarl.rl.config import PROMPConfig
from metarl.rl.episodes import Episodes
from metarl.rl.maml_trpo import TaskData, mean_kl_of, process_episodes
from metarl.rl.policy import GaussianMLPPolicy
from metarl.rl.promp_objectives import (
    adapt_kl_coef,
    clip_fraction,
    clipped_surrogate,
    kl_penalty,
    lvc_objective,
)


@dataclass(frozen=True)
class ProMPStepInfo:
    """Diagnostics of one meta-iteration's outer steps (logged under ``promp/``)."""

    #: J at θ_o (the first outer step), and at the θ the last step left
    objective_before: float
    objective_after: float
    #: KL̄(π_θo ‖ π_θ) on the pre-update episodes at the final θ
    inner_kl: float
    #: η of these steps (the next iteration's may differ, with adaptive_kl)
    kl_coef: float
    #: the fraction of post-update steps whose ratio is clipped at the final θ
    clip_fraction: float
    #: ‖∇J‖ at θ_o
    gradient_norm: float


class ProMP:
    """The ProMP meta-learner for a Gaussian MLP policy: owns the outer Adam optimiser and the
    KL coefficient η (both training state, saved in checkpoints)."""

    def __init__(self, policy: GaussianMLPPolicy, settings: PROMPConfig):
        """``settings``: the run's config, of which the learner reads ``num_steps``,
        ``fast_lr``, ``first_order``, the GAE and the ProMP options."""
        self.policy = policy
        self.settings = settings
        self.optimizer = torch.optim.Adam(list(parameters_of(policy).values()),
                                          lr=settings.outer_lr)
        self.kl_coef = float(settings.init_kl_coef)

    def process(self, episodes: Episodes) -> TaskData:
        """Fit the baseline per task, compute GAE and normalise per task (as MAML-TRPO)."""
        return process_episodes(episodes, self.settings.gamma, self.settings.gae_lambda)

    def inner_loss(self, params: Params, data: TaskData) -> Tensor:
        """``-Σ_i J^LVC_i(θ_i; D_i)``: a sum of independent per-task losses, so that its
        gradient with respect to task-stacked params is every task's own."""
        ep = data.episodes
        log_probs = self.policy.log_prob(params, ep.observations, ep.actions)
        return -lvc_objective(log_probs, ep.log_probs, data.advantages, ep.mask).sum()

    def adapt(self, params: Params, data: TaskData, *, first_order: bool | None = None) -> Params:
        """θ'_i for every task: ``num_steps`` LVC steps from shared ``params``."""
        s = self.settings
        first_order = s.first_order if first_order is None else first_order
        return adapt(self.inner_loss, stack_params(params, data.episodes.num_tasks), data,
                     num_steps=s.num_steps, step_size=s.fast_lr, first_order=first_order)

    def objective(self, theta: Params, adapted: Params, train: TaskData, valid: TaskData,
                  old: tuple[Tensor, Tensor]) -> Tensor:
        """``J(θ) = 1/K Σ_i L^CLIP_i(θ'_i; D'_i) - η KL̄(π_θo ‖ π_θ; D_i)``; ``old``: π_θo's
        ``(mean, log_std)`` on the pre-update observations."""
        v, t = valid.episodes, train.episodes
        log_probs = self.policy.log_prob(adapted, v.observations, v.actions)
        surrogate = clipped_surrogate(log_probs, v.log_probs, valid.advantages, v.mask,
                                      self.settings.clip_eps).mean()
        new = self.policy.mean_and_log_std(theta, t.observations)
        return surrogate - kl_penalty(old, new, t.mask, self.kl_coef)

    def step(self, train: TaskData, valid: TaskData, *,
             adapted: Params | None = None) -> ProMPStepInfo:
        """``num_outer_steps`` Adam steps on θ (the policy's parameters) from processed
        pre-update episodes D_i and post-update episodes D'_i (``process``), re-adapting θ'_i
        from D_i at every step; then η's adaptive update. ``adapted``: θ'_i at the current θ
        with its graph, if the caller has it (the trainer computes it to sample D'_i); it
        serves the first step."""
        s = self.settings
        theta = parameters_of(self.policy)
        with torch.no_grad():
            old = self.policy.mean_and_log_std({k: v.detach() for k, v in theta.items()},
                                               train.episodes.observations)
        coef, before, gradient_norm = self.kl_coef, math.nan, math.nan
        for n in range(s.num_outer_steps):
            if n > 0 or adapted is None:
                adapted = self.adapt(theta, train)
            objective = self.objective(theta, adapted, train, valid, old)
            value = objective.item()
            if not math.isfinite(value):
                raise NonFiniteError(f"the ProMP objective is {value} at outer step {n + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            (-objective).backward()
            norm = torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(p.grad) for p in theta.values() if p.grad is not None]))
            if not math.isfinite(norm.item()):
                raise NonFiniteError(f"the ProMP meta-gradient is non-finite at outer step "
                                     f"{n + 1}")
            if n == 0:
                before, gradient_norm = value, norm.item()
            self.optimizer.step()
        after, inner_kl, clipped = self.statistics(train, valid, old)
        if s.adaptive_kl:
            self.kl_coef = adapt_kl_coef(self.kl_coef, inner_kl, s.target_inner_kl)
        return ProMPStepInfo(before, after, inner_kl, coef, clipped, gradient_norm)

    def statistics(self, train: TaskData, valid: TaskData,
                   old: tuple[Tensor, Tensor]) -> tuple[float, float, float]:
        """At the current θ: J, KL̄(π_θo ‖ π_θ) on D_i and the clipped fraction on D'_i."""
        theta = {k: v.detach().requires_grad_(True) for k, v in parameters_of(self.policy).items()}
        adapted = {k: v.detach() for k, v in self.adapt(theta, train, first_order=True).items()}
        v, t = valid.episodes, train.episodes
        with torch.no_grad():
            objective = self.objective(theta, adapted, train, valid, old).item()
            new = self.policy.mean_and_log_std(theta, t.observations)
            inner_kl = mean_kl_of(old, new, t.mask).item()
            log_probs = self.policy.log_prob(adapted, v.observations, v.actions)
            clipped = clip_fraction(log_probs, v.log_probs, v.mask, self.settings.clip_eps)
        return objective, inner_kl, clipped
