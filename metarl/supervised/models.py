"""Small models for supervised meta-learning; adapted functionally, never in place.

A *task model* owns the shared meta-parameters θ as an ordinary ``nn.Module`` (so state_dicts
and optimisers work as usual) and also evaluates many tasks' own parameters at once:

    task_forward(params, x) -> outputs,   params: {name: [tasks, ...]}, x: [tasks, n, ...]

For small networks this hand-batched forward (batched matmuls) is far faster than
``torch.func.vmap`` or a loop over tasks: measured on 2 cores for the 1-40-40-1 sine MLP and a
meta-batch of 25, one second-order meta-iteration takes about 2 ms with ``torch.baddbmm``,
28 ms with a loop and 115 ms with vmapped ``torch.func.grad``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from metarl.core.activations import tanh
from metarl.core.maml import Params

NONLINEARITIES = {"relu": torch.relu, "tanh": tanh}


def activation(name: str):
    """The activation function for ``name``; a clear error lists the valid names."""
    try:
        return NONLINEARITIES[name]
    except KeyError:
        raise ValueError(
            f"unknown nonlinearity {name!r}; choose from: {', '.join(NONLINEARITIES)}") from None


class MLP(nn.Module):
    """``in -> hidden... -> out`` fully connected network (sine: 1-40-40-1, ReLU).

    Parameters are named ``layers.{i}.weight`` / ``layers.{i}.bias`` (``nn.Linear`` layout).
    """

    def __init__(self, in_size: int, out_size: int, hidden_sizes: Sequence[int] = (40, 40),
                 nonlinearity: str = "relu"):
        super().__init__()
        self.activation = activation(nonlinearity)
        sizes = [in_size, *hidden_sizes, out_size]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x

    def task_forward(self, params: Params, x: Tensor) -> Tensor:
        """Each task's own parameters on its own inputs.

        Args:
            params: ``{"layers.{i}.weight": [tasks, out, in], "layers.{i}.bias": [tasks, out]}``.
            x: ``[tasks, n, in]``.

        Returns:
            ``[tasks, n, out]``.
        """
        for i in range(len(self.layers)):
            weight, bias = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x
