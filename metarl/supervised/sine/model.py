"""Small models for supervised meta-learning; adapted functionally, never in place.

A *task model* owns the shared meta-parameters θ as an ordinary ``nn.Module`` (so state_dicts
and optimisers work as usual) and also evaluates many tasks' own parameters at once:

    task_forward(params, x) -> outputs,   params: {name: [tasks, ...]}, x: [tasks, n, ...]

For small networks this hand-batched forward (``metarl.core.mlp``: batched matmuls) is faster
than ``torch.func.vmap`` or a loop over tasks (docs/results.md, Performance).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from metarl.core import mlp
from metarl.core.maml import Params
from metarl.core.mlp import activation


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
        return mlp.forward([(layer.weight, layer.bias) for layer in self.layers], x,
                           self.activation)

    def task_forward(self, params: Params, x: Tensor) -> Tensor:
        """Each task's own parameters on its own inputs.

        Args:
            params: ``{"layers.{i}.weight": [tasks, out, in], "layers.{i}.bias": [tasks, out]}``.
            x: ``[tasks, n, in]``.

        Returns:
            ``[tasks, n, out]``.
        """
        layers = [(params[f"layers.{i}.weight"], params[f"layers.{i}.bias"])
                  for i in range(len(self.layers))]
        return mlp.task_forward(layers, x, self.activation)
