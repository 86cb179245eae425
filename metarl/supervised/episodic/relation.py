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

The pair map is never built. A convolution is linear in its input channels, so with the first
conv's weight split into its query half and its class half, ``W = [W_q | W_c]``::

    conv_W(concat(f(x_q), m_k)) + b = conv_{W_q}(f(x_q)) + conv_{W_c}(m_k) + b

and the first conv runs once per query map and once per class map (``Q + N`` maps per task
instead of ``Q * N``); the pair's pre-activation is the broadcast sum ``[T, Q, 1] + [T, 1, N]``,
normalised over the same ``Q * N`` maps of the task as before. The parameters are those of the
128-channel conv, so the function and the checkpoints are those of the paper's module.

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


def relation_mse(scores: Tensor, y: Tensor) -> Tensor:
    """``mean_{q, k} (scores[t, q, k] - [y[t, q] = k])^2``: ``scores [T, Q, N]``, ``y [T, Q]`` ->
    ``[T]``."""
    target = F.one_hot(y, scores.shape[-1]).to(scores.dtype)
    return (scores - target).pow(2).mean(dim=(1, 2))


class RelationModule(nn.Module):
    """``g``: query maps ``[T, Q, C, h, w]`` and class maps ``[T, N, C', h, w]`` -> relation
    scores ``[T, Q, N]`` in ``[0, 1]``, the score of each (query, class) pair whose map is the
    channel concatenation query then class (``C + C' = in_channels``)."""

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

    def forward(self, query: Tensor, classes: Tensor) -> Tensor:
        tasks, queries, ways = query.shape[0], query.shape[1], classes.shape[1]
        h = self.first_conv(query, classes).flatten(0, 2)  # [T*Q*N, hidden, h, w]
        h = self.norm_pool_relu(h, 0, tasks)
        h = self.norm_pool_relu(self.convs[1](h), 1, tasks)
        h = F.relu(self.fc1(h.flatten(1)))
        return torch.sigmoid(self.fc2(h)).view(tasks, queries, ways)

    def first_conv(self, query: Tensor, classes: Tensor) -> Tensor:
        """The first conv of every pair's map, ``[T, Q, N, hidden, h, w]``, by linearity::

            conv_W(concat(q, c)) + b = conv_{W[:, :C]}(q) + conv_{W[:, C:]}(c) + b

        (see the module docstring): ``Q + N`` convolutions per task, not ``Q * N``."""
        conv = self.convs[0]
        check_maps(query, classes, conv.in_channels)
        weight_query, weight_class = conv.weight.split([query.shape[2], classes.shape[2]], dim=1)
        by_query = F.conv2d(query.flatten(0, 1), weight_query, conv.bias, padding=1)
        by_class = F.conv2d(classes.flatten(0, 1), weight_class, padding=1)
        tasks = query.shape[0]
        return (by_query.view(tasks, -1, 1, *by_query.shape[1:])
                + by_class.view(tasks, 1, -1, *by_class.shape[1:]))

    def norm_pool_relu(self, h: Tensor, block: int, tasks: int) -> Tensor:
        """Block ``block``'s per-task batch norm, 2x2 max-pool and ReLU of ``h [T*P, ...]``
        (pooling first: ``relu(maxpool(h)) == maxpool(relu(h))``, and the ReLU sees fewer pixels)."""
        h = per_task_batch_norm(h, tasks, self.norm_weight[block], self.norm_bias[block])
        return F.relu(F.max_pool2d(h, 2))


def check_maps(query: Tensor, classes: Tensor, in_channels: int) -> None:
    """Check query maps ``[T, Q, C, h, w]`` and class maps ``[T, N, C', h, w]`` of the same tasks
    and pixels, with ``C + C'`` the relation module's ``in_channels``."""
    if (query.dim() != 5 or classes.dim() != 5 or query.shape[0] != classes.shape[0]
            or query.shape[3:] != classes.shape[3:]
            or query.shape[2] + classes.shape[2] != in_channels):
        raise ValueError(f"expected query maps [T, Q, C, h, w] and class maps [T, N, C', h, w] "
                         f"of the same tasks and pixels with C + C' = {in_channels}, got "
                         f"{tuple(query.shape)} and {tuple(classes.shape)}")


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
        return self.relation(query, class_sums(support, support_y, self.ways))

    def episode_loss(self, support_x: Tensor, support_y: Tensor, query_x: Tensor,
                     query_y: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss [T], accuracy [T])``: the mean squared error of the relation scores against
        the one-hot query labels, and the query accuracy."""
        check_labels(query_y, self.ways, "query labels")
        scores = self.episode_logits(support_x, support_y, query_x)
        return relation_mse(scores, query_y), accuracy(scores, query_y)
