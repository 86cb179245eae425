"""The arithmetic of a TRPO step (Schulman et al. 2015, appendix C), on parameter dicts.

Parameters are ``{name: Tensor}`` dicts as in ``metarl.core.maml``; vectors in parameter space
are flat ``[P]`` tensors in the dict's order (``flatten`` / ``unflatten``). One step::

    g   = ∇_θ L(θ)                        flat_grad
    s   ≈ H⁻¹ g                           conjugate_gradient with v -> (H + damping I) v
                                          (``conjugate_gradient_with_product`` also gives Hs)
    β   = sqrt(2 δ / sᵀ H s)              step_scale; full step β s (trpo_full_step)
    θ'  = θ + fracᵢ β s,  fracᵢ = ratioⁱ   line_search: first i with L(θ') > L(θ), KL ≤ δ

H is the Hessian of the mean KL at the current θ, as an exact double-backprop product
(``hessian_vector_product``) or in Gauss-Newton form ``Jᵀ F J``
(``gauss_newton_vector_product``), which equals it at the current point and needs one order
of differentiation less. Both build their graph once and reuse it for every product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Params = Mapping[str, Tensor]
VectorProduct = Callable[[Tensor], Tensor]


def flatten(tensors: Params | Sequence[Tensor]) -> Tensor:
    """Concatenate tensors (a dict's values in order) into one flat vector ``[P]``."""
    values = list(tensors.values()) if isinstance(tensors, Mapping) else list(tensors)
    if not values:
        raise ValueError("nothing to flatten: no tensors given")
    return torch.cat([t.reshape(-1) for t in values])


def unflatten(flat: Tensor, like: Params) -> dict[str, Tensor]:
    """Split ``flat [P]`` into a dict with the names and shapes of ``like`` (views of ``flat``)."""
    sizes = [t.numel() for t in like.values()]
    if flat.dim() != 1 or flat.numel() != sum(sizes):
        raise ValueError(
            f"flat vector has shape {tuple(flat.shape)}; the parameters need [{sum(sizes)}]"
        )
    chunks = torch.split(flat, sizes)
    return {name: c.view_as(t) for (name, t), c in zip(like.items(), chunks)}


def flat_grad(
    output: Tensor, params: Params, *, retain_graph: bool | None = None, create_graph: bool = False
) -> Tensor:
    """``∇_θ output`` as a flat ``[P]`` vector; parameters the output does not use get zeros."""
    tensors = list(params.values())
    grads = torch.autograd.grad(
        output, tensors, retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
    )
    return flatten([torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads)])


def hessian_vector_product(
    f: Callable[[Params], Tensor] | Tensor, params: Params, *, damping: float = 0.0
) -> VectorProduct:
    """``v -> (∇²_θ f) v + damping v`` by double backprop.

    ``g = ∇_θ f`` is built once with ``create_graph=True``; each product is then one backward
    pass ``∇_θ (gᵀ v)`` through that retained graph, so a CG loop pays for ``g`` only once.

    Args:
        f: a scalar, or a function ``f(params) -> scalar`` (called once here).
        params: ``{name: Tensor}`` requiring grad; the flat order of ``v`` follows it.
        damping: added multiple of v (``cg_damping``).

    Returns:
        ``hvp(v [P]) -> [P]`` (not itself differentiable).
    """
    tensors = list(params.values())
    output = f(params) if callable(f) else f
    _check_scalar(output, "f")
    g = flat_grad(output, params, create_graph=True)
    size = g.numel()

    def hvp(v: Tensor) -> Tensor:
        _check_vector(v, size)
        if not g.requires_grad:  # f is linear in θ: zero Hessian
            return damping * v
        hv = torch.autograd.grad(g, tensors, grad_outputs=v, retain_graph=True, allow_unused=True)
        flat = flatten([torch.zeros_like(t) if h is None else h for t, h in zip(tensors, hv)])
        return flat + damping * v

    return hvp


def gauss_newton_vector_product(
    outputs_fn: Callable[[Params], Tensor | Sequence[Tensor]],
    params: Params,
    fisher_fn: Callable[[tuple[Tensor, ...]], Sequence[Tensor | float]],
    *,
    damping: float = 0.0,
) -> VectorProduct:
    """``v -> Jᵀ F J v + damping v`` for outputs ``y(θ)`` and a diagonal weight F on them.

    If ``D(θ) = Σ_n d(y_n(θ_old); y_n(θ))`` with each ``d`` minimised (value and gradient 0) at
    ``θ = θ_old``, its Hessian there is exactly ``Jᵀ F J`` with ``F = ∇²_y d``: the terms with
    second derivatives of y vanish. For the mean KL of a diagonal Gaussian policy, y = (mean,
    log_std) through whatever maps θ to them (the MAML inner update included) and F is
    ``diagonal_gaussian_fisher`` times each sample's weight in the mean.

    ``J v`` comes from the double-vjp trick: ``u -> Jᵀ u`` is linear in a dummy ``u``, so
    ``J v = ∇_u (Jᵀ u)ᵀ v``. Then ``Jᵀ (F J v)`` is one vjp. The graphs of ``y`` and ``Jᵀ u``
    are built once; no derivative of order higher than that of ``J`` is ever formed.

    Args:
        outputs_fn: ``outputs_fn(params) -> y`` (a tensor or tuple of tensors), called once.
        params: ``{name: Tensor}`` requiring grad.
        fisher_fn: ``fisher_fn(y) -> weights``, one per output, broadcastable to it (treated as
            constants); ``F J v = weights * (J v)``.
        damping: added multiple of v.

    Returns:
        ``gnvp(v [P]) -> [P]``.
    """
    tensors = list(params.values())
    outputs = outputs_fn(params)
    outputs = (outputs,) if isinstance(outputs, Tensor) else tuple(outputs)
    weights = list(fisher_fn(tuple(y.detach() for y in outputs)))
    if len(weights) != len(outputs):
        raise ValueError(f"fisher_fn gave {len(weights)} weights for {len(outputs)} outputs")
    dummies = [torch.zeros_like(y, requires_grad=True) for y in outputs]
    jt_u = torch.autograd.grad(
        outputs, tensors, grad_outputs=dummies, create_graph=True, allow_unused=True
    )
    used = [i for i, j in enumerate(jt_u) if j is not None and j.requires_grad]
    size = sum(t.numel() for t in tensors)

    def gnvp(v: Tensor) -> Tensor:
        _check_vector(v, size)
        if not used:  # the outputs do not depend on θ
            return damping * v
        vs = list(torch.split(v, [t.numel() for t in tensors]))
        jv = torch.autograd.grad(
            [jt_u[i] for i in used],
            dummies,
            grad_outputs=[vs[i].view_as(tensors[i]) for i in used],
            retain_graph=True,
            allow_unused=True,
        )
        fjv = []
        for y, w, j in zip(outputs, weights, jv):
            fj = torch.zeros_like(y) if j is None else (w * j).expand_as(y)
            fjv.append(fj)
        back = torch.autograd.grad(
            outputs, tensors, grad_outputs=fjv, retain_graph=True, allow_unused=True
        )
        flat = flatten([torch.zeros_like(t) if b is None else b for t, b in zip(tensors, back)])
        return flat + damping * v

    return gnvp


def diagonal_gaussian_fisher(mean: Tensor, log_std: Tensor) -> tuple[Tensor, Tensor]:
    """Fisher weights of ``N(mean, exp(log_std)²)`` in (mean, log_std): ``(1/σ², 2)``.

    The Hessian of ``KL(N(μ₀, σ₀) ‖ N(μ, σ))`` in ``(μ, log σ)`` at ``(μ₀, σ₀)``, per dimension.
    Returns detached tensors shaped like ``mean`` and ``log_std``.
    """
    log_std = log_std.detach()
    return torch.exp(-2.0 * log_std).expand_as(mean), torch.full_like(log_std, 2.0)


def conjugate_gradient(
    Avp: VectorProduct, b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """``x ≈ A⁻¹ b`` for symmetric positive-definite A given as ``Avp(v) = A v``.

    Standard CG from ``x = 0``; at most ``iters`` products; stops early once the squared
    residual ``‖b - A x‖²`` drops below ``residual_tol``.
    """
    return conjugate_gradient_with_product(Avp, b, iters, residual_tol)[0]


def conjugate_gradient_with_product(
    Avp: VectorProduct, b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """``conjugate_gradient`` that also returns ``A x``, accumulated from the products CG
    computes anyway (``A x = Σ αᵢ A pᵢ``), so ``xᵀ A x`` needs no further product."""
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    x = torch.zeros_like(b)
    ax = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr.item() < residual_tol:
            break
        ap = Avp(p)
        alpha = rr / torch.dot(p, ap)
        x = x + alpha * p
        ax = ax + alpha * ap
        r = r - alpha * ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, ax


def step_scale(shs: float | Tensor, max_kl: float) -> float:
    """``β = sqrt(2 δ / sᵀHs)``: the step ``β s`` has quadratic KL estimate ``½ β² sᵀHs = δ``.

    Returns NaN when ``sᵀHs`` is not a positive finite number (the line search rejects it).
    """
    if not max_kl > 0:
        raise ValueError(f"max_kl must be > 0, got {max_kl}")
    shs = float(shs)
    if not (math.isfinite(shs) and shs > 0.0):
        return math.nan
    return math.sqrt(2.0 * max_kl / shs)


def trpo_full_step(
    g: Tensor, Avp: VectorProduct, *, max_kl: float, cg_iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """The full TRPO step ``β s`` with ``s = CG(H, g)``, ``β = step_scale(sᵀHs, max_kl)``.

    ``g`` is the gradient of the objective to *increase* (the surrogate); the step is added to θ.
    Costs ``cg_iters`` curvature products (``Hs`` comes out of CG). All NaN if the curvature
    along s is not positive.
    """
    s, hs = conjugate_gradient_with_product(Avp, g, iters=cg_iters, residual_tol=residual_tol)
    return step_scale(torch.dot(s, hs), max_kl) * s


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of ``line_search``.

    Attributes:
        accepted: a step was accepted; if False keep θ unchanged.
        step_fraction: the accepted fraction of the full step (0.0 if rejected).
        steps_tried: how many fractions were evaluated.
        improvement: surrogate improvement of the accepted step (of the last one tried if
            rejected; NaN if none was tried).
        kl: mean KL of the accepted step (likewise).
        non_finite: rejected because the full step was not finite or every fraction tried gave
            a non-finite improvement or KL (not merely too little improvement or too much KL).
    """

    accepted: bool
    step_fraction: float
    steps_tried: int
    improvement: float
    kl: float
    non_finite: bool = False


def line_search(
    evaluate: Callable[[Tensor], tuple[float | Tensor, float | Tensor]],
    full_step: Tensor,
    *,
    max_kl: float,
    max_steps: int = 15,
    backtrack_ratio: float = 0.8,
) -> LineSearchResult:
    """Backtrack along ``full_step``: accept the first ``frac = ratioⁱ`` (i = 0, 1, ...) whose step
    strictly improves the surrogate and keeps the mean KL within ``max_kl``.

    Args:
        evaluate: ``evaluate(step [P]) -> (improvement, kl)`` at ``θ + step``: the surrogate
            there minus at θ, and the mean KL from the old policy. Non-finite values reject.
        full_step: ``[P]``, e.g. from ``trpo_full_step``. If it is not finite nothing is
            evaluated and the result is rejected.
        max_kl: δ.
        max_steps: number of fractions tried (``ls_max_steps``).
        backtrack_ratio: in (0, 1) (``ls_backtrack_ratio``).
    """
    if not max_kl > 0:
        raise ValueError(f"max_kl must be > 0, got {max_kl}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if not 0.0 < backtrack_ratio < 1.0:
        raise ValueError(f"backtrack_ratio must be in (0, 1), got {backtrack_ratio}")
    improvement = kl = math.nan
    if not bool(torch.isfinite(full_step).all()):
        return LineSearchResult(False, 0.0, 0, improvement, kl, non_finite=True)
    all_non_finite = True
    for i in range(max_steps):
        frac = backtrack_ratio**i
        improvement, kl = (float(x) for x in evaluate(frac * full_step))
        finite = math.isfinite(improvement) and math.isfinite(kl)
        if finite and improvement > 0.0 and kl <= max_kl:
            return LineSearchResult(True, frac, i + 1, improvement, kl)
        all_non_finite &= not finite
    return LineSearchResult(False, 0.0, max_steps, improvement, kl, non_finite=all_non_finite)


def _check_scalar(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.numel() != 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a scalar tensor, got {shape}")


def _check_vector(v: Tensor, size: int) -> None:
    if v.dim() != 1 or v.numel() != size:
        raise ValueError(f"vector has shape {tuple(v.shape)}; the parameters need [{size}]")
