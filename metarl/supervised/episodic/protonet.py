"""Prototypical Networks: a query's class is its nearest class mean in embedding space.

Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017.

Each class k of a task is represented by the mean embedding of its support examples, and a
query is scored by its negative squared Euclidean distance to every prototype (eqs. 1-2)::

    c_k = (1 / |S_k|) sum_{(x_i, y_i) in S, y_i = k} f(x_i)        c   [T, N, D]
    logits[q, k] = -|| f(x_q) - c_k ||^2                            out [T, Q, N]
    p(y = k | x_q) = softmax_k(logits[q])

trained by the cross-entropy of the queries (the base class's ``episode_loss``). ``f`` is the
4-block conv embedding (64 features for 28x28 Omniglot).

The paper's Omniglot training: 60-way episodes (more classes in training than at test), the
test shot (1 or 5), 5 queries per class, one episode per update, Adam at learning rate 1e-3
halved every 2000 episodes, no regularisation besides batch norm, stopped on validation loss;
1200 characters with their four rotations (4800 classes) for training.
"""

from __future__ import annotations

from torch import Tensor

from metarl.supervised.episodic.model import (
    ConvEmbedding,
    EpisodeModel,
    check_episode,
    check_ways,
    class_means,
    embed_episode,
)


def prototypes(embeddings: Tensor, labels: Tensor, ways: int) -> Tensor:
    """Class prototypes ``c[t, k] = mean of embeddings[t, i] over i with labels[t, i] = k``.

    ``embeddings [T, S, D]``, ``labels [T, S]`` in ``0..ways-1`` -> ``[T, N, D]``; raises if a
    label is out of range or a task has no support example of some class."""
    return class_means(embeddings, labels, ways)


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """``d[t, q, n] = sum_j (a[t, q, j] - b[t, n, j])^2``: ``a [T, Q, D]``, ``b [T, N, D]`` ->
    ``[T, Q, N]``. Computed from the differences (not ``|a|^2 + |b|^2 - 2ab``), so it is exact
    and never negative."""
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise ValueError(f"expected a [T, Q, D] and b [T, N, D], got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)


class ProtoNet(EpisodeModel):
    """Prototypical Network: ``episode_logits = -squared_distances(f(x_q), prototypes)``."""

    def __init__(self, ways: int, *, hidden: int = 64):
        super().__init__()
        self.ways = check_ways(ways)
        self.embedding = ConvEmbedding(hidden=hidden)

    def episode_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        check_episode(support_x, support_y, query_x, self.ways)
        support, query = embed_episode(self.embedding, support_x, query_x)
        return -squared_distances(query, prototypes(support, support_y, self.ways))
