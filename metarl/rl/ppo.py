"""PPO's maths for RL²: GAE over a whole trial and the clipped surrogate.

PPO: Schulman, Wolski, Dhariwal, Radford & Klimov, "Proximal Policy Optimization Algorithms",
arXiv:1707.06347, 2017. GAE: Schulman, Moritz, Levine, Jordan & Abbeel, "High-Dimensional
Continuous Control Using Generalized Advantage Estimation", ICLR 2016. RL²: Duan et al. 2016.

Layout: time-major, ``[T, *B]`` (a trial batch ``[T, K, M]``: time, tasks, trials); ``mask_t``
1 where step t was taken, 0 at the masked rest of an episode slot
(:mod:`metarl.rl.trial_sampler`). Values at masked steps are ignored and outputs there are 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.rl.returns import _check_discount, _same_shape, _valid


def trial_gae(r_t: Tensor, v_t: Tensor, mask_t: Tensor, gamma: float, lam: float) -> Tensor:
    """GAE over a whole trial, its episodes back to back (RL²'s objective is the trial's return).

    ::

        t⁺ = the next valid step after t (the same trial, maybe the next episode), none at the end
        δ_t = r_t + γ v_{t⁺} - v_t                 (v_{t⁺} = 0 where t is the trial's last step)
        A_t = δ_t + γ λ A_{t⁺}

    Masked steps are skipped, not cut: the gap an episode that terminated early leaves in its
    slot does not stop the bootstrap, and neither does the end of an inner episode (its done
    flag, termination or truncation, is an input of the policy, not the end of the return):
    the value of episode j's last step bootstraps from episode j+1's first. Only the end of the
    trial does (its value 0: the trial is over, whether or not its last episode terminated).
    On a trial without gaps this is ``returns.gae`` with ``mask_t`` all ones.

    Args:
        r_t: rewards ``[T, *B]``.
        v_t: value estimates ``[T, *B]``.
        mask_t: ``[T, *B]``, nonzero at valid steps.
        gamma: discount γ in [0, 1].
        lam: GAE λ in [0, 1].

    Returns:
        ``A_t`` ``[T, *B]``, 0 at masked steps.
    """
    _check_discount("gamma", gamma)
    _check_discount("lam", lam)
    valid = _valid(mask_t, r_t, "r_t")
    _same_shape("v_t", v_t, "r_t", r_t)
    r_t = torch.where(valid, r_t, 0.0)
    v_t = torch.where(valid, v_t, 0.0)
    out = torch.zeros_like(r_t)
    a = torch.zeros_like(r_t[0])
    next_v = torch.zeros_like(r_t[0])
    for t in reversed(range(r_t.shape[0])):
        here = r_t[t] + gamma * next_v - v_t[t] + gamma * lam * a
        out[t] = torch.where(valid[t], here, 0.0)
        a = torch.where(valid[t], here, a)          # masked steps carry A_{t⁺} and v_{t⁺}
        next_v = torch.where(valid[t], v_t[t], next_v)
    return out


def clipped_surrogate(log_prob: Tensor, old_log_prob: Tensor, adv: Tensor, mask: Tensor,
                      clip_eps: float) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate objective (Schulman et al. 2017, eq. 7), to maximise.

    ::

        ρ_t = exp(log π_θ(a_t|·) - log π_old(a_t|·))
        L = Σ_t m_t min(ρ_t A_t, clip(ρ_t, 1 - ε, 1 + ε) A_t) / Σ_t m_t

    Args:
        log_prob: ``[T, *B]`` under the current parameters (differentiable).
        old_log_prob: ``[T, *B]`` under the sampling policy.
        adv: ``[T, *B]`` advantages.
        mask: ``[T, *B]``, nonzero at valid steps.
        clip_eps: ε > 0.

    Returns:
        ``(L, clip_fraction)``: the objective (a scalar) and the fraction of valid steps whose
        ratio lies outside ``[1 - ε, 1 + ε]`` (a diagnostic, not differentiable).
    """
    if not clip_eps > 0:
        raise ValueError(f"clip_eps must be > 0, got {clip_eps}")
    valid = _valid(mask, adv, "adv")
    for name, x in (("log_prob", log_prob), ("old_log_prob", old_log_prob)):
        _same_shape(name, x, "adv", adv)
    count = valid.sum().clamp_min(1)
    log_ratio = torch.where(valid, log_prob - old_log_prob, 0.0)
    ratio = log_ratio.exp()
    adv = torch.where(valid, adv, 0.0)
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    objective = torch.minimum(ratio * adv, clipped * adv)
    outside = ((ratio - 1.0).abs() > clip_eps) & valid
    return (torch.where(valid, objective, 0.0).sum() / count,
            outside.sum().detach().to(adv.dtype) / count)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """``Σ m x / Σ m`` over every axis (0 where no step is valid)."""
    valid = _valid(mask, x, "x")
    return torch.where(valid, x, 0.0).sum() / valid.sum().clamp_min(1)
