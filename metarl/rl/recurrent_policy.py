"""The GRU Gaussian policy of RL² (Duan, Schulman, Chen, Bartlett, Sutskever & Abbeel, "RL²: Fast
Reinforcement Learning via Slow Reinforcement Learning", arXiv:1611.02779, 2016).

The policy reads, at each step t of a trial, the observation together with what the previous
step returned, and carries a GRU state across the episodes of the trial::

    x_t = [o_t, a_{t-1}, r_{t-1}, d_{t-1}]      (zeros for a, r, d at the trial's first step)
    h_t = GRU(x_t, h_{t-1}),   h_{-1} = 0       (reset between trials, never between episodes)
    π(a_t | x_≤t) = N(a_t; W_μ h_t + b_μ, diag(σ²)),   σ = exp(log_std)   (state-independent)
    V(x_≤t) = w_V · h_t + b_V                   (the value head: PPO's critic, for GAE)

``d_{t-1}`` is 1 at the first step of every episode after the first (the previous step ended an
episode, by termination or truncation), so the policy knows it was put back at a start state.

Shapes: inputs ``[..., N, input_size]`` with ``input_size = obs + act + 2``; the state ``[N,
hidden_size]``. One call steps N sequences (the sampler's tasks x trials rows) at once;
:func:`unroll` runs the same cell over a whole trial ``[T, N, ...]`` and is what the PPO loss
differentiates (full back-propagation through time), so the loss recomputes the in-process
sampler's GRU states bit for bit (the same ``GRUCell`` kernel on the same rows; the heads,
applied to all steps at once, agree to float32 rounding). A sampler sharded over processes or Ray
actors steps fewer rows per call, whose kernels may round differently: its states agree with the
loss's to float32 rounding.

Steps a row did not take (an episode that ended before its slot in the trial was over, see
:mod:`metarl.rl.trial_sampler`) keep its state as it was: ``h_t = h_{t-1}`` where ``alive_t`` is
0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: ½ log(2πe): the entropy of N(0, 1) per dimension.
HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


def policy_inputs(obs: Tensor, prev_action: Tensor, prev_reward: Tensor,
                  prev_done: Tensor) -> Tensor:
    """``x = [o, a_prev, r_prev, d_prev]`` along the last axis.

    Args:
        obs: ``[..., obs]``.
        prev_action: ``[..., act]`` the action of the previous step (zeros at a trial's start).
        prev_reward: ``[...]`` its reward (0 at a trial's start).
        prev_done: ``[...]`` 1.0 where the previous step ended an episode, else 0.

    Returns:
        ``[..., obs + act + 2]``.
    """
    lead = obs.shape[:-1]
    for name, value in (("prev_action", prev_action.shape[:-1]),
                        ("prev_reward", prev_reward.shape), ("prev_done", prev_done.shape)):
        if value != lead:
            raise ValueError(f"{name} has leading shape {tuple(value)}, obs {tuple(lead)}; they "
                             "must match")
    return torch.cat([obs, prev_action, prev_reward.unsqueeze(-1), prev_done.unsqueeze(-1)], -1)


class GRUGaussianPolicy(nn.Module):
    """RL²'s policy: a GRU cell, a linear mean, a state-independent log-std and a value head.

    Args:
        obs_size: observation dimension.
        act_size: action dimension.
        hidden_size: GRU state size (the RL² paper used 256 units on its visual navigation
            task; ``metarl``'s default, 64, is garage's RL²-PPO GRU policy on the half-cheetah
            and keeps the per-step GRU call cheap beside the physics on CPU).
        init_log_std: initial value of every log-std entry.
        init_output_scale: factor on the mean layer's initial weights (small: the first actions
            are the N(0, σ²) noise alone, as ``GaussianMLPPolicy``'s ``init_output_scale``).

    Initialisation: PyTorch's default GRU weights (uniform ±1/√hidden), Xavier-uniform mean and
    value heads with zero biases.
    """

    def __init__(self, obs_size: int, act_size: int, hidden_size: int = 64,
                 init_log_std: float = 0.0, init_output_scale: float = 1.0) -> None:
        super().__init__()
        sizes = {"obs_size": obs_size, "act_size": act_size, "hidden_size": hidden_size}
        for name, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.obs_size, self.act_size, self.hidden_size = obs_size, act_size, hidden_size
        self.input_size = obs_size + act_size + 2
        self.gru = nn.GRUCell(self.input_size, hidden_size)
        self.mean = nn.Linear(hidden_size, act_size)
        self.value = nn.Linear(hidden_size, 1)
        self.log_std = nn.Parameter(torch.full((act_size,), float(init_log_std)))
        for head in (self.mean, self.value):
            nn.init.xavier_uniform_(head.weight)
            nn.init.zeros_(head.bias)
        with torch.no_grad():
            self.mean.weight.mul_(float(init_output_scale))

    def initial_state(self, rows: int, device: torch.device | str = "cpu") -> Tensor:
        """``h_{-1} = 0``: ``[rows, hidden_size]``, the state every trial starts from."""
        return torch.zeros(rows, self.hidden_size, device=device)

    def step(self, x: Tensor, h: Tensor, alive: Tensor | None = None) -> Tensor:
        """``h_t = GRU(x_t, h_{t-1})`` for N rows, ``[N, input] x [N, hidden] -> [N, hidden]``;
        rows where ``alive [N]`` (bool) is False keep ``h``."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"inputs have {x.shape[-1]} features; this policy takes obs + act "
                             f"+ 2 = {self.input_size}")
        new = self.gru(x, h)
        return new if alive is None else torch.where(alive.unsqueeze(-1), new, h)

    def unroll(self, x: Tensor, alive: Tensor, h0: Tensor | None = None) -> Tensor:
        """The states of whole trials: ``x [T, N, input]``, ``alive [T, N]`` (bool) ->
        ``h [T, N, hidden]`` with ``h_t = step(x_t, h_{t-1}, alive_t)`` from ``h0`` (default 0).

        A loop over t of the sampler's own cell, so that the states match the sampler's; the
        graph spans the whole trial (back-propagation through time)."""
        if x.dim() != 3 or alive.shape != x.shape[:2]:
            raise ValueError(f"unroll takes x [T, N, input] and alive [T, N], got "
                             f"{tuple(x.shape)} and {tuple(alive.shape)}")
        h = self.initial_state(x.shape[1], x.device) if h0 is None else h0
        states = []
        for t in range(x.shape[0]):
            h = self.step(x[t], h, alive[t])
            states.append(h)
        return torch.stack(states)

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean [..., act], log_std [..., act], value [...])`` of states ``h [..., hidden]``."""
        mean = self.mean(h)
        return mean, self.log_std.expand_as(mean), self.value(h).squeeze(-1)

    def entropy(self) -> Tensor:
        """Entropy of the Gaussian per step, the same in every state:
        ``Σ_d (log σ_d + ½ log 2πe)``."""
        return (self.log_std + HALF_LOG_2PI_E).sum()
