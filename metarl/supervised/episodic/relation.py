"""Relation Networks: a learned comparator scores every (query, class) pair of feature maps.

Sung, Yang, Zhang, Xiang, Torr & Hospedales, "Learning to Compare: Relation Network for
Few-Shot Learning", CVPR 2018.

The embedding ``f`` is the 4-block conv net with max-pooling in its first two blocks only, so a
28x28 image becomes a ``64 x 7 x 7`` map. A class's map is the sum of its support maps (the
paper's K-shot rule), and the relation module ``g`` scores each query against each class
(eqs. 1-2)::

    m_k     = sum_{i : y_i = k} f(x_i)                                  [T, N, 64, 7, 7]
    r[q, k] = g(concat_channels(f(x_q), m_k))  in [0, 1]                 [T, Q, N]
    loss    = mean_{q, k} (r[q, k] - [y_q = k])^2                         [T]

``g``: two blocks of ``3x3 conv (64, padding 1) -> batch norm -> ReLU -> 2x2 max-pool`` on the
128-channel pair map (7 -> 3 -> 1 pixels: the 7x7 map halves to 3 after the first pool and to 1
after the second, so the head sees 64 features), then ``FC 8 -> ReLU -> FC 1 -> sigmoid``. The
relation module's batch norm uses each task's statistics (over its ``Q * N`` pairs), like the
embedding's. ``episode_logits`` returns the relation scores (argmax is the prediction) and
``episode_loss`` the paper's mean squared error against the one-hot labels.

(The paper's Omniglot embedding convolves without padding in its first two blocks, giving 5x5
maps and a 5 -> 2 -> 1 relation module; here the shared embedding pads, giving 7x7.)

The paper's Omniglot training: one episode per update with the test ways and shots and
19 (5-way 1-shot), 15 (5-way 5-shot), 10 (20-way 1-shot) or 5 (20-way 5-shot) queries per
class; Adam at learning rate 1e-3 halved every 100,000 episodes, 1,000,000 episodes; the
training classes augmented with rotations by 90, 180 and 270 degrees.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.supervised.episodic.model import (
    ConvEmbedding,
    EpisodeModel,
    accuracy,
    check_episode,
    check_labels,
    check_ways,
    class_sums,
    embed_episode,
    per_task_batch_norm,
)


def relation_pairs(query: Tensor, classes: Tensor) -> Tensor:
    """Every (query, class) pair's maps, concatenated along channels::

        pairs[t, q, k] = concat(query[t, q], classes[t, k])

    ``query [T, Q, C, H, W]``, ``classes [T, N, C, H, W]`` -> ``[T, Q, N, 2C, H, W]``."""
    tasks, queries = query.shape[:2]
    ways = classes.shape[1]
    return torch.cat([query.unsqueeze(2).expand(tasks, queries, ways, *query.shape[2:]),
                      classes.unsqueeze(1).expand(tasks, queries, ways, *classes.shape[2:])],
                     dim=3)


def relation_mse(scores: Tensor, y: Tensor) -> Tensor:
    """``mean_{q, k} (scores[t, q, k] - [y[t, q] = k])^2``: ``scores [T, Q, N]``, ``y [T, Q]`` ->
    ``[T]``."""
    target = F.one_hot(y, scores.shape[-1]).to(scores.dtype)
    return (scores - target).pow(2).mean(dim=(1, 2))


class RelationModule(nn.Module):
    """``g``: pair maps ``[T, P, 2C, h, w]`` -> relation scores ``[T, P]`` in ``[0, 1]``."""

    def __init__(self, in_channels: int = 128, hidden: int = 64, fc_hidden: int = 8,
                 map_size: int = 7):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(in_channels, hidden, 3, padding=1),
                                    nn.Conv2d(hidden, hidden, 3, padding=1)])
        self.norm_weight = nn.Parameter(torch.ones(2, hidden))
        self.norm_bias = nn.Parameter(torch.zeros(2, hidden))
        side = map_size // 2 // 2
        if side < 1:
            raise ValueError(f"feature maps of {map_size}x{map_size} pixels are too small for "
                             f"two 2x2 max-pools; need at least 4")
        self.fc1 = nn.Linear(hidden * side * side, fc_hidden)
        self.fc2 = nn.Linear(fc_hidden, 1)

    def forward(self, pairs: Tensor) -> Tensor:
        tasks, count = pairs.shape[:2]
        h = pairs.reshape(tasks * count, *pairs.shape[2:])
        for i, conv in enumerate(self.convs):
            h = per_task_batch_norm(conv(h), tasks, self.norm_weight[i], self.norm_bias[i])
            h = F.max_pool2d(F.relu(h), 2)
        h = F.relu(self.fc1(h.flatten(1)))
        return torch.sigmoid(self.fc2(h)).view(tasks, count)


class RelationNet(EpisodeModel):
    """Relation Network: summed class maps compared to query maps by a learned module."""

    def __init__(self, ways: int, *, hidden: int = 64, relation_hidden: int = 8,
                 image_size: int = 28):
        super().__init__()
        self.ways = check_ways(ways)
        self.embedding = ConvEmbedding(hidden=hidden, pool_blocks=2)
        self.relation = RelationModule(2 * hidden, hidden, relation_hidden,
                                       map_size=image_size // 2 // 2)

    def episode_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        """Relation scores ``[T, Q, N]`` in ``[0, 1]``."""
        check_episode(support_x, support_y, query_x, self.ways)
        support, query = embed_episode(self.embedding.feature_maps, support_x, query_x)
        pairs = relation_pairs(query, class_sums(support, support_y, self.ways))
        tasks, queries = pairs.shape[:2]
        return self.relation(pairs.flatten(1, 2)).view(tasks, queries, self.ways)

    def episode_loss(self, support_x: Tensor, support_y: Tensor, query_x: Tensor,
                     query_y: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss [T], accuracy [T])``: the mean squared error of the relation scores against
        the one-hot query labels, and the query accuracy."""
        check_labels(query_y, self.ways, "query labels")
        scores = self.episode_logits(support_x, support_y, query_x)
        return relation_mse(scores, query_y), accuracy(scores, query_y)
