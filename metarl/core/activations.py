"""Activation functions, written for speed on CPU and for derivatives of any order.

``tanh``: ``torch.tanh`` in the CPU build of PyTorch is slow, and in a MAML-TRPO step on
navigation_2d it was the most expensive operation, ahead of the matmuls (``bench/activations.py``
times both; its numbers are in docs/results.md, Performance). This one computes
``1 - 2 / (exp(2x) + 1)`` (equal to ``torch.tanh`` to 2e-7 in float32), with the derivative
``1 - y²`` from its output as differentiable operations, so the inner update's second-order
graph (``create_graph=True``), double backward, forward-mode AD and ``torch.func.vmap`` all
work through it.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _Tanh(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        # 1 - 2 / (exp(2x) + 1): exact at ±inf (no inf/inf), and unlike torch.sigmoid each
        # element's value does not depend on its position in the tensor (sigmoid's vectorised
        # body and scalar tail round differently), so results do not depend on batch layout.
        return torch.exp(x * 2.0).add_(1.0).reciprocal_().mul_(-2.0).add_(1.0)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad · (1 - y²), one fused kernel

    @staticmethod
    def jvp(ctx, tangent: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(tangent, y)


def tanh(x: Tensor) -> Tensor:
    """``tanh(x)``, faster than ``torch.tanh`` on CPU, differentiable to any order."""
    if not torch.is_grad_enabled():  # e.g. the sampler's per-step calls: skip Function.apply
        return _Tanh.forward(x)
    return _Tanh.apply(x)
