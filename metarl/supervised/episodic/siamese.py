"""Siamese Networks: a learned verification score between two images, used for one-shot
classification by the most similar support example.

Koch, Zemel & Salakhutdinov, "Siamese Neural Networks for One-shot Image Recognition", ICML 2015
Deep Learning Workshop.

Both images go through the same embedding ``f`` (here the shared 4-block conv net, 64
features; the paper's is a larger conv net on 105x105 images ending in a 4096-unit sigmoid
layer), and their similarity is a weighted L1 distance squashed by a sigmoid (eq. in section
3.1)::

    p(x1, x2) = sigmoid(w . |f(x1) - f(x2)| + b)          w [D], b scalar

Training (``episode_loss``): every (query, support) pair of a task is a verification example
with target 1 if both have the same class and 0 otherwise, scored by binary cross-entropy;
positives and negatives weigh equally (an N-way episode has N - 1 negatives per positive)::

    loss_t = 1/2 mean_{pairs, same class} BCE + 1/2 mean_{pairs, different class} BCE   [T]

One-shot classification (``episode_logits``, and the accuracy of ``episode_loss``): a query's
score for class k is the similarity logit of the most similar support example of that class::

    logits[q, k] = max_{i : y_i = k} (w . |f(x_q) - f(x_i)| + b)          [T, Q, N]

The paper's Omniglot training: verification pairs from 30 alphabets (30k, 90k or 150k pairs,
each with 8 affine distortions), minibatches of 128 pairs, SGD with momentum (per-layer
learning rates and L2 weights found by Bayesian optimisation, the rate decayed by 1% per epoch,
momentum rising linearly from 0.5), up to 200 epochs stopped on 20-way one-shot validation
accuracy; evaluated by 20-way one-shot classification.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from metarl.supervised.episodic.model import (
    ConvEmbedding,
    EpisodeModel,
    accuracy,
    check_episode,
    check_labels,
    check_ways,
    embed_episode,
)


def pair_targets(query_y: Tensor, support_y: Tensor) -> Tensor:
    """``same[t, q, i] = [query_y[t, q] = support_y[t, i]]`` as floats: ``[T, Q]``, ``[T, S]`` ->
    ``[T, Q, S]``."""
    return (query_y.unsqueeze(2) == support_y.unsqueeze(1)).float()


def balanced_pair_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy over pairs with positives and negatives weighing half each::

        loss_t = 1/2 mean_{targets = 1} BCE + 1/2 mean_{targets = 0} BCE

    ``logits``, ``targets`` ``[T, Q, S]`` -> ``[T]``; every task needs both kinds of pair."""
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").flatten(1)
    positive = targets.flatten(1)
    n_pos, n_neg = positive.sum(1), (1 - positive).sum(1)
    if (n_pos == 0).any() or (n_neg == 0).any():
        task = int(((n_pos == 0) | (n_neg == 0)).nonzero()[0])
        raise ValueError(f"task {task} has {int(n_pos[task])} same-class and "
                         f"{int(n_neg[task])} different-class pairs; both must be >= 1")
    return 0.5 * (bce * positive).sum(1) / n_pos + 0.5 * (bce * (1 - positive)).sum(1) / n_neg


def max_per_class(scores: Tensor, labels: Tensor, ways: int) -> Tensor:
    """``out[t, q, k] = max_{i : labels[t, i] = k} scores[t, q, i]``: ``scores [T, Q, S]``,
    ``labels [T, S]`` -> ``[T, Q, N]`` (every class must have a support example)."""
    member = F.one_hot(labels, ways).transpose(1, 2).bool()  # [T, N, S]
    masked = scores.unsqueeze(2).masked_fill(~member.unsqueeze(1), float("-inf"))
    return masked.amax(-1)


class SiameseNet(EpisodeModel):
    """Siamese network: weighted-L1 similarity of shared embeddings, trained on the episode's
    (query, support) pairs, classifying by the most similar support example."""

    def __init__(self, ways: int, *, hidden: int = 64):
        super().__init__()
        self.ways = check_ways(ways, minimum=2)
        self.embedding = ConvEmbedding(hidden=hidden)
        self.distance = nn.Linear(self.embedding.output_size(), 1)  # w, b

    def pair_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """``w . |f(x_q) - f(x_i)| + b`` for every (query, support) pair, ``[T, Q, S]``."""
        check_episode(support_x, support_y, query_x, self.ways)
        support, query = embed_episode(self.embedding, support_x, query_x)
        distance = (query.unsqueeze(2) - support.unsqueeze(1)).abs()  # [T, Q, S, D]
        return self.distance(distance).squeeze(-1)

    def episode_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        pairs = self.pair_logits(support_x, support_y, query_x)
        return max_per_class(pairs, support_y, self.ways)

    def episode_loss(self, support_x: Tensor, support_y: Tensor, query_x: Tensor,
                     query_y: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss [T], accuracy [T])``: the balanced pair cross-entropy and the one-shot
        accuracy (most similar support example's class)."""
        check_labels(query_y, self.ways, "query labels")
        pairs = self.pair_logits(support_x, support_y, query_x)
        loss = balanced_pair_bce(pairs, pair_targets(query_y, support_y))
        return loss, accuracy(max_per_class(pairs, support_y, self.ways), query_y)
