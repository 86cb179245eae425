"""The MAML inner loop: meta-gradients, first-order mode, purity, batching."""

import pytest
import torch
from torch import nn

from metarl.core.maml import (
    adapt,
    module_loss,
    parameters_of,
    stack_params,
    step_sizes,
)

ALPHA = 0.3


def mse(prediction, target):
    return ((prediction - target) ** 2).mean()


@pytest.fixture
def problem():
    """A tiny tanh network (non-zero Hessian) with a support and a query set, in float64."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(1, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    support = (torch.randn(8, 1, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64))
    query = (torch.randn(8, 1, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64))
    return net, module_loss(net, mse), support, query


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def meta_loss(loss_fn, params, support, query, **kwargs):
    return loss_fn(adapt(loss_fn, params, support, step_size=ALPHA, **kwargs), query)


def test_second_order_meta_gradient_matches_finite_differences(problem):
    net, loss_fn, support, query = problem
    params = parameters_of(net)
    analytic = flat(torch.autograd.grad(meta_loss(loss_fn, params, support, query, num_steps=2),
                                        list(params.values())))

    base = {k: v.detach() for k, v in params.items()}
    numeric = []
    eps = 1e-6
    for name, value in base.items():
        for index in range(value.numel()):
            def shifted(delta, name=name, index=index):
                moved = {k: v.clone().requires_grad_(True) for k, v in base.items()}
                with torch.no_grad():
                    moved[name].view(-1)[index] += delta
                return meta_loss(loss_fn, moved, support, query, num_steps=2).item()

            numeric.append((shifted(eps) - shifted(-eps)) / (2 * eps))
    torch.testing.assert_close(analytic, torch.tensor(numeric, dtype=torch.float64),
                               rtol=1e-5, atol=1e-7)


def test_first_order_drops_exactly_the_hessian_term(problem):
    net, loss_fn, support, query = problem
    params = parameters_of(net)
    names = list(params)
    second = flat(torch.autograd.grad(meta_loss(loss_fn, params, support, query),
                                      list(params.values())))
    first = flat(torch.autograd.grad(meta_loss(loss_fn, params, support, query, first_order=True),
                                     list(params.values())))

    # Exact relation for one step: d/dθ L_q(θ - α∇L_s(θ)) = (I - α H_s(θ)) ∇L_q(θ').
    adapted = {k: v.detach() for k, v in adapt(loss_fn, params, support, step_size=ALPHA).items()}
    adapted = {k: v.requires_grad_(True) for k, v in adapted.items()}
    query_grad = torch.autograd.grad(loss_fn(adapted, query), [adapted[k] for k in names])
    support_grad = torch.autograd.grad(loss_fn(params, support), [params[k] for k in names],
                                       create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(support_grad, query_grad))
    hessian_term = flat(torch.autograd.grad(dot, [params[k] for k in names]))

    assert hessian_term.norm() > 1e-3  # the problem really has curvature
    torch.testing.assert_close(first, flat(query_grad))
    torch.testing.assert_close(second - first, -ALPHA * hessian_term)


def test_adapt_leaves_module_and_params_untouched(problem):
    net, loss_fn, support, _ = problem
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    params = parameters_of(net)
    adapted = adapt(loss_fn, params, support, num_steps=3, step_size=ALPHA)
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
        assert adapted[name] is not params[name]
        assert not torch.equal(adapted[name], value)
    assert all(p.grad is None for p in net.parameters())


def test_multi_step_equals_repeated_single_steps(problem):
    net, loss_fn, support, _ = problem
    params = parameters_of(net)
    three = adapt(loss_fn, params, support, num_steps=3, step_size=[0.3, 0.2, 0.1])
    repeated = params
    for size in (0.3, 0.2, 0.1):
        repeated = adapt(loss_fn, repeated, support, num_steps=1, step_size=size)
    for name in params:
        torch.testing.assert_close(three[name], repeated[name])


def test_zero_steps_returns_the_parameters(problem):
    net, loss_fn, support, _ = problem
    params = parameters_of(net)
    assert adapt(loss_fn, params, support, num_steps=0) == params


def test_task_stacked_params_adapt_each_task_with_its_own_gradient():
    """Summing independent per-task losses over stacked params gives per-task updates."""
    torch.manual_seed(2)
    weight = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(5, 7, 3, dtype=torch.float64)  # [tasks, points, in]
    ys = torch.randn(5, 7, 2, dtype=torch.float64)

    def stacked_loss(params, data):
        x, y = data
        return ((torch.bmm(x, params["w"]) - y) ** 2).mean(dim=(1, 2)).sum()

    def single_loss(params, data):
        x, y = data
        return ((x @ params["w"] - y) ** 2).mean()

    adapted = adapt(stacked_loss, stack_params({"w": weight}, 5), (xs, ys), step_size=ALPHA)
    for i in range(5):
        one = adapt(single_loss, {"w": weight}, (xs[i], ys[i]), step_size=ALPHA)
        torch.testing.assert_close(adapted["w"][i], one["w"])


def test_step_sizes_validation():
    assert step_sizes(0.5, 3) == [0.5, 0.5, 0.5]
    assert step_sizes([0.5, 0.25], 2) == [0.5, 0.25]
    with pytest.raises(ValueError, match="got 1 step sizes for num_steps=2"):
        step_sizes([0.5], 2)
    with pytest.raises(ValueError, match="num_steps must be >= 0"):
        step_sizes(0.5, -1)
