import math

import pytest
import torch

from metarl.core.maml import adapt
from metarl.core.trpo import (
    conjugate_gradient,
    conjugate_gradient_with_product,
    diagonal_gaussian_fisher,
    flat_grad,
    flatten,
    gauss_newton_vector_product,
    hessian_vector_product,
    line_search,
    step_scale,
    trpo_full_step,
    unflatten,
)

D = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_spd(n, seed):
    a = torch.randn(n, n, generator=gen(seed), dtype=D)
    return a @ a.T + 0.1 * torch.eye(n, dtype=D)


def tiny_params(seed=0, obs=3, hidden=4, act=2):
    g = gen(seed)
    shapes = {
        "w1": (hidden, obs),
        "b1": (hidden,),
        "w2": (act, hidden),
        "b2": (act,),
        "log_std": (act,),
    }
    return {
        n: (0.5 * torch.randn(s, generator=g, dtype=D)).requires_grad_() for n, s in shapes.items()
    }


def gaussian(params, obs):
    """A tiny Gaussian MLP: (mean [..., act], log_std broadcast)."""
    h = torch.tanh(obs @ params["w1"].T + params["b1"])
    mean = h @ params["w2"].T + params["b2"]
    return mean, params["log_std"].expand_as(mean)


def kl(mean_p, ls_p, mean_q, ls_q):
    return (
        ls_q
        - ls_p
        + (torch.exp(2 * ls_p) + (mean_p - mean_q) ** 2) / (2 * torch.exp(2 * ls_q))
        - 0.5
    ).sum(-1)


def inner_data(seed=1, n=6):
    g = gen(seed)
    return (
        torch.randn(n, 3, generator=g, dtype=D),
        torch.randn(n, 2, generator=g, dtype=D),
        torch.randn(n, generator=g, dtype=D),
    )


def vpg_loss(params, data):
    obs, actions, adv = data
    mean, ls = gaussian(params, obs)
    logp = (-0.5 * ((actions - mean) / ls.exp()) ** 2 - ls).sum(-1)
    return -(logp * adv).mean()


def test_flatten_unflatten_round_trip_and_flat_grad_zeros_for_unused():
    params = tiny_params()
    flat = flatten(params)
    assert flat.shape == (sum(p.numel() for p in params.values()),)
    back = unflatten(flat, params)
    assert all(torch.equal(back[n], params[n]) for n in params)
    g = flat_grad((params["w1"] ** 2).sum(), params)
    torch.testing.assert_close(
        g, flatten({n: 2 * p if n == "w1" else torch.zeros_like(p) for n, p in params.items()})
    )
    with pytest.raises(ValueError, match="need"):
        unflatten(flat[:-1], params)


def test_hvp_quadratic_form_analytic():
    a = torch.randn(5, 5, generator=gen(2), dtype=D)  # not symmetric: H = A + A^T
    x = torch.randn(5, generator=gen(3), dtype=D, requires_grad=True)
    hvp = hessian_vector_product(lambda p: p["x"] @ a @ p["x"], {"x": x}, damping=0.1)
    for seed in range(3):  # the graph is built once and reused
        v = torch.randn(5, generator=gen(10 + seed), dtype=D)
        torch.testing.assert_close(hvp(v), (a + a.T) @ v + 0.1 * v)


def fd_hvp(fn, params, v, eps=1e-5):
    """Central finite differences of the gradient along v."""

    def grad_at(shift):
        moved = {
            n: (p.detach() + shift * d).requires_grad_()
            for (n, p), d in zip(params.items(), unflatten(v, params).values())
        }
        return flat_grad(fn(moved), moved)

    return (grad_at(eps) - grad_at(-eps)) / (2 * eps)


def test_hvp_non_quadratic_vs_finite_differences():
    params = tiny_params()
    obs, actions, _ = inner_data()

    def f(p):
        mean, ls = gaussian(p, obs)
        return (torch.sin(mean) ** 2).mean() + (ls**4).sum()

    v = torch.randn(flatten(params).numel(), generator=gen(4), dtype=D)
    torch.testing.assert_close(
        hessian_vector_product(f, params)(v), fd_hvp(f, params, v), rtol=1e-6, atol=1e-8
    )


def adapted_kl_fn(data_in, obs_out):
    """Mean KL(π_θ'_old ‖ π_θ'(θ)) with θ' = one MAML inner step from θ (old = current, detached)."""

    def outputs(p):
        adapted = adapt(vpg_loss, p, data_in, num_steps=1, step_size=0.5)
        return gaussian(adapted, obs_out)

    def mean_kl(p, old):
        mean, ls = outputs(p)
        return kl(old[0], old[1], mean, ls).mean()

    return outputs, mean_kl


def test_hvp_through_maml_inner_update_vs_finite_differences():
    params = tiny_params(seed=5)
    data = inner_data(seed=6)
    obs_out = torch.randn(7, 3, generator=gen(7), dtype=D)
    outputs, _ = adapted_kl_fn(data, obs_out)

    def f(p):  # a non-quadratic meta-objective of the adapted parameters
        mean, ls = outputs(p)
        return (torch.tanh(mean) ** 3).sum() + (ls**2).sum()

    v = torch.randn(flatten(params).numel(), generator=gen(8), dtype=D)
    torch.testing.assert_close(
        hessian_vector_product(f, params)(v), fd_hvp(f, params, v), rtol=1e-6, atol=1e-8
    )


def test_gauss_newton_equals_exact_kl_hvp_at_current_point():
    params = tiny_params(seed=9)
    data = inner_data(seed=10)
    obs_out = torch.randn(7, 3, generator=gen(11), dtype=D)
    outputs, mean_kl = adapted_kl_fn(data, obs_out)
    old = tuple(y.detach() for y in outputs(params))
    exact = hessian_vector_product(lambda p: mean_kl(p, old), params, damping=1e-3)
    n = obs_out.shape[0]

    def fisher(ys):
        w_mean, w_ls = diagonal_gaussian_fisher(*ys)
        return w_mean / n, w_ls / n  # the KL is a mean over n samples

    gn = gauss_newton_vector_product(outputs, params, fisher, damping=1e-3)
    for seed in range(3):
        v = torch.randn(flatten(params).numel(), generator=gen(20 + seed), dtype=D)
        torch.testing.assert_close(gn(v), exact(v), rtol=1e-9, atol=1e-12)


def test_conjugate_gradient_solves_spd_systems():
    for seed, n in [(0, 5), (1, 12), (2, 30)]:
        a = random_spd(n, seed)
        b = torch.randn(n, generator=gen(100 + seed), dtype=D)
        x = conjugate_gradient(lambda v, a=a: a @ v, b, iters=3 * n, residual_tol=1e-20)
        torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-7, atol=1e-9)


def counting_product(a):
    """``v -> a @ v`` and the list it appends to on every call."""
    calls = []

    def avp(v):
        calls.append(1)
        return a @ v

    return avp, calls


def test_conjugate_gradient_stops_early_and_handles_zero_rhs():
    avp, calls = counting_product(random_spd(6, 3))
    assert torch.equal(conjugate_gradient(avp, torch.zeros(6, dtype=D)), torch.zeros(6, dtype=D))
    assert not calls
    conjugate_gradient(avp, torch.ones(6, dtype=D), iters=100, residual_tol=1e-8)
    assert len(calls) < 100


def test_conjugate_gradient_with_product_returns_a_times_x_even_unconverged():
    a = random_spd(30, 6)
    b = torch.randn(30, generator=gen(7), dtype=D)
    for iters in (1, 4, 30):
        x, ax = conjugate_gradient_with_product(lambda v: a @ v, b, iters=iters)
        torch.testing.assert_close(ax, a @ x, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(x, conjugate_gradient(lambda v: a @ v, b, iters=iters))


def test_full_step_costs_exactly_cg_iters_products():
    avp, calls = counting_product(random_spd(30, 8))
    trpo_full_step(torch.randn(30, generator=gen(9), dtype=D), avp, max_kl=0.01, cg_iters=7)
    assert len(calls) == 7


def test_step_scale_and_full_step_hit_the_kl_budget():
    a = random_spd(4, 4)
    g = torch.randn(4, generator=gen(5), dtype=D)
    step = trpo_full_step(g, lambda v: a @ v, max_kl=0.01, cg_iters=20)
    torch.testing.assert_close(0.5 * step @ a @ step, torch.tensor(0.01, dtype=D))
    assert step @ g > 0
    assert math.isnan(step_scale(-1.0, 0.01)) and math.isnan(step_scale(float("nan"), 0.01))
    assert step_scale(2.0, 0.01) == pytest.approx(0.1)


def quadratic_evaluator(calls, kl_scale=1.0):
    """improvement(s) = s - s²/4 along a 1-D step (best at s = 2), KL = kl_scale · s²."""

    def evaluate(step):
        s = float(step[0])
        calls.append(s)
        return torch.tensor(s - s * s / 4), torch.tensor(kl_scale * s * s)

    return evaluate


def test_line_search_accepts_first_valid_fraction():
    calls = []
    res = line_search(quadratic_evaluator(calls, kl_scale=0.01), torch.tensor([1.0]), max_kl=0.01)
    assert res.accepted and res.step_fraction == 1.0 and res.steps_tried == 1
    assert res.improvement == pytest.approx(0.75) and res.kl == pytest.approx(0.01)


def test_line_search_backtracks_past_kl_violation_and_non_improvement():
    calls = []
    # Full step s=5: improvement -1.25 (worse); 4: 0 (not strictly better); 3.2: improves but KL 0.01*10.24 > 0.1.
    res = line_search(
        quadratic_evaluator(calls, kl_scale=0.01),
        torch.tensor([5.0]),
        max_kl=0.1,
        backtrack_ratio=0.8,
    )
    assert calls[:3] == pytest.approx([5.0, 4.0, 3.2])
    assert res.accepted and res.steps_tried == 4 and res.step_fraction == pytest.approx(0.8**3)
    assert res.kl <= 0.1 and res.improvement > 0


def test_line_search_rejects_nan_and_kl_violating_steps():
    res = line_search(lambda s: (float("nan"), 0.0), torch.ones(3), max_kl=0.01, max_steps=4)
    assert not res.accepted and res.steps_tried == 4 and res.step_fraction == 0.0
    res = line_search(lambda s: (1.0, float("inf")), torch.ones(3), max_kl=0.01, max_steps=3)
    assert not res.accepted
    res = line_search(lambda s: (1.0, 0.5), torch.ones(3), max_kl=0.01, max_steps=3)
    assert not res.accepted and res.improvement == 1.0 and res.kl == 0.5
    res = line_search(lambda s: (-1.0, 0.0), torch.ones(3), max_kl=0.01, max_steps=3)
    assert not res.accepted
    calls = []
    res = line_search(
        lambda s: calls.append(s) or (1.0, 0.0), torch.tensor([float("nan"), 1.0]), max_kl=0.01
    )
    assert not res.accepted and res.steps_tried == 0 and not calls


def test_line_search_says_whether_it_rejected_for_non_finite_values():
    nan_only = line_search(lambda s: (float("nan"), 0.0), torch.ones(3), max_kl=0.01, max_steps=4)
    assert nan_only.non_finite and not nan_only.accepted
    nan_step = line_search(lambda s: (1.0, 0.0), torch.tensor([float("inf")]), max_kl=0.01)
    assert nan_step.non_finite and nan_step.steps_tried == 0
    # Non-finite at the full step, then finite but too far: an ordinary rejection.
    mixed = line_search(lambda s: (float("nan"), 0.0) if s.item() == 1.0 else (1.0, 0.5),
                        torch.ones(1), max_kl=0.01, max_steps=3)
    assert not mixed.accepted and not mixed.non_finite
    assert not line_search(lambda s: (1.0, 0.0), torch.ones(1), max_kl=0.01).non_finite


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="backtrack_ratio"):
        line_search(lambda s: (1.0, 0.0), torch.ones(1), max_kl=0.01, backtrack_ratio=1.0)
    with pytest.raises(ValueError, match="max_kl"):
        line_search(lambda s: (1.0, 0.0), torch.ones(1), max_kl=0.0)
    x = torch.ones(3, dtype=D, requires_grad=True)
    hvp = hessian_vector_product(lambda p: (p["x"] ** 3).sum(), {"x": x})
    with pytest.raises(ValueError, match=r"need \[3\]"):
        hvp(torch.ones(4, dtype=D))
    with pytest.raises(ValueError, match="scalar"):
        hessian_vector_product(lambda p: p["x"] ** 2, {"x": x})
