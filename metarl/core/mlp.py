"""Fully connected networks evaluated from a parameter dict: shared, or one set per task.

The RL policy (``metarl.rl.policy``) and the sine model (``metarl.supervised.sine.model``) are
both MLPs whose parameters are named as ``nn.Linear`` layers in an ``nn.ModuleList`` called
``layers``: ``layers.{i}.weight [out, in]``, ``layers.{i}.bias [out]``. Both evaluate them here:

* :func:`forward`: shared parameters, ``x [..., in] -> [..., out]``;
* :func:`task_forward`: task-stacked parameters (``weight [K, out, in]``, ``bias [K, out]``;
  ``maml.stack_params`` or ``maml.adapt`` on stacked params), ``x [K, N, in] -> [K, N, out]``,
  task k's parameters on its own N rows. One batched matmul (``torch.bmm``) and one bias add
  per layer for all K tasks, no loop over tasks; ``bmm`` then add rather than ``torch.baddbmm``,
  whose broadcast copy of the bias costs as much as the matmul.

The activation follows every layer but the last (``NONLINEARITIES``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from metarl.core.activations import tanh

Layers = Sequence[tuple[Tensor, Tensor]]

#: The hidden activations an MLP may use, by name.
NONLINEARITIES: dict[str, Callable[[Tensor], Tensor]] = {"tanh": tanh, "relu": torch.relu}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation called ``name``; ``ValueError`` naming the valid choices otherwise."""
    if name not in NONLINEARITIES:
        raise ValueError(
            f"unknown nonlinearity {name!r}; valid choices: {', '.join(NONLINEARITIES)}")
    return NONLINEARITIES[name]


def layers_of(params: Mapping[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
    """``[(weight, bias), ...]`` of ``layers.0``, ``layers.1``, ... in ``params``, in order
    (empty if there is no ``layers.0.weight``); ``KeyError`` for a weight without its bias."""
    layers = []
    while f"layers.{len(layers)}.weight" in params:
        i = len(layers)
        if f"layers.{i}.bias" not in params:
            raise KeyError(f"params have layers.{i}.weight but no layers.{i}.bias")
        layers.append((params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]))
    return layers


def forward(layers: Layers, x: Tensor, act: Callable[[Tensor], Tensor]) -> Tensor:
    """Shared parameters on ``x [..., in]``; returns ``[..., out]``."""
    for i, (weight, bias) in enumerate(layers):
        x = nn.functional.linear(x, weight, bias)
        if i < len(layers) - 1:
            x = act(x)
    return x


def task_forward(layers: Layers, x: Tensor, act: Callable[[Tensor], Tensor]) -> Tensor:
    """Task-stacked parameters ``weight [K, out, in]``, ``bias [K, out]`` on ``x [K, N, in]``;
    returns ``[K, N, out]``, row block k computed with task k's parameters."""
    num_tasks = x.shape[0]
    for i, (weight, bias) in enumerate(layers):
        if weight.dim() != 3 or weight.shape[0] != num_tasks:
            raise ValueError(
                f"layers.{i}.weight has shape {tuple(weight.shape)}; task-stacked params need "
                f"[K={num_tasks}, out, in]")
        x = torch.bmm(x, weight.transpose(1, 2)) + bias.unsqueeze(1)
        if i < len(layers) - 1:
            x = act(x)
    return x
