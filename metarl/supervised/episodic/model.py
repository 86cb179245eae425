"""What every episodic classifier shares: the episode interface and the conv embedding.

An episode model maps a task's labelled support set and its queries to class scores in one
forward pass. Everything is batched over a leading task axis ``T``: support images
``x_s [T, S, 1, 28, 28]`` with labels ``y_s [T, S]`` in ``0..N-1``, queries
``x_q [T, Q, 1, 28, 28]``; scores come back as ``[T, Q, N]``.

The embedding is the conv net of the MAML, Prototypical, Matching and Relation papers' Omniglot
experiments: four blocks of ``3x3 conv (64) -> batch norm -> ReLU -> 2x2 max-pool``. Batch norm
uses each task's own statistics (over that task's support and query images), always, as the
MAML conv net does (``metarl.supervised.omniglot.model``): a task's predictions never depend on
the other tasks of a batch, so results do not depend on how an evaluation chunks its tasks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.supervised.omniglot.model import task_slices

BN_EPS = 1e-5


def per_task_batch_norm(h: Tensor, tasks: int, weight: Tensor, bias: Tensor) -> Tensor:
    """Batch norm of ``h [T*B, C, H, W]`` with each task's statistics::

        y = (h - mean_t) / sqrt(var_t + eps) * weight + bias

    ``mean_t``, ``var_t``: per channel over task t's ``B`` images and their pixels (the biased
    variance, as ``F.batch_norm`` in training mode). The tasks' channels are stacked
    (``[B, T*C, H, W]``) so that one fused ``F.batch_norm`` computes every task's statistics:
    on a CPU twice as fast as the same arithmetic written out (tests compare the two)."""
    if h.shape[0] % tasks:
        raise ValueError(f"{h.shape[0]} images do not split into {tasks} tasks")
    batch = h.shape[0] // tasks
    stacked = (h.view(tasks, batch, *h.shape[1:]).transpose(0, 1)
               .reshape(batch, tasks * h.shape[1], *h.shape[2:]))
    y = F.batch_norm(stacked, None, None, weight.repeat(tasks), bias.repeat(tasks),
                     training=True, eps=BN_EPS)
    return y.view(batch, tasks, *h.shape[1:]).transpose(0, 1).reshape(h.shape)


class ConvEmbedding(nn.Module):
    """The 4-block conv embedding, run on a batch of tasks.

    ``forward(x [T, B, C, 28, 28]) -> [T, B, hidden * s * s]`` (``s = 1`` after four blocks:
    64 features); ``feature_maps`` keeps the spatial layout, ``[T, B, hidden, s, s]``, for a
    model that compares maps (Relation Networks). ``pool_blocks`` blocks end in max-pooling
    (all by default; the Relation Network's embedding pools in the first two only).
    """

    def __init__(self, *, in_channels: int = 1, hidden: int = 64, num_blocks: int = 4,
                 pool_blocks: int | None = None):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        pool_blocks = num_blocks if pool_blocks is None else pool_blocks
        if not 0 <= pool_blocks <= num_blocks:
            raise ValueError(f"pool_blocks must be in [0, {num_blocks}], got {pool_blocks}")
        self.hidden = hidden
        self.pool_blocks = pool_blocks
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else hidden, hidden, kernel_size=3, padding=1)
            for i in range(num_blocks))
        self.norm_weight = nn.Parameter(torch.ones(num_blocks, hidden))
        self.norm_bias = nn.Parameter(torch.zeros(num_blocks, hidden))

    def feature_maps(self, x: Tensor) -> Tensor:
        """``[T, B, C, H, W] -> [T, B, hidden, h, w]``, tasks in the groups of
        ``omniglot.model.task_slices`` (two on a CPU, all on other devices)."""
        if x.dim() != 5:
            raise ValueError(f"expected images [T, B, C, H, W], got shape {tuple(x.shape)}")
        parts = [self.group_maps(x[part]) for part in task_slices(x.shape[0], x.device)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def group_maps(self, x: Tensor) -> Tensor:
        """``feature_maps`` of one group of G tasks, run as grouped convolutions: the tasks'
        channels are stacked (``[B, G*C, H, W]``, channels-last), each conv has ``groups=G``
        with the shared weights repeated, and batch norm over the stacked channels normalises
        each task's channels with its own statistics (as MAML's ``grouped_features``: on a CPU
        twice as fast as one convolution over all the tasks' images). Max-pooling comes before
        the ReLU: ``relu(maxpool(h)) == maxpool(relu(h))``."""
        tasks, batch = x.shape[:2]
        h = x.transpose(0, 1).reshape(batch, tasks * x.shape[2], *x.shape[3:])
        h = h.contiguous(memory_format=torch.channels_last)
        for i, conv in enumerate(self.convs):
            h = F.conv2d(h, conv.weight.repeat(tasks, 1, 1, 1), conv.bias.repeat(tasks),
                         padding=1, groups=tasks)
            h = F.batch_norm(h, None, None, self.norm_weight[i].repeat(tasks),
                             self.norm_bias[i].repeat(tasks), training=True, eps=BN_EPS)
            if i < self.pool_blocks:
                h = F.max_pool2d(h, 2)
            h = F.relu(h)
        return h.reshape(batch, tasks, self.hidden, *h.shape[2:]).transpose(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.feature_maps(x).flatten(2)

    def output_size(self, image_size: int = 28) -> int:
        """Features per image of ``forward`` for square images of ``image_size`` pixels."""
        side = image_size
        for _ in range(self.pool_blocks):
            side //= 2
        return self.hidden * side * side


def episode_ways(support_y: Tensor, ways: int) -> None:
    """Check that every task's support labels are in ``0..ways-1``."""
    if support_y.numel() and (int(support_y.min()) < 0 or int(support_y.max()) >= ways):
        raise ValueError(f"support labels must be in 0..{ways - 1} for a {ways}-way model, got "
                         f"{int(support_y.min())}..{int(support_y.max())}")


def check_labels(labels: Tensor, ways: int, name: str) -> None:
    """Check that ``labels`` (any shape, integer) are in ``0..ways-1``; the message names
    ``name`` (e.g. "query labels"), the bad value and its position."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    bad = (labels < 0) | (labels >= ways)
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} must be in 0..{ways - 1} for a {ways}-way model, got "
                         f"{int(labels[where])} at index {where}")


def check_episode(support_x: Tensor, support_y: Tensor, query_x: Tensor, ways: int) -> None:
    """Check an episode batch: ``support_x [T, S, ...]``, ``support_y [T, S]`` in ``0..N-1``
    with every class present in every task, ``query_x [T, Q, ...]`` shaped like the support."""
    if support_y.dim() != 2 or tuple(support_x.shape[:2]) != tuple(support_y.shape):
        raise ValueError(f"support images [T, S, ...] and labels [T, S] disagree: "
                         f"{tuple(support_x.shape)} vs {tuple(support_y.shape)}")
    if query_x.shape[0] != support_x.shape[0] or query_x.shape[2:] != support_x.shape[2:]:
        raise ValueError(f"query images {tuple(query_x.shape)} do not match the support's "
                         f"tasks and image shape {tuple(support_x.shape)}")
    class_counts(support_y, ways)


def class_counts(labels: Tensor, ways: int) -> Tensor:
    """Support examples per class, ``labels [T, S] -> [T, N]`` (long); raises if a label is
    outside ``0..N-1`` or a task has no example of some class (no prototype, no class map)."""
    check_labels(labels, ways, "support labels")
    counts = F.one_hot(labels, ways).sum(1)
    empty = (counts == 0).nonzero()
    if len(empty):
        task, k = (int(i) for i in empty[0])
        raise ValueError(f"task {task} has no support example of class {k}: every class "
                         f"0..{ways - 1} needs at least one")
    return counts


def class_sums(x: Tensor, labels: Tensor, ways: int) -> Tensor:
    """Sum of each class's support features::

        s[t, k] = sum_{i : labels[t, i] = k} x[t, i]

    ``x [T, S, *F]``, ``labels [T, S]`` -> ``[T, N, *F]`` (every class must be present)."""
    class_counts(labels, ways)
    one_hot = F.one_hot(labels, ways).to(x.dtype)  # [T, S, N]
    sums = one_hot.transpose(1, 2) @ x.flatten(2)  # [T, N, prod(F)]
    return sums.view(*sums.shape[:2], *x.shape[2:])


def class_means(x: Tensor, labels: Tensor, ways: int) -> Tensor:
    """Mean of each class's support features, ``x [T, S, *F]`` -> ``[T, N, *F]``::

        m[t, k] = (1 / |S_tk|) sum_{i : labels[t, i] = k} x[t, i]"""
    counts = class_counts(labels, ways).to(x.dtype)
    sums = class_sums(x, labels, ways)
    return sums / counts.view(*counts.shape, *([1] * (x.dim() - 2)))


def embed_episode(embedding: Callable[[Tensor], Tensor], support_x: Tensor, query_x: Tensor
                  ) -> tuple[Tensor, Tensor]:
    """Run ``embedding`` on each task's support and query images together (one call, so batch
    norm sees the task's whole episode, as MAML's conv net does) and split the result back:
    ``[T, S, ...]``, ``[T, Q, ...]`` -> ``([T, S, ...], [T, Q, ...])``."""
    out = embedding(torch.cat([support_x, query_x], dim=1))
    return out[:, :support_x.shape[1]], out[:, support_x.shape[1]:]


def check_ways(ways: int, minimum: int = 1) -> int:
    """``ways`` as an int, raising unless it is an integer ``>= minimum``."""
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < minimum:
        raise ValueError(f"ways must be an integer >= {minimum}, got {ways!r}")
    return ways


class EpisodeModel(nn.Module):
    """A classifier of queries given the labelled support set of their episode.

    Subclasses implement ``episode_logits``; ``episode_loss`` is the cross-entropy of those
    scores unless the method trains on another objective (Relation's MSE, Siamese pairs).
    """

    #: N: classes per episode.
    ways: int

    def episode_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """Class scores ``[T, Q, N]`` of every query; the argmax is the prediction."""
        raise NotImplementedError

    def episode_loss(self, support_x: Tensor, support_y: Tensor, query_x: Tensor,
                     query_y: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss [T], accuracy [T])``: each task's mean query cross-entropy (differentiable)
        and its query accuracy (no gradient)."""
        check_labels(query_y, self.ways, "query labels")
        logits = self.episode_logits(support_x, support_y, query_x)
        return cross_entropy_and_accuracy(logits, query_y)


def cross_entropy_and_accuracy(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``logits [T, Q, N]``, ``y [T, Q]`` -> per-task mean cross-entropy and accuracy ``[T]``."""
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
    return loss.mean(1), accuracy(logits, y)


def accuracy(scores: Tensor, y: Tensor) -> Tensor:
    """Per-task fraction of queries whose highest score is their label, ``[T]`` (no grad)."""
    return (scores.detach().argmax(-1) == y).float().mean(1)
