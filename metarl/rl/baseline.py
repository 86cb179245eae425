"""The linear-feature baseline (Duan et al. 2016), fitted afresh for every task, all tasks at once.

Features of the observation o_t at step t of its episode (docs/protocol.md)::

    x_t = m_t [o_t, o_t², τ, τ², τ³, 1],   τ = t / 100,

zero at masked (padding) steps so that they contribute nothing to the fit. Observations are not
clipped. For each task k the weights solve the ridge normal equations over that task's valid
steps (all its episodes pooled)::

    (X_kᵀ X_k + c I) w_k = X_kᵀ G_k

with G the discounted returns and c = 1e-5. All K systems are factored in one batched Cholesky
call; a task whose matrix is numerically not positive definite (Cholesky ``info > 0``) or whose
weights come out non-finite is retried alone with c raised ×10, at most ``max_tries`` times,
after which ``BaselineFitError`` names the tasks that failed (``NonFiniteBaselineError``, also a
``NonFiniteError``, where their features or returns hold NaN/inf: observations too large to
square in float32, say, so that training stops as diverged). The normal equations are formed and
solved in float64 by default: in float32 the entries of XᵀX (up to ~1e7 for a few thousand
steps) swamp the regulariser, and rank-deficient features (a constant observation) fail.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.nonfinite import NonFiniteError

TIME_SCALE = 100.0


class BaselineFitError(RuntimeError):
    """The baseline's normal equations stayed ill-conditioned however large the regulariser."""


class NonFiniteBaselineError(BaselineFitError, NonFiniteError):
    """The baseline could not be fitted because its features or returns hold NaN/inf."""


def baseline_features(obs_t: Tensor, mask_t: Tensor) -> Tensor:
    """``x_t = m_t [o_t, o_t², τ, τ², τ³, 1]`` with ``τ = t / 100`` (t: index on axis 0).

    Args:
        obs_t: observations ``[T, *B, O]`` (e.g. ``[T, K, E, O]``).
        mask_t: ``[T, *B]``, nonzero at valid steps.

    Returns:
        Features ``[T, *B, 2 O + 4]``, zero at masked steps.
    """
    if obs_t.dim() < 2:
        raise ValueError(f"obs_t must be [T, *B, O], got shape {tuple(obs_t.shape)}")
    if mask_t.shape != obs_t.shape[:-1]:
        raise ValueError(
            f"mask_t has shape {tuple(mask_t.shape)}; for obs_t of shape {tuple(obs_t.shape)} "
            f"it must be {tuple(obs_t.shape[:-1])}"
        )
    if not obs_t.is_floating_point():
        raise TypeError(f"obs_t must be a floating-point tensor, got {obs_t.dtype}")
    num_obs = obs_t.shape[-1]
    x = torch.empty(*obs_t.shape[:-1], 2 * num_obs + 4, dtype=obs_t.dtype, device=obs_t.device)
    x[..., :num_obs] = obs_t
    x[..., num_obs : 2 * num_obs] = obs_t.square()
    tau = torch.arange(obs_t.shape[0], dtype=obs_t.dtype, device=obs_t.device) / TIME_SCALE
    tau = tau.view(-1, *([1] * (obs_t.dim() - 2)))
    for power in range(1, 4):
        x[..., 2 * num_obs + power - 1] = tau**power
    x[..., -1] = 1.0
    return x.masked_fill_((mask_t == 0).unsqueeze(-1), 0.0)


def fit_linear_baseline(
    features: Tensor,
    returns: Tensor,
    mask: Tensor,
    reg: float = 1e-5,
    max_tries: int = 5,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """One ridge regression of returns on features per task, batched over tasks.

    ``w_k = (X_kᵀ X_k + c I)⁻¹ X_kᵀ G_k`` over the valid steps of task k; c starts at ``reg``
    and is raised ×10 for the tasks whose solve failed (see the module docstring).

    Args:
        features: ``[T, K, E, F]`` from ``baseline_features``.
        returns: discounted returns ``[T, K, E]``.
        mask: ``[T, K, E]``, nonzero at valid steps.
        reg: initial regulariser c > 0.
        max_tries: how many regularisers (c, 10c, 100c, ...) to try before giving up.
        dtype: precision of the normal equations and of the returned weights.

    Returns:
        Weights ``[K, F]`` in ``dtype``.

    Raises:
        BaselineFitError: some task still failed with regulariser ``reg · 10^(max_tries-1)``.
    """
    return _fit(features, returns, mask, reg, max_tries, dtype)[1]


def baseline_values(
    obs_t: Tensor, returns_t: Tensor, mask_t: Tensor, reg: float = 1e-5, max_tries: int = 5
) -> Tensor:
    """Fit a fresh baseline per task and evaluate it on the same steps: ``[T, K, E]``.

    ``v_t = x_tᵀ w_k`` with ``w = fit_linear_baseline(x, returns_t, mask_t)`` (float64), returned
    in the features' dtype; 0 at masked steps. ``obs_t [T, K, E, O]``, ``returns_t``
    (discounted) and ``mask_t`` ``[T, K, E]``.
    """
    features = baseline_features(obs_t, mask_t)
    if returns_t.shape != mask_t.shape or features.dim() != 4:
        raise ValueError(
            f"expected obs_t [T, K, E, O] and returns_t, mask_t [T, K, E]; got {tuple(obs_t.shape)}, "
            f"{tuple(returns_t.shape)}, {tuple(mask_t.shape)}"
        )
    x, weights = _fit(features, returns_t, mask_t, reg, max_tries, torch.float64)
    return _from_task_major(x @ weights.unsqueeze(-1), features)


def _fit(
    features: Tensor, returns: Tensor, mask: Tensor, reg: float, max_tries: int, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """``fit_linear_baseline``, also returning the features' task-major copy ``[K, T·E, F]``.

    One copy serves the fit and the prediction; large fresh tensors are costly to allocate.
    """
    if features.dim() != 4:
        raise ValueError(f"features must be [T, K, E, F], got shape {tuple(features.shape)}")
    for name, x in (("returns", returns), ("mask", mask)):
        if x.shape != features.shape[:-1]:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}; for features of shape "
                f"{tuple(features.shape)} it must be {tuple(features.shape[:-1])}"
            )
    if not reg > 0:
        raise ValueError(f"reg must be > 0 (it is raised x10 on failure), got {reg}")
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")
    valid = mask != 0
    x = _task_major(features, valid, dtype)
    return x, _solve_ridge(x, _task_major(returns.unsqueeze(-1), valid, dtype), reg, max_tries)


def _solve_ridge(x: Tensor, y: Tensor, reg: float, max_tries: int) -> Tensor:
    """``w_k = (x_kᵀ x_k + c I)⁻¹ x_kᵀ y_k`` for ``x [K, N, F]``, ``y [K, N, 1]`` -> ``[K, F]``."""
    num_tasks, num_features = x.shape[0], x.shape[-1]
    xt = x.transpose(1, 2)
    gram = xt @ x  # [K, F, F]
    rhs = xt @ y  # [K, F, 1]
    eye = torch.eye(num_features, dtype=x.dtype, device=x.device)
    weights = torch.zeros(num_tasks, num_features, dtype=x.dtype, device=x.device)
    todo = torch.arange(num_tasks, device=x.device)
    c = float(reg)
    for _ in range(max_tries):
        chol, info = torch.linalg.cholesky_ex(gram[todo] + c * eye)
        w = torch.cholesky_solve(rhs[todo], chol).squeeze(-1)
        ok = (info == 0) & torch.isfinite(w).all(dim=-1)
        weights[todo[ok]] = w[ok]
        todo = todo[~ok]
        if todo.numel() == 0:
            return weights
        c *= 10.0
    bad = todo.tolist()
    nonfinite = not bool(torch.isfinite(gram[todo]).all() and torch.isfinite(rhs[todo]).all())
    raise (NonFiniteBaselineError if nonfinite else BaselineFitError)(
        f"linear baseline: the normal equations of task(s) {bad} stayed ill-conditioned with "
        f"regulariser {reg:g} raised x10 up to {c / 10:g} ({max_tries} tries)"
        + ("; their features or returns hold NaN/inf at valid steps" if nonfinite else "")
    )


def _task_major(x: Tensor, valid: Tensor, dtype: torch.dtype) -> Tensor:
    """``[T, K, E, F] -> [K, T·E, F]`` in ``dtype``, zero where not ``valid [T, K, E]``.

    One copy (cast and transpose together).
    """
    t, k, e, f = x.shape
    out = torch.empty(k, t, e, f, dtype=dtype, device=x.device)
    out.copy_(x.movedim(1, 0))
    out.masked_fill_(~valid.movedim(1, 0).unsqueeze(-1), 0.0)
    return out.view(k, t * e, f)


def _from_task_major(v: Tensor, like: Tensor) -> Tensor:
    """``[K, T·E, 1] -> [T, K, E]`` in ``like``'s dtype (``like``: ``[T, K, E, F]``)."""
    t, k, e, _ = like.shape
    return v.view(k, t, e).movedim(0, 1).to(like.dtype).contiguous()
