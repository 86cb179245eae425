"""metarl.nonfinite.finite_backward: the checked backward pass every Adam-trained method takes
before its step."""

import pytest
import torch

from metarl.nonfinite import NonFiniteError, finite_backward


def model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def test_a_finite_loss_returns_its_value_with_fresh_gradients():
    model, optimizer = model_and_optimizer()
    x = torch.ones(4, 3)
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)  # stale: must be cleared, not accumulated into
    loss = model(x).pow(2).mean()
    value = finite_backward(loss, optimizer, model, loss_name="the loss",
                            gradient_name="the gradient")
    assert value == pytest.approx(loss.item())
    expected = torch.autograd.grad(model(x).pow(2).mean(), list(model.parameters()))
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)


def test_a_non_finite_loss_is_named_before_any_gradient_is_touched():
    model, optimizer = model_and_optimizer()
    loss = model(torch.ones(2, 3)).sum() * float("nan")
    with pytest.raises(NonFiniteError, match=r"^the meta-loss is nan$"):
        finite_backward(loss, optimizer, model, loss_name="the meta-loss",
                        gradient_name="the gradient")
    assert all(p.grad is None for p in model.parameters())


def test_a_non_finite_gradient_of_a_finite_loss_is_named_with_the_tensor_it_is_in():
    model, optimizer = model_and_optimizer()
    # sqrt at 0 is finite, its derivative is not: the loss passes, the weight's gradient fails
    loss = torch.sqrt(model.weight.abs() * 0).sum()
    with pytest.raises(NonFiniteError,
                       match=r"^the meta-gradient is non-finite \(weight: 3 of 3 values\)$"):
        finite_backward(loss, optimizer, model, loss_name="the loss",
                        gradient_name="the meta-gradient")
