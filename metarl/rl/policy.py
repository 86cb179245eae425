"""Gaussian MLP policy with a state-independent log-std, functional in its parameters.

``GaussianMLPPolicy`` owns the meta-parameters θ (so ``state_dict`` and optimisers work); every
evaluation goes through the free functions below, which take the parameters explicitly:

    π_θ(a | o) = N(a; μ_θ(o), diag(σ²)),   μ_θ = MLP(o),   σ = exp(log_std)

Parameter names: ``layers.{i}.weight [out, in]``, ``layers.{i}.bias [out]`` (the last layer
outputs μ) and ``log_std [act]``. Two forms of parameters:

* shared ``{name: [...]}``: one policy for every observation ``[..., obs]``;
* task-stacked ``{name: [K, ...]}`` (``maml.stack_params`` or the output of ``maml.adapt`` on
  stacked params): task k's policy on its own observations, ``obs [..., K, E, obs]`` (e.g. the
  sampler's ``[K, E, obs]`` per step, or an ``Episodes`` batch ``[T, K, E, obs]``), evaluated
  for all tasks at once by ``metarl.core.mlp.task_forward`` (batched matmuls, no loop over
  tasks).

Outputs keep the observation's leading shape: ``mean [..., act]``, ``log_std`` broadcast to it,
``log_prob`` and ``gaussian_kl`` ``[...]`` (summed over action dimensions).

Initialisation: Xavier-uniform weights and zero biases, as in the reference PyTorch MAML-RL
implementation (pytorch-maml-rl), whose curves match the paper's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from metarl.core import mlp
from metarl.core.mlp import activation

Params = Mapping[str, Tensor]

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class GaussianMLPPolicy(nn.Module):
    """Owns θ; ``policy.log_prob(params, obs, actions)`` etc. evaluate it for any parameters.

    Args:
        obs_size: observation dimension.
        act_size: action dimension.
        hidden_sizes: widths of the hidden layers (64-64 tanh is the common PyTorch default;
            the MAML paper used 100-100 relu).
        nonlinearity: one of ``metarl.core.mlp.NONLINEARITIES``.
        init_log_std: initial value of every log-std entry.
        init_output_scale: factor on the output layer's initial (Xavier) weights; a small one
            starts the mean near 0 whatever the observation, so that the first actions are the
            N(0, σ²) noise of ``init_log_std`` alone.
    """

    def __init__(
        self,
        obs_size: int,
        act_size: int,
        hidden_sizes: Sequence[int] = (64, 64),
        nonlinearity: str = "tanh",
        init_log_std: float = 0.0,
        init_output_scale: float = 1.0,
    ) -> None:
        super().__init__()
        activation(nonlinearity)
        sizes = (int(obs_size), *(int(h) for h in hidden_sizes), int(act_size))
        if any(s < 1 for s in sizes):
            raise ValueError(
                f"layer sizes must be positive, got obs_size={obs_size}, "
                f"hidden_sizes={tuple(hidden_sizes)}, act_size={act_size}"
            )
        self.obs_size, self.act_size = sizes[0], sizes[-1]
        self.hidden_sizes = tuple(sizes[1:-1])
        self.nonlinearity = nonlinearity
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.log_std = nn.Parameter(torch.full((self.act_size,), float(init_log_std)))
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        with torch.no_grad():
            self.layers[-1].weight.mul_(float(init_output_scale))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)`` of the module's own parameters on ``obs [..., obs]``."""
        return mean_and_log_std(dict(self.named_parameters()), obs, self.nonlinearity)

    def mean_and_log_std(self, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
        return mean_and_log_std(params, obs, self.nonlinearity)

    def log_prob(self, params: Params, obs: Tensor, actions: Tensor) -> Tensor:
        return log_prob(params, obs, actions, self.nonlinearity)


def mean_and_log_std(
    params: Params, obs: Tensor, nonlinearity: str = "tanh"
) -> tuple[Tensor, Tensor]:
    """``μ_θ(o)`` and ``log σ`` broadcast to it.

    Shared params: ``obs [..., obs] -> [..., act]``. Task-stacked params (``log_std [K, act]``):
    ``obs [..., K, E, obs] -> [..., K, E, act]``, task k evaluated with its own parameters.
    """
    act = activation(nonlinearity)
    layers = _layers(params)
    log_std = params["log_std"]
    if log_std.dim() == 1:
        x = mlp.forward(layers, obs, act)
        return x, log_std.expand_as(x)
    if log_std.dim() != 2:
        raise ValueError(f"log_std must be [act] or [K, act], got shape {tuple(log_std.shape)}")
    num_tasks = log_std.shape[0]
    if obs.dim() < 3 or obs.shape[-3] != num_tasks:
        raise ValueError(
            f"task-stacked params for K={num_tasks} tasks need obs [..., K, E, obs], "
            f"got shape {tuple(obs.shape)}"
        )
    # [..., K, E, obs] -> [K, N, obs]: one batched matmul per layer for all tasks.
    x = obs.movedim(-3, 0)
    lead = x.shape[1:-1]
    x = mlp.task_forward(layers, x.reshape(num_tasks, -1, obs.shape[-1]), act)
    mean = x.reshape(num_tasks, *lead, x.shape[-1]).movedim(0, -3)
    return mean, log_std.unsqueeze(1).expand_as(mean)


def log_prob(params: Params, obs: Tensor, actions: Tensor, nonlinearity: str = "tanh") -> Tensor:
    """``log π_θ(a | o) = Σ_d [-(a_d - μ_d)² / (2σ_d²) - log σ_d - ½ log 2π]``; ``[...]``."""
    return gaussian_log_prob(*mean_and_log_std(params, obs, nonlinearity), actions)


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """``log N(a; μ, σ²)`` summed over the last (action) axis; ``[...]``."""
    if actions.shape != mean.shape:
        raise ValueError(
            f"actions have shape {tuple(actions.shape)}, the policy's mean {tuple(mean.shape)}"
        )
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.square() - log_std - HALF_LOG_2PI).sum(-1)


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """``KL(p ‖ q) = Σ_d [log σ_q - log σ_p + (σ_p² + (μ_p - μ_q)²) / (2σ_q²) - ½]``; ``[...]``.

    In TRPO ``p`` is the old (sampling) policy, detached, and ``q`` the new one.
    """
    var_ratio = torch.exp(2.0 * (log_std_p - log_std_q))
    mahalanobis = (mean_p - mean_q).square() * torch.exp(-2.0 * log_std_q)
    return (log_std_q - log_std_p + 0.5 * (var_ratio + mahalanobis) - 0.5).sum(-1)


def _layers(params: Params) -> list[tuple[Tensor, Tensor]]:
    layers = mlp.layers_of(params)
    if not layers or "log_std" not in params:
        raise KeyError(
            "params must hold layers.0.weight, layers.0.bias, ... and log_std "
            f"(GaussianMLPPolicy's names); got {sorted(params)}"
        )
    return layers

