"""metarl.core.activations.tanh: the same function as torch.tanh, derivatives of any order."""

import torch
from torch.autograd import gradcheck, gradgradcheck

from metarl.core.activations import tanh

D = torch.float64


def test_matches_torch_tanh_including_extremes():
    x = torch.cat([torch.linspace(-30, 30, 2001), torch.tensor([-1e30, 1e30, float("inf"),
                                                                 -float("inf"), 0.0])])
    torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=0, atol=3e-7)
    torch.testing.assert_close(tanh(x.to(D)), torch.tanh(x.to(D)), rtol=0, atol=1e-15)
    with torch.no_grad():  # the no-grad path computes the same values
        torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=0, atol=3e-7)


def test_first_second_and_forward_mode_derivatives():
    x = torch.randn(4, 3, dtype=D, generator=torch.Generator().manual_seed(0)).requires_grad_()
    assert gradcheck(tanh, (x,))
    assert gradgradcheck(tanh, (x,))
    v = torch.randn_like(x)
    _, tangent = torch.func.jvp(tanh, (x.detach(),), (v,))
    torch.testing.assert_close(tangent, v * (1 - torch.tanh(x.detach()) ** 2))
    # third order, as through the MAML inner update inside a Hessian-vector product
    (g,) = torch.autograd.grad(tanh(x).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad((g * v).sum(), x, create_graph=True)
    (t,) = torch.autograd.grad(h.sum(), x)
    y = torch.tanh(x.detach())
    torch.testing.assert_close(t, v * (1 - y**2) * (6 * y**2 - 2))  # third derivative · v


def test_vmap_and_grad_transforms():
    x = torch.randn(5, 7, dtype=D, generator=torch.Generator().manual_seed(1))
    grads = torch.func.vmap(torch.func.grad(lambda r: tanh(r).sum()))(x)
    torch.testing.assert_close(grads, 1 - torch.tanh(x) ** 2)


def test_each_value_is_independent_of_its_position_in_the_tensor():
    # A batch split differently (sampler groups, worker shards) must give bitwise-equal values.
    x = 3 * torch.randn(1000, generator=torch.Generator().manual_seed(2))
    whole = tanh(x)
    for cut in (1, 7, 63, 120, 503):
        assert torch.equal(whole, torch.cat([tanh(x[:cut]), tanh(x[cut:])]))
