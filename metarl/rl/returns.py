"""Discounted returns, generalised advantage estimation (GAE) and advantage normalisation.

Layout: time-major. Every tensor is ``[T, *B]``: axis 0 is time, the rest any batch shape
(``[T, K, E]`` in an ``Episodes`` batch: tasks, episodes). ``mask_t`` is 1 where step t lies
inside its episode and 0 after the episode has ended; values at masked steps are ignored (they
may hold anything, NaN included) and the outputs there are 0.

How an episode ends decides the value of the state after its last valid step:

* termination (``Episodes.terminated``): the next state is terminal, its value is 0;
* truncation (the horizon, a time limit): the episode could have gone on. The reference MAML
  implementations (rllab, pytorch-maml-rl) do not bootstrap here either, so by default the value
  after the last step is 0 in both cases. To bootstrap, pass ``bootstrap_v`` to ``gae``: the
  value of the state following each episode's last step (0 where it terminated).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def discounted_returns(r_t: Tensor, mask_t: Tensor, gamma: float) -> Tensor:
    """Reward-to-go within each episode.

    ``G_t = m_t (r_t + γ G_{t+1})``, ``G_T = 0``.

    Args:
        r_t: rewards ``[T, *B]``.
        mask_t: ``[T, *B]``, nonzero at valid steps.
        gamma: discount γ in [0, 1].

    Returns:
        ``G_t`` of shape ``[T, *B]``, 0 at masked steps.
    """
    _check_discount("gamma", gamma)
    valid = _valid(mask_t, r_t, "r_t")
    r_t = torch.where(valid, r_t, 0.0)
    out = torch.empty_like(r_t)
    g = torch.zeros_like(r_t[0])
    for t in reversed(range(r_t.shape[0])):
        g = torch.where(valid[t], r_t[t] + gamma * g, 0.0)
        out[t] = g
    return out


def gae(
    r_t: Tensor,
    v_t: Tensor,
    mask_t: Tensor,
    gamma: float,
    lam: float,
    bootstrap_v: Tensor | None = None,
) -> Tensor:
    """Generalised advantage estimates (Schulman et al. 2016, eq. 16).

    ::

        v̂_{t+1} = v_{t+1}       if step t+1 is valid
                 = bootstrap     if step t is the episode's last (0 by default)
        δ_t = r_t + γ v̂_{t+1} - v_t
        A_t = m_t (δ_t + γ λ A_{t+1}),   A_T = 0

    With λ = 1 this is ``G_t - v_t`` (discounted return minus baseline); with λ = 0 the one-step
    TD error.

    Args:
        r_t: rewards ``[T, *B]``.
        v_t: value estimates of the states at each step ``[T, *B]`` (the baseline).
        mask_t: ``[T, *B]``, nonzero at valid steps.
        gamma: discount γ in [0, 1].
        lam: GAE λ in [0, 1].
        bootstrap_v: optional ``[*B]``: value of the state after each episode's last valid step
            (0 for terminated episodes). None, the default, means 0 for every episode: no
            bootstrapping at truncation, as in the reference MAML implementations.

    Returns:
        ``A_t`` of shape ``[T, *B]``, 0 at masked steps.
    """
    _check_discount("gamma", gamma)
    _check_discount("lam", lam)
    valid = _valid(mask_t, r_t, "r_t")
    _same_shape("v_t", v_t, "r_t", r_t)
    if bootstrap_v is None:
        bootstrap_v = torch.zeros_like(r_t[0])
    else:
        _same_shape("bootstrap_v", bootstrap_v, "r_t[0]", r_t[0])
    r_t = torch.where(valid, r_t, 0.0)
    v_t = torch.where(valid, v_t, 0.0)
    out = torch.empty_like(r_t)
    a = torch.zeros_like(r_t[0])
    next_v = bootstrap_v
    for t in reversed(range(r_t.shape[0])):
        delta = r_t[t] + gamma * next_v - v_t[t]
        a = torch.where(valid[t], delta + gamma * lam * a, 0.0)
        out[t] = a
        next_v = torch.where(valid[t], v_t[t], bootstrap_v)
    return out


def normalize_advantages(
    adv: Tensor, mask: Tensor, dims: Sequence[int] = (0, 2), eps: float = 1e-8
) -> Tensor:
    """Standardise advantages over the valid steps, separately for each index of the other axes.

    ``Â = m (A - mean) / (std + eps)`` with mean and (biased) std taken over the valid entries
    of ``dims``. The default ``dims=(0, 2)`` of a ``[T, K, E]`` batch normalises per task, over
    all its steps and episodes. A slice with no valid step gives zeros.

    Args:
        adv: advantages, e.g. ``[T, K, E]``.
        mask: same shape, nonzero at valid steps.
        dims: the axes to reduce over.
        eps: added to the std.

    Returns:
        Normalised advantages, same shape, 0 at masked steps.
    """
    valid = _valid(mask, adv, "adv")
    dims = tuple(dims)
    for d in dims:
        if not -adv.dim() <= d < adv.dim():
            raise ValueError(f"dims={dims} out of range for adv of shape {tuple(adv.shape)}")
    m = valid.to(adv.dtype)
    count = m.sum(dims, keepdim=True).clamp_min(1.0)
    x = torch.where(valid, adv, 0.0)
    mean = x.sum(dims, keepdim=True) / count
    centred = torch.where(valid, x - mean, 0.0)
    std = (centred.square().sum(dims, keepdim=True) / count).sqrt()
    return centred / (std + eps)


def _valid(mask: Tensor, like: Tensor, like_name: str) -> Tensor:
    _same_shape("mask", mask, like_name, like)
    if like.dim() < 1:
        raise ValueError(f"{like_name} needs a time axis 0, got a scalar")
    if not like.is_floating_point():
        raise TypeError(f"{like_name} must be a floating-point tensor, got {like.dtype}")
    return mask != 0


def _same_shape(name: str, x: Tensor, ref_name: str, ref: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(x).__name__}")
    if x.shape != ref.shape:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)} but {ref_name} has {tuple(ref.shape)}; "
            "they must match (time axis 0, then the batch axes)"
        )


def _check_discount(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
