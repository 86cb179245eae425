"""MAML-TRPO (Finn et al. 2017, Algorithm 3; docs/protocol.md).

One meta-iteration, given episodes D_i of every task i sampled with θ and episodes D'_i sampled
with the adapted θ'_i::

    A_i, A'_i = normalise(GAE(r, linear baseline fitted per task))            advantages
    θ'_i(θ)   = θ - α ∇_θ L_VPG(θ; D_i)   (num_steps times)                   adapt
    L(θ)      = 1/K Σ_i mean_t [π_θ'_i(θ)(a|o) / π_θ'_i,old(a|o) · A'_i]      surrogate
    KL(θ)     = 1/K Σ_i mean_t KL(π_θ'_i,old(·|o) ‖ π_θ'_i(θ)(·|o))           mean_kl
    g = ∇L,  s ≈ H⁻¹ g (CG, H = ∇²KL + damping),  β = sqrt(2 δ / sᵀHs)
    θ ← θ + fracᵢ β s   for the first fracᵢ = ratioⁱ improving L with KL ≤ δ, else θ unchanged

A non-finite L or g at the current θ is a ``NonFiniteError`` (nothing can be learned from that
batch, and θ is left as it was); a step rejected because the step or every KL and surrogate the
line search tried was non-finite is reported in ``StepInfo.rejected_non_finite``.

All K tasks are handled at once: the policy evaluates task-stacked parameters ``[K, ...]`` with
batched matmuls, and ``metarl.core.maml.adapt`` adapts every task in one autograd call.

H is the Hessian of the mean KL through the inner update. ``curvature="exact"`` computes its
products by double backprop (third-order graph through the inner update); ``"gauss_newton"``
uses ``Jᵀ F J`` (J: Jacobian of the adapted policy's mean and log-std with respect to θ, F: the
Gaussian Fisher), which equals the exact Hessian at the current θ because the KL and its
gradient vanish there, and needs one order of differentiation less. ``hvp_subsample`` computes
the curvature products on that fraction of each task's episodes; the line search always
checks improvement and KL on all the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from metarl.core.maml import Params, adapt, parameters_of, stack_params
from metarl.core.trpo import (
    diagonal_gaussian_fisher,
    flat_grad,
    flatten,
    gauss_newton_vector_product,
    hessian_vector_product,
    line_search,
    trpo_full_step,
    unflatten,
)
from metarl.nonfinite import NonFiniteError
from metarl.rl.baseline import baseline_values
from metarl.rl.config import CURVATURES, MAMLTRPOConfig
from metarl.rl.episodes import Episodes
from metarl.rl.policy import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob
from metarl.rl.returns import discounted_returns, gae, normalize_advantages


@dataclass(frozen=True)
class StepInfo:
    """Diagnostics of one outer step (logged under ``trpo/``)."""

    accepted: bool
    kl: float
    surrogate_improvement: float
    line_search_steps: int
    step_fraction: float
    gradient_norm: float
    #: rejected because the full step, or the KL or surrogate at every fraction tried, was
    #: non-finite (``LineSearchResult.non_finite``)
    rejected_non_finite: bool = False


@dataclass(frozen=True)
class TaskData:
    """One task batch's episodes and their normalised advantages ``[T, K, E]``."""

    episodes: Episodes
    advantages: Tensor


class MAMLTRPO:
    """The MAML-TRPO meta-learner for a Gaussian MLP policy (owns nothing but references)."""

    def __init__(self, policy: GaussianMLPPolicy, settings: MAMLTRPOConfig):
        """``settings``: the run's config, of which the step reads the optimisation options
        (``num_steps``, ``fast_lr``, ``first_order``, the TRPO, GAE and curvature options)."""
        if settings.curvature not in CURVATURES:
            raise ValueError(f"curvature={settings.curvature!r} is not valid; choose from: "
                             f"{', '.join(CURVATURES)}")
        if not 0.0 < settings.hvp_subsample <= 1.0:
            raise ValueError(f"hvp_subsample={settings.hvp_subsample} must be in (0, 1]")
        self.policy = policy
        self.settings = settings

    # --- the pieces of the meta-iteration (docs/protocol.md) ------------------------------------

    def process(self, episodes: Episodes) -> TaskData:
        """Fit the baseline per task, compute GAE and normalise per task (step 2 / 4)."""
        return process_episodes(episodes, self.settings.gamma, self.settings.gae_lambda)

    def inner_loss(self, params: Params, data: TaskData) -> Tensor:
        """Σ_i L_VPG(θ_i; D_i), L_VPG = -mean over valid steps of log π(a|o) · A.

        The sum of independent per-task losses, so its gradient with respect to task-stacked
        params is every task's own gradient (see ``metarl.core.maml``).
        """
        ep = data.episodes
        log_probs = self.policy.log_prob(params, ep.observations, ep.actions)
        return -(masked_task_mean(log_probs * data.advantages, ep.mask)).sum()

    def adapt(self, params: Params, data: TaskData, *, first_order: bool | None = None) -> Params:
        """θ'_i for every task: ``num_steps`` VPG steps from shared ``params`` (step 3)."""
        s = self.settings
        first_order = s.first_order if first_order is None else first_order
        return adapt(self.inner_loss, stack_params(params, data.episodes.num_tasks), data,
                     num_steps=s.num_steps, step_size=s.fast_lr, first_order=first_order)

    def surrogate(self, adapted: Params, data: TaskData) -> Tensor:
        """Mean over tasks of the importance-weighted advantage on the post-update episodes."""
        return self._surrogate_of(self.policy.mean_and_log_std(adapted, data.episodes.observations),
                                  data)

    def _surrogate_of(self, outputs: tuple[Tensor, Tensor], data: TaskData) -> Tensor:
        ep = data.episodes
        ratio = torch.exp(gaussian_log_prob(*outputs, ep.actions) - ep.log_probs)
        return masked_task_mean(ratio * data.advantages, ep.mask).mean()

    def mean_kl(self, old: tuple[Tensor, Tensor], adapted: Params, episodes: Episodes) -> Tensor:
        """Mean over tasks and valid steps of KL(π_old ‖ π_adapted) on ``episodes``."""
        return mean_kl_of(old, self.policy.mean_and_log_std(adapted, episodes.observations),
                           episodes.mask)

    # --- one outer step ------------------------------------------------------------------------

    def step(self, train_data: TaskData, valid_data: TaskData,
             generator: torch.Generator | None = None, *,
             adapted: Params | None = None) -> StepInfo:
        """One TRPO step on θ (the policy's parameters) from processed pre-update episodes D_i
        and post-update episodes D'_i (``process``).

        ``generator`` draws the episode subsample for the curvature products. ``adapted``:
        ``self.adapt(parameters_of(self.policy), train_data)`` if the caller already has it,
        graph included (the trainer computes it to sample D'_i); computed here otherwise.
        """
        s = self.settings
        theta = parameters_of(self.policy)
        valid = valid_data.episodes

        if adapted is None:
            adapted = self.adapt(theta, train_data)
        objective = self.surrogate(adapted, valid_data)
        base = objective.item()
        if not math.isfinite(base):
            raise NonFiniteError(f"the surrogate is {base}")
        g = flat_grad(objective, theta, retain_graph=False)
        bad = int((~torch.isfinite(g)).sum())
        if bad:
            raise NonFiniteError(f"the meta-gradient is non-finite ({bad} of {g.numel()} entries)")
        adapted_now = {k: v.detach() for k, v in adapted.items()}
        with torch.no_grad():
            old = self.policy.mean_and_log_std(adapted_now, valid.observations)

        curvature = self.curvature_product(theta, train_data, valid_data, generator,
                                           adapted_now=adapted_now)
        full_step = trpo_full_step(g, curvature, max_kl=s.max_kl, cg_iters=s.cg_iters)

        theta_flat = flatten({k: v.detach() for k, v in theta.items()})

        def evaluate(step: Tensor) -> tuple[float, float]:
            moved = {k: v.requires_grad_(True)
                     for k, v in unflatten(theta_flat + step, theta).items()}
            new = self.adapt(moved, train_data, first_order=True)
            with torch.no_grad():
                outputs = self.policy.mean_and_log_std({k: v.detach() for k, v in new.items()},
                                                       valid.observations)
                return (self._surrogate_of(outputs, valid_data).item() - base,
                        mean_kl_of(old, outputs, valid.mask).item())

        result = line_search(evaluate, full_step, max_kl=s.max_kl, max_steps=s.ls_max_steps,
                             backtrack_ratio=s.ls_backtrack_ratio)
        if result.accepted:
            with torch.no_grad():
                update = unflatten(result.step_fraction * full_step, theta)
                for name, p in theta.items():
                    p.add_(update[name])
        return StepInfo(result.accepted, result.kl, result.improvement, result.steps_tried,
                        result.step_fraction, g.norm().item(), result.non_finite)

    def curvature_product(self, theta: Params, train: TaskData, valid: TaskData,
                          generator: torch.Generator | None, *,
                          adapted_now: Params | None = None):
        """``v -> (∇²KL + damping) v`` at the current θ.

        With ``hvp_subsample < 1`` the products use the same random fraction of each task's
        pre- and post-update episodes: the derivative of the inner update comes from the
        subsampled pre-update episodes, while its value stays the full-data θ'_i (the
        ``detach`` below), and the KL is taken on the subsampled post-update episodes. At 1.0
        this is exactly the full product. ``adapted_now``: θ'_i at the current θ, if known.
        """
        s = self.settings
        train_part, valid_part = train, valid
        if s.hvp_subsample < 1.0:
            index = subsample_index(train.episodes.episodes_per_task, s.hvp_subsample,
                                    generator).to(train.advantages.device)
            train_part = TaskData(take_episodes(train.episodes, index), train.advantages[:, :, index])
            valid_part = TaskData(take_episodes(valid.episodes, index), valid.advantages[:, :, index])
        episodes = valid_part.episodes
        if adapted_now is None:
            adapted_now = {k: v.detach() for k, v in self.adapt(
                {k: v.detach().requires_grad_(True) for k, v in theta.items()}, train,
                first_order=True).items()}

        def adapted(p: Params) -> Params:
            """θ'(p) with the value of the full-data update and the subsample's derivative."""
            part = self.adapt(p, train_part)
            if train_part is train:
                return part
            return {k: part[k] + (adapted_now[k] - part[k]).detach() for k in part}

        if s.curvature == "exact":
            with torch.no_grad():
                old = self.policy.mean_and_log_std(adapted_now, episodes.observations)
            return hessian_vector_product(lambda p: self.mean_kl(old, adapted(p), episodes),
                                          theta, damping=s.cg_damping)

        weights = _task_mean_weights(episodes.mask)  # [T, K, E]: each sample's weight in the mean

        def outputs(p: Params) -> tuple[Tensor, Tensor]:
            return self.policy.mean_and_log_std(adapted(p), episodes.observations)

        def fisher(y: tuple[Tensor, Tensor]) -> list[Tensor]:
            mean_w, log_std_w = diagonal_gaussian_fisher(*y)
            w = weights.unsqueeze(-1)
            return [mean_w * w, log_std_w * w]

        return gauss_newton_vector_product(outputs, theta, fisher, damping=s.cg_damping)


def process_episodes(episodes: Episodes, gamma: float, gae_lambda: float) -> TaskData:
    """The episodes with their advantages ``[T, K, E]``: the linear baseline fitted per task to
    the discounted returns, GAE(γ, λ) on it, normalised per task over the valid steps."""
    returns = discounted_returns(episodes.rewards, episodes.mask, gamma)
    values = baseline_values(episodes.observations, returns, episodes.mask).to(returns.dtype)
    advantages = gae(episodes.rewards, values, episodes.mask, gamma, gae_lambda)
    return TaskData(episodes, normalize_advantages(advantages, episodes.mask))


def subsample_index(count: int, fraction: float, generator: torch.Generator | None) -> Tensor:
    """Sorted random ``ceil(fraction · count)`` indices out of ``count`` (at least one)."""
    keep = min(count, max(1, math.ceil(fraction * count)))
    return torch.randperm(count, generator=generator)[:keep].sort().values


def take_episodes(episodes: Episodes, index: Tensor) -> Episodes:
    """The episodes ``index`` of every task (the same indices for all tasks)."""
    return Episodes(
        observations=episodes.observations[:, :, index], actions=episodes.actions[:, :, index],
        rewards=episodes.rewards[:, :, index], log_probs=episodes.log_probs[:, :, index],
        mask=episodes.mask[:, :, index], lengths=episodes.lengths[:, index],
        terminated=episodes.terminated[:, index], non_finite=episodes.non_finite[:, index])


def masked_task_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per-task mean of ``x [T, K, E]`` over valid steps: ``[K]``."""
    return (x * mask).sum(dim=(0, 2)) / mask.sum(dim=(0, 2)).clamp_min(1.0)


def mean_kl_of(old: tuple[Tensor, Tensor], new: tuple[Tensor, Tensor], mask: Tensor) -> Tensor:
    """Mean over tasks of the per-task mean over valid steps of ``KL(old ‖ new)``, each policy
    a ``(mean, log_std)`` pair ``[T, K, E, act]``; a scalar."""
    return masked_task_mean(gaussian_kl(*old, *new), mask).mean()


def _task_mean_weights(mask: Tensor) -> Tensor:
    """Weights ``w [T, K, E]`` with Σ w·x = mean over tasks of the per-task masked mean of x."""
    counts = mask.sum(dim=(0, 2), keepdim=True).clamp_min(1.0)
    return mask / counts / mask.shape[1]
