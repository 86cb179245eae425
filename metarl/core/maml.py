"""The MAML inner loop: parameters in, adapted parameters out.

Every experiment in metarl (sine regression, Omniglot, meta-RL) adapts with the functions here.
Parameters are a plain ``dict[str, Tensor]`` (``dict(module.named_parameters())``); a loss is a
function ``loss_fn(params, data) -> scalar Tensor``. Nothing here writes into a module: modules
are only ever *called* with given parameters through ``torch.func.functional_call``.

One inner step (Finn et al. 2017, eq. 1)::

    θ' = θ - α ∇_θ L(θ; D)

taken ``num_steps`` times. With ``first_order=False`` the gradient is kept in the autograd graph
(``create_graph=True``), so a loss of θ' differentiates back to θ through the update, Hessian
terms included; with ``first_order=True`` the inner gradient is treated as a constant (FOMAML).

Many tasks at once: if ``params`` hold a leading task axis ``[tasks, ...]`` (see
``stack_params``) and ``loss_fn`` returns the *sum* of independent per-task losses, the gradient
of that sum with respect to task i's slice is task i's own gradient, so one call of ``adapt``
adapts every task. The models written with batched matmuls (the RL policy, the sine MLP:
``metarl.core.mlp``) and the Omniglot conv net's grouped convolutions do this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]
LossFn = Callable[[Params, Any], Tensor]


def step_sizes(step_size: float | Sequence[float], num_steps: int) -> list[float]:
    """The learning rate of each of ``num_steps`` inner steps.

    A float is used for every step; a sequence gives one rate per step and must have
    ``num_steps`` entries (the paper's RL evaluation uses α for the first step, α/2 after).
    """
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    if isinstance(step_size, (int, float)):
        return [float(step_size)] * num_steps
    sizes = [float(s) for s in step_size]
    if len(sizes) != num_steps:
        raise ValueError(f"got {len(sizes)} step sizes for num_steps={num_steps}; give one per step")
    return sizes


def gradient_step(
    loss_fn: LossFn, params: Params, data: Any, step_size: float, *, first_order: bool = False
) -> Params:
    """One differentiable SGD step ``θ - α ∇_θ loss_fn(θ, data)``; returns new tensors."""
    names = list(params)
    tensors = [params[name] for name in names]
    loss = loss_fn(params, data)
    grads = torch.autograd.grad(loss, tensors, create_graph=not first_order)
    return {name: p - step_size * g for name, p, g in zip(names, tensors, grads)}


def adapt(
    loss_fn: LossFn,
    params: Params,
    data: Any,
    *,
    num_steps: int = 1,
    step_size: float | Sequence[float] = 0.1,
    first_order: bool = False,
) -> Params:
    """Adapt ``params`` to ``data`` with ``num_steps`` steps of gradient descent on ``loss_fn``.

    Args:
        loss_fn: ``loss_fn(params, data) -> scalar``. For task-stacked params, the sum of the
            independent per-task losses (see the module docstring).
        params: ``{name: Tensor}``. Every tensor must require grad or be derived from one that
            does; for a meta-gradient, pass tensors connected to the meta-parameters.
        data: whatever ``loss_fn`` takes (e.g. a support set ``(x, y)``).
        num_steps: number of inner steps (0 returns ``params`` unchanged).
        step_size: α, a float or one value per step.
        first_order: drop second-order terms (the inner gradient is not differentiated).

    Returns:
        A new dict of adapted tensors; ``params`` and any module are left untouched.
    """
    for size in step_sizes(step_size, num_steps):
        params = gradient_step(loss_fn, params, data, size, first_order=first_order)
    return params


def stack_params(params: Mapping[str, Tensor], num_tasks: int) -> Params:
    """Give every parameter a leading task axis: ``[...] -> [num_tasks, ...]``.

    The copies are views (``expand``), still connected to ``params`` in the autograd graph.
    """
    return {name: p.unsqueeze(0).expand(num_tasks, *p.shape) for name, p in params.items()}


def module_loss(module: nn.Module, criterion: Callable[[Tensor, Tensor], Tensor]) -> LossFn:
    """A ``loss_fn(params, (x, y))`` that calls ``module`` with ``params`` via functional_call.

    Buffers of the module are used as they are (never updated).
    """

    def loss_fn(params: Params, data: tuple[Tensor, Tensor]) -> Tensor:
        inputs, targets = data
        return criterion(functional_call(module, params, (inputs,)), targets)

    return loss_fn


def parameters_of(module: nn.Module) -> Params:
    """The module's trainable parameters as a ``{name: Tensor}`` dict (the tensors themselves)."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}

