"""The objectives of ProMP (Rothfuss, Lee, Clavera, Asfour and Abbeel, "ProMP: Proximal
Meta-Policy Search", ICLR 2019), as pure functions of log-probabilities and advantages.

Layout: every per-step tensor is time-major ``[T, K, E]`` (time, task, episode) with the
``mask`` of valid steps; each objective is a per-task mean over the valid steps, ``[K]``.

The inner step's objective, the low-variance curvature (LVC) estimator (paper, eq. 9)::

    J^LVC_i(θ) = E_τ~π_θ [ Σ_t π_θ(a_t|s_t) / ⊥π_θ(a_t|s_t) · A_t ]      (⊥: stop gradient)

Its gradient is the policy gradient E[Σ_t ∇log π_θ(a_t|s_t) A_t], as that of the plain VPG
objective ``Σ_t log π_θ(a_t|s_t) A_t`` MAML's implementations use; its Hessian keeps the
score-function term of each step, Σ_t (∇log π_t ∇log π_tᵀ + ∇²log π_t) A_t, that the VPG
objective's Hessian Σ_t ∇²log π_t A_t lacks, and drops the products across time steps that make
the unbiased (DiCE) estimate's variance grow with the horizon.

The outer objective (paper, eqs. 10-12): PPO's clipped surrogate of the post-update episodes
through the inner step, minus a KL penalty that keeps θ near the θ_o that sampled::

    J^ProMP(θ) = 1/K Σ_i mean_t min(r_t A'_t, clip(r_t, 1-ε, 1+ε) A'_t) - η KL̄(π_θo ‖ π_θ),
    r_t = π_θ'_i(θ)(a_t|s_t) / π_θ'_i,o(a_t|s_t),   θ'_i(θ) = θ + α ∇_θ J^LVC_i(θ)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from metarl.rl.maml_trpo import masked_task_mean, mean_kl_of


def _check_shapes(mask: Tensor, **tensors: Tensor) -> None:
    for name, x in tensors.items():
        if x.shape != mask.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, the mask {tuple(mask.shape)}: "
                             "every per-step tensor is [T, K, E]")


def vpg_objective(log_probs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """The plain policy-gradient objective ``J^VPG_i = mean_t log π_θ(a_t|s_t) A_t``, ``[K]``.

    ``log_probs``, ``advantages``, ``mask``: ``[T, K, E]``. Its gradient is the policy gradient;
    its Hessian, ``mean_t ∇²log π_t A_t``, lacks the score-function term (the bias of MAML's
    implementations that ProMP corrects).
    """
    _check_shapes(mask, log_probs=log_probs, advantages=advantages)
    return masked_task_mean(log_probs * advantages, mask)


def lvc_objective(log_probs: Tensor, sampling_log_probs: Tensor, advantages: Tensor,
                  mask: Tensor) -> Tensor:
    """The LVC objective ``J^LVC_i = mean_t π_θ(a_t|s_t) / π_o(a_t|s_t) · A_t``, ``[K]``.

    ``log_probs``: ``log π_θ`` of the episodes' actions (differentiable in θ);
    ``sampling_log_probs``: ``log π_o`` of the policy that sampled them (constants); both and
    ``advantages``, ``mask``: ``[T, K, E]``. With ``sampling_log_probs = log_probs.detach()``
    this is the paper's ``π_θ / ⊥π_θ``; with the sampling policy's own log-probabilities it is
    the same function of θ wherever θ = θ_o (value, gradient and Hessian), and away from θ_o
    (ProMP's later outer steps on the same episodes) it importance-weights each step by
    ``π_θ / π_o``, as the authors' implementation does.
    """
    _check_shapes(mask, log_probs=log_probs, sampling_log_probs=sampling_log_probs,
                  advantages=advantages)
    ratio = torch.exp(log_probs - sampling_log_probs.detach())
    return masked_task_mean(ratio * advantages, mask)


def clipped_surrogate(log_probs: Tensor, sampling_log_probs: Tensor, advantages: Tensor,
                      mask: Tensor, clip_eps: float) -> Tensor:
    """PPO's clipped surrogate ``L^CLIP_i = mean_t min(r_t A_t, clip(r_t, 1-ε, 1+ε) A_t)``,
    ``r_t = exp(log_probs - sampling_log_probs)``; all inputs ``[T, K, E]``; returns ``[K]``.

    Where the ratio has left ``[1-ε, 1+ε]`` in the direction the advantage favours, the term is
    constant: its gradient is 0 (Schulman et al. 2017, eq. 7).
    """
    if not 0.0 < clip_eps < 1.0:
        raise ValueError(f"clip_eps={clip_eps} must be in (0, 1)")
    _check_shapes(mask, log_probs=log_probs, sampling_log_probs=sampling_log_probs,
                  advantages=advantages)
    ratio = torch.exp(log_probs - sampling_log_probs.detach())
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    return masked_task_mean(torch.minimum(ratio * advantages, clipped * advantages), mask)


def clip_fraction(log_probs: Tensor, sampling_log_probs: Tensor, mask: Tensor,
                  clip_eps: float) -> float:
    """The fraction of valid steps whose ratio ``r_t`` is outside ``[1-ε, 1+ε]``."""
    ratio = torch.exp(log_probs - sampling_log_probs)
    outside = ((ratio - 1.0).abs() > clip_eps).to(mask.dtype) * mask
    return (outside.sum() / mask.sum().clamp_min(1.0)).item()


def kl_penalty(old: tuple[Tensor, Tensor], new: tuple[Tensor, Tensor], mask: Tensor,
               coef: float) -> Tensor:
    """``η KL̄(π_o ‖ π_θ)``: ``coef`` times the mean over tasks of each task's mean over valid
    steps of the Gaussian KL; ``old``, ``new``: ``(mean, log_std)`` ``[T, K, E, act]`` (``old``
    constant); a scalar."""
    if not (math.isfinite(coef) and coef >= 0.0):
        raise ValueError(f"the KL coefficient {coef} must be a finite number >= 0")
    return coef * mean_kl_of(old, new, mask)


def adapt_kl_coef(coef: float, kl: float, target: float) -> float:
    """PPO's adaptive KL coefficient (Schulman et al. 2017, sec. 4; ProMP's ``adapt_kl_coeff``)::

        η ← η / 2   if KL < target / 1.5
        η ← η · 2   if KL > target · 1.5
        η           otherwise

    A non-finite ``kl`` is a ValueError (it would move η either way silently).
    """
    if not math.isfinite(kl):
        raise ValueError(f"the inner KL is {kl}; the adaptive KL coefficient needs a finite one")
    if not target > 0.0:
        raise ValueError(f"target={target} must be > 0")
    if kl < target / 1.5:
        return coef / 2.0
    if kl > target * 1.5:
        return coef * 2.0
    return coef
