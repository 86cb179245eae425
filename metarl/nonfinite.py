"""Non-finite values: the errors that report them and the checks that find them.

Training stops at the first non-finite loss, gradient or parameter of a meta-iteration with a
:class:`DivergenceError`, raised before any checkpoint of that state is written, so the last
checkpoint on disk stays the last finite state. Anything else that must be finite and is not
(a policy to evaluate, the actions it samples) is a :class:`NonFiniteError`. The checks look at
whole tensors once per batch or step, never at single values in a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor


class NonFiniteError(ArithmeticError):
    """A value that must be finite is NaN or infinite; the message names it and where."""


class DivergenceError(NonFiniteError):
    """Training became non-finite; the message says what, and which checkpoint is intact.

    Attributes:
        iteration: the meta-iteration being computed (counted from 1, as logged).
        what: what became non-finite, e.g. ``"meta_loss is nan"``.
        checkpoint: the last checkpoint written (every value in it finite), or None.
        checkpoint_iteration: the iteration that checkpoint holds.
    """

    def __init__(self, iteration: int, what: str, checkpoint: Path | None = None,
                 checkpoint_iteration: int | None = None):
        self.iteration, self.what = iteration, what
        self.checkpoint, self.checkpoint_iteration = checkpoint, checkpoint_iteration
        if checkpoint is None:
            saved = "no checkpoint had been written yet, so there is nothing to resume"
        else:
            saved = (f"the last finite checkpoint (iteration {checkpoint_iteration}) is intact: "
                     f"{checkpoint}")
        super().__init__(f"diverged at iteration {iteration}: {what}; {saved}")

    def __reduce__(self):
        return type(self), (self.iteration, self.what, self.checkpoint,
                            self.checkpoint_iteration)


def all_finite(tensors: Iterable[Tensor]) -> bool:
    """Whether every value of every floating-point tensor is finite (one sync for all)."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def non_finite_summary(tensors: Mapping[str, Tensor]) -> str:
    """Which tensors hold NaN/inf and how many: ``"layers.0.weight: 1 of 16 values"``; empty
    if none does."""
    parts = []
    for name, t in tensors.items():
        if t.is_floating_point():
            count = int((~torch.isfinite(t)).sum())
            if count:
                parts.append(f"{name}: {count} of {t.numel()} values")
    return "; ".join(parts)


def require_finite(tensors: Mapping[str, Tensor], what: str) -> None:
    """``NonFiniteError("{what} is non-finite (name: n of m values; ...)")`` unless every
    value of ``tensors`` is finite."""
    if not all_finite(tensors.values()):
        raise NonFiniteError(f"{what} is non-finite ({non_finite_summary(tensors)})")


def finite_backward(loss: Tensor, optimizer: torch.optim.Optimizer, module: torch.nn.Module,
                    *, loss_name: str, gradient_name: str) -> float:
    """Backpropagate ``loss`` into the cleared gradients of ``module``'s parameters, checked
    before anything can step on them: ``NonFiniteError("{loss_name} is nan")`` for a non-finite
    loss (raised before the backward pass) and ``require_finite``'s error naming
    ``gradient_name`` for a non-finite gradient. Returns the loss as a float."""
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteError(f"{loss_name} is {value}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    require_finite({name: p.grad for name, p in module.named_parameters()
                    if p.grad is not None}, gradient_name)
    return value
