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
differentiates (full back-propagation through time).

The trial sampler evaluates the same maths in the *task-stacked* form (:meth:`task_step`,
:meth:`task_heads`): rows ``[K, M, ...]`` (K tasks, M trials each), every matmul one per task
on a fresh copy of its rows (:func:`task_matmul`), and ``σ(v) = 1 / (1 + exp(-v))`` from
``exp``. On one PyTorch thread (the sampler's), each task's
rows then come out bit for bit the same whatever K and wherever they sit in memory, so a meta-batch sampled in shards (worker
processes, Ray actors) equals the one sampled whole. A single ``GRUCell`` or ``Linear`` call
over all rows does not have that property (its kernels round differently for different row
counts and alignments, and ``torch.sigmoid`` computes the tail of a tensor on another path;
a batched matmul's rounding changes with its number of batches for some sizes).
The two forms agree to float32 rounding, so the loss's :meth:`unroll` recomputes the sampler's
states to rounding, not bit for bit.

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

    def task_step(self, x: Tensor, h: Tensor, alive: Tensor | None = None) -> Tensor:
        """:meth:`step` in the task-stacked form (module docstring): ``x [K, M, input]``, ``h [K,
        M, hidden]``, ``alive [K, M]`` -> ``[K, M, hidden]``::

            r = σ(W_ir x + b_ir + W_hr h + b_hr),   z = σ(W_iz x + b_iz + W_hz h + b_hz)
            n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),   h' = n + z ⊙ (h - n)

        (PyTorch's ``GRUCell``; ``h' = (1 - z) ⊙ n + z ⊙ h``)."""
        if x.dim() != 3 or x.shape[-1] != self.input_size or h.shape[:2] != x.shape[:2]:
            raise ValueError(f"task_step takes x [K, M, {self.input_size}] and h [K, M, "
                             f"{self.hidden_size}], got {tuple(x.shape)} and {tuple(h.shape)}")
        gru = self.gru
        i_r, i_z, i_n = (task_matmul(x, gru.weight_ih) + gru.bias_ih).chunk(3, -1)
        h_r, h_z, h_n = (task_matmul(h, gru.weight_hh) + gru.bias_hh).chunk(3, -1)
        r, z = _sigmoid(i_r + h_r), _sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        new = n + z * (h - n)
        return new if alive is None else torch.where(alive.unsqueeze(-1), new, h)

    def task_heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean [K, M, act], value [K, M])`` of states ``h [K, M, hidden]``, task-stacked."""
        mean = task_matmul(h, self.mean.weight) + self.mean.bias
        return mean, (task_matmul(h, self.value.weight) + self.value.bias).squeeze(-1)

    def unroll(self, x: Tensor, alive: Tensor, h0: Tensor | None = None) -> Tensor:
        """The states of whole trials: ``x [T, N, input]``, ``alive [T, N]`` (bool) ->
        ``h [T, N, hidden]`` with ``h_t = step(x_t, h_{t-1}, alive_t)`` from ``h0`` (default 0).

        A loop over t of the cell (the sampler's task-stacked states to float32 rounding); the
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


def task_matmul(x: Tensor, weight: Tensor) -> Tensor:
    """``x [K, N, in] @ weight.T`` for ``weight [out, in]``: ``[K, N, out]``, one matmul per task
    on a fresh contiguous copy of its rows. Each task's product is then the same call on the
    same bytes in any shard; a batched matmul (``bmm``) is not: its rounding changes with the
    number of batches for some output sizes (6 and 18 columns, for one)."""
    weight_t = weight.t().contiguous()
    return torch.stack([torch.mm(rows.clone(), weight_t) for rows in x.unbind(0)])


def _sigmoid(v: Tensor) -> Tensor:
    """``1 / (1 + exp(-v))`` from ``exp``, which computes every element on one path
    (``torch.sigmoid`` takes another for a tensor's tail, so an element's bits depend on where
    it sits)."""
    return torch.exp(-v).add_(1.0).reciprocal_()
