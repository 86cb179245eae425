"""A memory-augmented neural network (MANN) with Least-Recently-Used Access, on episodes.

Santoro, Bartunov, Botvinick, Wierstra & Lillicrap, "Meta-Learning with Memory-Augmented Neural
Networks", ICML 2016. The black-box family: no gradient step and no metric at test time; an LSTM
controller reads a task's labelled examples one at a time and stores what it needs in an
external memory ``M [R_mem, W]`` (rows x width), addressed by content alone. At step ``t``, for
each of the ``n`` heads (the paper's "number of reads"; one read and one write each)::

    k_t, alpha_t  = heads(h_t)                           key (tanh), write gate
    w^lu_{t-1}(i) = 1 if w^u_{t-1}(i) is among the n smallest, else 0     (least used)
    w^w_t         = sigmoid(alpha_t) w^r_{t-1} + (1 - sigmoid(alpha_t)) w^lu_{t-1}
    M_t(i)        = M_{t-1}(i) (least-used rows zeroed) + sum_heads w^w_t(i) k_t
    w^r_t(i)      = softmax_i beta K(k_t, M_t(i)),   K the cosine similarity, beta > 0
    r_t           = sum_i w^r_t(i) M_t(i)
    w^u_t         = gamma w^u_{t-1} + sum_heads (w^r_t + w^w_t)

and the class scores are ``W [h_t, r_t]`` (the paper's softmax output layer, before the
softmax). The controller's input is the step's input concatenated with the previous reads
``r_{t-1}``. Read together with the paper:

* **Heads.** The paper's ``w^lu`` has ``n`` ones; each write head here takes one of them, head
  ``j`` the row of the ``j``-th smallest usage (ties: the lowest row), so the ``n`` writes of a
  step go to ``n`` different fresh rows, and ``w^lu`` is their sum. Before writing, those rows are
  zeroed: the paper zeroes "the least used memory location" ahead of its write; with ``n``
  writers each one's fresh row is cleared (for ``n = 1`` the two read the same).
* **The key is what is written** (the paper's ``M_t(i) += w^w_t(i) k_t``). The NTM and some
  re-implementations write a separate add vector ``a_t``; at initialisation ``a_t`` and ``k_t``
  are then unrelated projections of ``h_t``, so a query's key picks the row its own support
  image wrote no more often than any other: the read carries no sign of the query's label, so
  the gradient has nothing to strengthen, and training sits at chance. Writing the key, a
  query's key is close to its support's key from the first step (both are the same projection
  of similar controller states), and the read brings back that support's key, which carries
  its label.
* **Key strength** ``beta`` (``key_strength``; 1 is the paper's). The paper's read is
  ``softmax_i K``, the NTM's content addressing ``softmax_i beta K`` (Graves et al., 2014,
  eq. 5, there ``beta`` emitted by the controller). A cosine lies in ``[-1, 1]``, so with
  ``beta = 1`` no row gets more than ``e^2`` times another's weight: over 128 rows the read is
  close to the mean of the memory, and its class signal too weak to learn from. A larger fixed
  ``beta`` lets one row dominate; it is a constant rather than the NTM's learnt one, because a
  learnt ``beta`` that starts near 1 stayed on the same plateau. docs/results.md ("Why MANN
  sat at chance") has the measurements behind both choices.
* **Cosine.** ``K(k, m) = k.m / (sqrt(|k|^2 + eps) sqrt(|m|^2 + eps))``: a zero row (the
  empty memory) scores 0 with finite gradients, where the plain cosine is 0/0.
* **Initial state.** ``h, c, r, M, w^u, w^r`` all zero.
* **Sizes** (the paper's Omniglot experiments): LSTM of 200 units, memory of 128 rows x 40, 4
  read heads; usage decay ``gamma = 0.95``, the value of the public re-implementations;
  ``beta = 10``.

**Adapted to the episode interface.** The paper feeds raw pixels (20x20) in a single stream
whose labels come one step late and scores every step. Here:

* the input of a step is the 4-block conv embedding of the image (``ConvEmbedding``, 64
  features for 28x28; batch norm with the statistics of the task's support and query images,
  as in the rest of the episodic family, so the families compare on the same embedding),
  concatenated with a one-hot label;
* each support example is one step ``(x_i, onehot(y_i))`` that writes to memory (the label is
  given with its image: with a support/query split there is nothing to predict on a support
  step, so the one-step offset is dropped);
* each query is one step ``(x^, 0)`` from the state after the whole support set that only reads:
  queries are scored independently of each other (given the embedding) and all at once;
* **support order.** The episode sampler lists the support class by class, so labels would come
  in the same order in every episode and the controller could learn the label from the position
  instead of from the label input. ``episode_logits`` therefore presents each task's support in
  an order that depends only on its images (``support_order``: sorted by a fixed projection of
  the pixels): a pseudo-random order with respect to the labels, as the paper's shuffled
  episodes, that needs no random generator, never depends on the other tasks of the batch, and
  makes a task's scores a function of its support *set* (the same for any listing of it).

Shapes: ``T`` tasks, ``S`` support and ``Q`` query examples per task, ``n`` heads, memory
``R_mem x W``, the ``N`` ways; all tasks step together, one Python loop step per support example.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.nonfinite import NonFiniteError
from metarl.supervised.episodic.model import ConvEmbedding, EpisodeModel, episode_ways

#: ``eps`` of the cosine similarity (see ``cosine_similarity``).
COSINE_EPS = 1e-6
#: Golden-ratio increment of the pixel weights of ``support_order`` (a Weyl sequence).
_GOLDEN = 0.6180339887498949


def cosine_similarity(keys: Tensor, memory: Tensor, eps: float = COSINE_EPS) -> Tensor:
    """``K[t, ..., i] = k.M(i) / (sqrt(|k|^2 + eps) sqrt(|M(i)|^2 + eps))``.

    ``keys [T, ..., W]``, ``memory [T, R_mem, W]`` -> ``[T, ..., R_mem]``. The ``eps`` inside the
    square roots keeps a zero key or row at similarity 0 with finite gradients."""
    if keys.shape[0] != memory.shape[0] or keys.shape[-1] != memory.shape[-1]:
        raise ValueError(f"keys {tuple(keys.shape)} do not match memory {tuple(memory.shape)}: "
                         "need keys [T, ..., W] and memory [T, R_mem, W]")
    dots = torch.einsum("t...w,tmw->t...m", keys, memory)
    key_norm = keys.pow(2).sum(-1, keepdim=True).add(eps).sqrt()  # [T, ..., 1]
    row_norm = memory.pow(2).sum(-1).add(eps).sqrt()  # [T, R_mem]
    row_norm = row_norm.view(row_norm.shape[0], *([1] * (keys.dim() - 2)), -1)
    return dots / (key_norm * row_norm)


def read_weights(keys: Tensor, memory: Tensor, strength: float = 1.0) -> Tensor:
    """``w^r[t, ..., i] = softmax_i beta K(k, M(i))``, ``beta = strength`` (the paper: 1):
    ``keys [T, ..., W]``, ``memory [T, R_mem, W]`` -> ``[T, ..., R_mem]`` (each sums to 1 over
    the rows)."""
    return torch.softmax(strength * cosine_similarity(keys, memory), dim=-1)


def read_memory(weights: Tensor, memory: Tensor) -> Tensor:
    """``r[t, ...] = sum_i w[t, ..., i] M[t, i]``: ``weights [T, ..., R_mem]``,
    ``memory [T, R_mem, W]`` -> ``[T, ..., W]``."""
    return torch.einsum("t...m,tmw->t...w", weights, memory)


def least_used_weights(usage: Tensor, heads: int) -> Tensor:
    """One-hot least-used weights per head, ``[T, heads, R_mem]``, from ``usage [T, R_mem]``.

    Head ``j`` gets the row of the ``j``-th smallest usage (ties: the lowest row index first),
    so the sum over heads is the paper's ``w^lu(i) = 1 if usage(i) is among the n smallest``."""
    rows = usage.shape[-1]
    if not 1 <= heads <= rows:
        raise ValueError(f"heads must be in 1..{rows} (the memory rows), got {heads}")
    order = torch.argsort(usage, dim=-1, stable=True)[:, :heads]  # [T, heads]
    return F.one_hot(order, rows).to(usage.dtype)


def write_weights(gate: Tensor, prev_read: Tensor, prev_least_used: Tensor) -> Tensor:
    """``w^w_t = sigmoid(alpha_t) w^r_{t-1} + (1 - sigmoid(alpha_t)) w^lu_{t-1}``.

    ``gate`` (alpha, the logit) ``[T, n]``; ``prev_read``, ``prev_least_used`` ``[T, n, R_mem]``
    -> ``[T, n, R_mem]``."""
    s = torch.sigmoid(gate).unsqueeze(-1)
    return s * prev_read + (1 - s) * prev_least_used


def write_memory(memory: Tensor, weights: Tensor, vectors: Tensor, least_used: Tensor
                 ) -> Tensor:
    """``M_t(i) = M_{t-1}(i) (1 - max_j w^lu_j(i)) + sum_j w^w_j(i) v_j``.

    The least-used rows (those of any head's ``least_used``) are zeroed, then every head ``j``
    adds its vector ``v_j`` (the MANN's: its key). ``memory [T, R_mem, W]``, ``weights`` and
    ``least_used`` ``[T, n, R_mem]``, ``vectors [T, n, W]`` -> ``[T, R_mem, W]``."""
    keep = 1 - least_used.amax(dim=1)  # [T, R_mem]
    return memory * keep.unsqueeze(-1) + torch.einsum("tjm,tjw->tmw", weights, vectors)


def update_usage(usage: Tensor, read: Tensor, write: Tensor, gamma: float) -> Tensor:
    """``w^u_t = gamma w^u_{t-1} + sum_j w^r_{t,j} + sum_j w^w_{t,j}``: ``usage [T, R_mem]``,
    ``read``, ``write`` ``[T, n, R_mem]`` -> ``[T, R_mem]``."""
    return gamma * usage + read.sum(1) + write.sum(1)


def support_order(support_x: Tensor) -> Tensor:
    """The order ``[T, S]`` (indices into the support axis) in which a task's support is shown.

    Examples are sorted by the fixed projection ``s_i = sum_p x_i[p] c_p`` of their pixels, with
    ``c_p = frac((p + 1) g) - 1/2`` (``g`` the golden ratio's fraction, a Weyl sequence), in
    float64; ties keep the given order. The order is a function of the images alone: it does
    not depend on the other tasks, nor on the order the support was listed in (up to identical
    images), and it is unrelated to the labels the sampler gave by position."""
    if support_x.dim() < 2:
        raise ValueError(f"expected support images [T, S, ...], got shape "
                         f"{tuple(support_x.shape)}")
    flat = support_x.detach().flatten(2).to(torch.float64)  # [T, S, D]
    index = torch.arange(1, flat.shape[-1] + 1, dtype=torch.float64, device=flat.device)
    weights = torch.frac(index * _GOLDEN) - 0.5
    return torch.argsort((flat * weights).sum(-1), dim=-1, stable=True)


class MemoryState(NamedTuple):
    """What the MANN carries from one step to the next (batched over ``T`` tasks)."""

    h: Tensor  # controller output [T, controller_size]
    c: Tensor  # controller cell [T, controller_size]
    memory: Tensor  # [T, R_mem, W]
    reads: Tensor  # r_t [T, n, W]
    read_weights: Tensor  # w^r_t [T, n, R_mem]
    usage: Tensor  # w^u_t [T, R_mem]


class MANN(EpisodeModel):
    """Memory-augmented neural network with LRUA (Santoro et al., 2016) on episodes.

    ``hidden``: conv embedding channels (64 features per 28x28 image); ``controller_size``: LSTM
    units; ``memory_rows`` x ``memory_width``: the memory; ``num_reads``: heads (one read and one
    write each); ``gamma``: usage decay; ``key_strength``: ``beta`` of the reads. Defaults: the
    paper's sizes and ``beta = 10`` (see the module docstring).
    """

    def __init__(self, ways: int, *, hidden: int = 64, controller_size: int = 200,
                 memory_rows: int = 128, memory_width: int = 40, num_reads: int = 4,
                 gamma: float = 0.95, key_strength: float = 10.0):
        super().__init__()
        for name, value in (("ways", ways), ("hidden", hidden),
                            ("controller_size", controller_size), ("memory_rows", memory_rows),
                            ("memory_width", memory_width), ("num_reads", num_reads)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_reads > memory_rows:
            raise ValueError(f"num_reads={num_reads} exceeds memory_rows={memory_rows}: every "
                             "head writes to its own least-used row; use num_reads <= "
                             f"{memory_rows}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma (the usage decay) must be in [0, 1], got {gamma}")
        if not (math.isfinite(key_strength) and key_strength > 0):
            raise ValueError(f"key_strength (beta of the reads) must be a finite number > 0, "
                             f"got {key_strength}")
        self.ways = ways
        self.memory_rows, self.memory_width = memory_rows, memory_width
        self.num_reads, self.gamma, self.key_strength = num_reads, gamma, key_strength
        self.embedding = ConvEmbedding(hidden=hidden)
        features = self.embedding.output_size()
        self.controller = nn.LSTMCell(features + ways + num_reads * memory_width, controller_size)
        # per head: key (W), write gate alpha (1)
        self.heads = nn.Linear(controller_size, num_reads * (memory_width + 1))
        self.output = nn.Linear(controller_size + num_reads * memory_width, ways)

    def initial_state(self, tasks: int, like: Tensor) -> MemoryState:
        """The all-zero state of ``tasks`` tasks (dtype and device of ``like``)."""
        n, rows, width = self.num_reads, self.memory_rows, self.memory_width
        zeros = like.new_zeros
        size = self.controller.hidden_size
        return MemoryState(h=zeros(tasks, size), c=zeros(tasks, size),
                           memory=zeros(tasks, rows, width), reads=zeros(tasks, n, width),
                           read_weights=zeros(tasks, n, rows), usage=zeros(tasks, rows))

    def _head_outputs(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``h [..., controller_size]`` -> keys ``[..., n, W]`` and gates ``[..., n]``."""
        out = self.heads(h).unflatten(-1, (self.num_reads, self.memory_width + 1))
        key, gate = out.split([self.memory_width, 1], dim=-1)
        return torch.tanh(key), gate.squeeze(-1)

    def step(self, inputs: Tensor, state: MemoryState) -> MemoryState:
        """One writing step: ``inputs [T, features + N]`` (embedding and one-hot label)."""
        controller_in = torch.cat([inputs, state.reads.flatten(1)], dim=-1)
        h, c = self.controller(controller_in, (state.h, state.c))
        key, gate = self._head_outputs(h)
        least_used = least_used_weights(state.usage, self.num_reads)  # from w^u_{t-1}
        w_write = write_weights(gate, state.read_weights, least_used)
        memory = write_memory(state.memory, w_write, key, least_used)
        w_read = read_weights(key, memory, self.key_strength)
        return MemoryState(h=h, c=c, memory=memory, reads=read_memory(w_read, memory),
                           read_weights=w_read,
                           usage=update_usage(state.usage, w_read, w_write, self.gamma))

    def write_support(self, support_features: Tensor, support_y: Tensor) -> MemoryState:
        """The state after the support steps ``(features_i, onehot(y_i))``, in the order given:
        ``support_features [T, S, features]``, ``support_y [T, S]``."""
        episode_ways(support_y, self.ways)
        labels = F.one_hot(support_y, self.ways).to(support_features.dtype)
        inputs = torch.cat([support_features, labels], dim=-1)
        state = self.initial_state(support_features.shape[0], support_features)
        for t in range(inputs.shape[1]):
            state = self.step(inputs[:, t], state)
        return state

    def query_keys(self, state: MemoryState, query_features: Tensor) -> tuple[Tensor, Tensor]:
        """The controller outputs ``h [T, Q, controller_size]`` and read keys ``[T, Q, n, W]`` of
        the queries ``query_features [T, Q, features]``, each one controller step
        ``(features, 0)`` from ``state``."""
        tasks, queries = query_features.shape[:2]

        def per_query(x: Tensor) -> Tensor:  # [T, ...] -> [T*Q, ...]
            return x.unsqueeze(1).expand(tasks, queries, *x.shape[1:]).flatten(0, 1)

        no_label = query_features.new_zeros(tasks, queries, self.ways)
        controller_in = torch.cat([query_features, no_label,
                                   state.reads.flatten(1).unsqueeze(1).expand(-1, queries, -1)],
                                  dim=-1)
        h, _ = self.controller(controller_in.flatten(0, 1), (per_query(state.h),
                                                             per_query(state.c)))
        h = h.view(tasks, queries, -1)
        key, _ = self._head_outputs(h)
        return h, key

    def read_queries(self, state: MemoryState, query_features: Tensor) -> Tensor:
        """Scores ``[T, Q, N]`` of the queries ``query_features [T, Q, features]``, each one
        controller step (``query_keys``) that reads and does not write."""
        h, key = self.query_keys(state, query_features)
        reads = read_memory(read_weights(key, state.memory, self.key_strength), state.memory)
        return self.output(torch.cat([h, reads.flatten(2)], dim=-1))

    def episode_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """Class scores ``[T, Q, N]``: embed the task's images, write the support to memory in
        ``support_order``, then score each query from the memory."""
        if support_x.dim() != 5 or query_x.dim() != 5:
            raise ValueError(f"expected images [T, B, C, H, W], got support "
                             f"{tuple(support_x.shape)} and queries {tuple(query_x.shape)}")
        if (query_x.shape[0] != support_x.shape[0] or query_x.shape[2:] != support_x.shape[2:]
                or support_y.shape != support_x.shape[:2]):
            raise ValueError(f"support images {tuple(support_x.shape)}, labels "
                             f"{tuple(support_y.shape)} and queries {tuple(query_x.shape)} do "
                             "not agree: need [T, S, C, H, W], [T, S] and [T, Q, C, H, W]")
        shots = support_x.shape[1]
        features = self.embedding(torch.cat([support_x, query_x], dim=1))
        order = support_order(support_x)
        support_features = features[:, :shots].gather(
            1, order.unsqueeze(-1).expand(-1, -1, features.shape[-1]))
        state = self.write_support(support_features, support_y.gather(1, order))
        logits = self.read_queries(state, features[:, shots:])
        if not torch.isfinite(logits).all():
            raise NonFiniteError("MANN's class scores are non-finite (check the inputs, the "
                                 "learning rate and --key-strength)")
        return logits
