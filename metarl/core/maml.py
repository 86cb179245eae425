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

Two ways to adapt many tasks at once:

* ``adapt`` on task-stacked parameters: if ``params`` hold a leading task axis ``[tasks, ...]``
  (see ``stack_params``) and ``loss_fn`` returns the *sum* of independent per-task losses, the
  gradient of that sum with respect to task i's slice is task i's own gradient, so one call
  adapts every task. This is what a model written with batched matmuls (the RL policy) uses.
* ``adapt_vmapped``: ``torch.func.vmap`` over the leading task axis of ``data`` for any loss,
  including ``functional_call`` of an arbitrary ``nn.Module``; shared θ in, ``[tasks, ...]`` out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

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


def adapt_vmapped(
    loss_fn: LossFn,
    params: Params,
    task_data: Any,
    *,
    num_steps: int = 1,
    step_size: float | Sequence[float] = 0.1,
    first_order: bool = False,
) -> Params:
    """``adapt`` for a batch of tasks: vmap over the leading task axis of ``task_data``.

    Args:
        loss_fn: the single-task loss ``loss_fn(params, data) -> scalar``.
        params: shared meta-parameters ``{name: [...]}``.
        task_data: a pytree whose tensors have a leading task axis ``[tasks, ...]``.

    Returns:
        Adapted parameters ``{name: [tasks, ...]}``, differentiable with respect to ``params``
        (second order unless ``first_order``). Uses ``torch.func.grad`` inside ``vmap``, which
        composes with ``torch.autograd`` outside, so the result equals a loop of ``adapt``.

    Warning:
        Not for models with batch norm in training mode when second order: under ``vmap``,
        PyTorch 2.13's batch-norm backward gives a wrong second-order meta-gradient (up to 50%
        off finite differences in float64; first order is right). The Omniglot conv net
        therefore adapts with grouped convolutions (``supervised/omniglot_maml.py``);
        ``tests/supervised/test_omniglot_model.py`` keeps an xfail test of the bug. It is
        also slower than a hand-batched ``task_forward`` for small models (see models.py).
    """
    sizes = step_sizes(step_size, num_steps)
    grad_fn = grad(loss_fn)

    def adapt_one(data: Any) -> Params:
        adapted = params
        for size in sizes:
            grads = grad_fn(adapted, data)
            if first_order:
                grads = {name: g.detach() for name, g in grads.items()}
            adapted = {name: adapted[name] - size * grads[name] for name in adapted}
        return adapted

    if not sizes:
        num_tasks = leading_size(task_data)
        return stack_params(params, num_tasks)
    return vmap(adapt_one)(task_data)


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


def leading_size(tree: Any) -> int:
    """The size of the leading (task) axis of the first tensor in a pytree."""
    leaves = torch.utils._pytree.tree_leaves(tree)
    tensors = [leaf for leaf in leaves if isinstance(leaf, Tensor)]
    if not tensors:
        raise ValueError("task_data holds no tensors; cannot infer the number of tasks")
    return tensors[0].shape[0]
