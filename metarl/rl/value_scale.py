"""Value targets in units of their own spread: the value head predicts a standardised return.

PopArt (van Hasselt, Guez, Hessel, Mnih & Silver, "Learning values across many orders of
magnitude", NeurIPS 2016), with the moments of each batch rather than running averages: the
value head's raw output ``v̂`` stands for the return ``V = μ + σ v̂``, and its loss is taken
on ``(R - μ) / σ``, so that the squared error is O(1) whatever the scale of the returns.

Why RL² needs it: its value head shares the GRU with the policy and the PPO loss adds the two
(``rl2.ppo_loss``). The value targets of a 200-step navigation trial are discounted sums of
-distance, tens in magnitude, while the advantages are standardised; the value loss's gradient
is then a hundred times the policy's, so the clipping of the joint gradient norm
(``max_grad_norm``) shrinks the policy's share of each step to almost nothing, and the GRU is
trained almost only to predict returns. Standardised targets make the two gradients
comparable.

When the moments change from ``(μ, σ)`` to ``(μ', σ')``, the value head's last layer is
rescaled so that ``V`` is unchanged at every input (PopArt's "preserving outputs")::

    w' = w σ / σ',    b' = (σ b + μ - μ') / σ'

and Adam's moments of that layer follow: the loss's gradient with respect to the rescaled layer
is ``σ/σ'`` times the old one at every input (``v̂' - y' = σ/σ' (v̂ - y)``), so the gradients
the moments averaged are, in the new units, ``σ/σ'`` times what was recorded; the first moment
is multiplied by ``σ/σ'`` and the second by ``(σ/σ')²``. Without this, a step after σ grows
is divided by the square root of second moments recorded at the old, larger gradients, and is
too short until Adam forgets them.

Layout as :mod:`metarl.rl.ppo`: time-major ``[T, *B]`` with a mask, nonzero at valid steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metarl.rl.returns import _same_shape, _valid

#: Smallest σ a batch may set: targets that barely vary (a batch of equal returns) must not
#: divide the head's weights by zero.
MIN_STD = 1e-4


@dataclass(frozen=True)
class ValueScale:
    """``V = mean + std · v̂``: the return a raw value-head output ``v̂`` stands for.
    ``ValueScale()`` (0, 1) is the identity."""

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std >= MIN_STD):
            raise ValueError(f"ValueScale needs a finite mean and std >= {MIN_STD}, got "
                             f"mean={self.mean}, std={self.std}")

    def returns(self, v_hat: Tensor) -> Tensor:
        """``V = μ + σ v̂`` (the values GAE bootstraps from)."""
        return self.mean + self.std * v_hat

    def standardise(self, returns: Tensor) -> Tensor:
        """``(R - μ) / σ`` (what the head is trained to output)."""
        return (returns - self.mean) / self.std

    def state_dict(self) -> dict[str, Tensor]:
        """For a checkpoint: float64 scalars (bit-exact round trip of the Python floats)."""
        return {"mean": torch.tensor(self.mean, dtype=torch.float64),
                "std": torch.tensor(self.std, dtype=torch.float64)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> ValueScale:
        return cls(float(state["mean"]), float(state["std"]))


#: The identity scale: the value head predicts returns as they are.
IDENTITY = ValueScale()


def batch_scale(returns: Tensor, mask: Tensor) -> ValueScale:
    """The mean and standard deviation (population, ``1/n``) of ``returns [T, *B]`` over the
    valid steps of ``mask [T, *B]``; σ at least :data:`MIN_STD`."""
    valid = _valid(mask, returns, "returns")
    _same_shape("mask", mask, "returns", returns)
    x = returns[valid].double()
    if x.numel() == 0:
        raise ValueError("batch_scale: no valid step in the mask")
    return ValueScale(float(x.mean()), max(float(x.std(correction=0)), MIN_STD))


#: The per-parameter state of ``torch.optim.Adam`` (and AdamW) that averages gradients, with the
#: power of the gradient each one averages.
MOMENTS = {"exp_avg": 1, "exp_avg_sq": 2, "max_exp_avg_sq": 2}


def rescale_head(head: nn.Linear, old: ValueScale, new: ValueScale,
                 optimizer: torch.optim.Optimizer | None = None) -> None:
    """Rewrite ``head`` (``v̂ = w·h + b``) in place so that ``new.returns(head(h))`` equals
    ``old.returns(head(h))`` at every ``h``: ``w' = w σ/σ'``, ``b' = (σ b + μ - μ')/σ'``;
    with ``optimizer`` (Adam), the head's moments in its state are multiplied by ``σ/σ'``
    (first) and ``(σ/σ')²`` (second), as the module docstring derives. A head the optimizer
    has not stepped yet has no moments to rescale."""
    if new == old:
        return
    ratio = old.std / new.std
    with torch.no_grad():
        head.weight.mul_(ratio)
        head.bias.mul_(old.std).add_(old.mean - new.mean).div_(new.std)
        for param in (head.weight, head.bias) if optimizer is not None else ():
            state = optimizer.state.get(param, {})  # .get: no entry for an unstepped head
            for name, power in MOMENTS.items():
                if name in state:
                    state[name].mul_(ratio ** power)
