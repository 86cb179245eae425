"""Matching Networks: a query's label distribution is an attention-weighted vote of the support.

Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, "Matching Networks for One Shot
Learning", NeurIPS 2016.

The prediction for a query ``x^`` is a mixture of the support labels (eqs. 1-2)::

    P(y^ = k | x^, S) = sum_i a(x^, x_i) [y_i = k]                     [T, Q, N]
    a(x^, x_i)        = softmax_i cos(f(x^, S), g(x_i, S))             [T, Q, S]

and training maximises ``log P`` of the query labels; ``episode_logits`` returns
``log max(P, 1e-12)`` so that the base class's cross-entropy is exactly that loss (the log of a
distribution is already normalised: ``log_softmax(log P) = log P``).

``f'``, ``g'``: the shared 4-block conv embedding (64 features). Without full-context
embeddings (``fce=False``) ``f = f'`` and ``g = g'``. With them (appendix A.1, 2):

* ``g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i)``: a bidirectional LSTM (hidden size D) runs over
  the task's support embeddings **in the order given** (``support_x``'s order; the result
  depends on it, as in the paper, so a shuffled support set changes the FCE model's scores);
* ``f(x^, S) = attLSTM(f'(x^), g(S), K)``: ``K`` "processing" steps of an LSTM whose state
  reads the support by content::

      r_{k-1}      = sum_i softmax_i(h_{k-1}^T g(x_i)) g(x_i)
      h^_k, c_k    = LSTM(f'(x^), [h_{k-1}, r_{k-1}], c_{k-1})
      h_k          = h^_k + f'(x^)                f(x^, S) = h_K

  with ``h_0 = f'(x^)``, ``c_0 = 0``. The LSTM's recurrent input ``[h, r]`` is implemented as
  an ``LSTMCell`` fed ``[f'(x^), r]`` with hidden ``h`` (the same gates: ``W [x; h; r]``).
  The paper does not give K; ``fce_steps=None`` (the default) uses the support size ``|S|``, as
  the Facebook reference implementation (Hariharan & Girshick, low-shot-shrink-hallucinate).

Every query is embedded independently of the other queries (apart from batch norm, whose
statistics are the task's).

The paper's Omniglot training: episodes of the test ways and shots (5- or 20-way, 1- or
5-shot), the conv net of 64 filters on 28x28 images, 1200 training characters with rotations
(as Prototypical Networks' split); the optimiser is not stated in the paper (reference
implementations use Adam at 1e-3). To my knowledge the Omniglot results were reported without
FCE (the paper used FCE on miniImageNet); ``fce`` defaults to True as the paper's full model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metarl.supervised.episodic.model import (
    ConvEmbedding,
    EpisodeModel,
    check_episode,
    check_ways,
    embed_episode,
)

#: Floor of the label probabilities before the log (a class with no attention mass).
PROBABILITY_FLOOR = 1e-12


def cosine_attention(query: Tensor, support: Tensor, eps: float = 1e-8) -> Tensor:
    """``a[t, q, i] = softmax_i cos(query[t, q], support[t, i])``: ``query [T, Q, D]``,
    ``support [T, S, D]`` -> ``[T, Q, S]`` (rows sum to one); ``eps`` floors the norms."""
    q = query / query.norm(dim=-1, keepdim=True).clamp_min(eps)
    s = support / support.norm(dim=-1, keepdim=True).clamp_min(eps)
    return torch.softmax(q @ s.transpose(1, 2), dim=-1)


def attention_label_log_probs(attention: Tensor, labels: Tensor, ways: int) -> Tensor:
    """``log max(sum_i a[t, q, i] [labels[t, i] = k], floor)``: ``attention [T, Q, S]``,
    ``labels [T, S]`` -> ``[T, Q, N]``."""
    one_hot = F.one_hot(labels, ways).to(attention.dtype)  # [T, S, N]
    return (attention @ one_hot).clamp_min(PROBABILITY_FLOOR).log()


class SupportContext(nn.Module):
    """``g(x_i, S) = h_fwd_i + h_bwd_i + g'(x_i)``: a bidirectional LSTM over ``[T, S, D]``
    (tasks are the LSTM's batch, the support its sequence, in the order given)."""

    def __init__(self, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)

    def forward(self, support: Tensor) -> Tensor:
        out, _ = self.lstm(support)  # [T, S, 2D]
        forward, backward = out.chunk(2, dim=-1)
        return forward + backward + support


class QueryContext(nn.Module):
    """``f(x^, S) = attLSTM(f'(x^), g(S), K)``: ``query [T, Q, D]``, ``support [T, S, D]`` ->
    ``[T, Q, D]`` (see the module docstring for the recurrence)."""

    def __init__(self, dim: int):
        super().__init__()
        self.cell = nn.LSTMCell(2 * dim, dim)

    def forward(self, query: Tensor, support: Tensor, steps: int) -> Tensor:
        tasks, queries, dim = query.shape
        h = query
        c = torch.zeros_like(query)
        for _ in range(steps):
            read = torch.softmax(h @ support.transpose(1, 2), dim=-1) @ support  # r_{k-1}
            h_hat, c = self.cell(torch.cat([query, read], -1).view(-1, 2 * dim),
                                 (h.reshape(-1, dim), c.reshape(-1, dim)))
            h = h_hat.view(tasks, queries, dim) + query
            c = c.view(tasks, queries, dim)
        return h


class MatchingNet(EpisodeModel):
    """Matching Network: attention over the support by cosine similarity, with optional
    full-context embeddings (``fce``) of ``fce_steps`` processing steps (None: ``|S|``)."""

    def __init__(self, ways: int, *, hidden: int = 64, fce: bool = True,
                 fce_steps: int | None = None):
        super().__init__()
        self.ways = check_ways(ways)
        if fce_steps is not None and (isinstance(fce_steps, bool)
                                      or not isinstance(fce_steps, int) or fce_steps < 0):
            raise ValueError(f"fce_steps must be None (the support size) or an integer >= 0, "
                             f"got {fce_steps!r}")
        self.fce = fce
        self.fce_steps = fce_steps
        self.embedding = ConvEmbedding(hidden=hidden)
        dim = self.embedding.output_size()
        self.support_context = SupportContext(dim) if fce else None
        self.query_context = QueryContext(dim) if fce else None

    def episode_logits(self, support_x: Tensor, support_y: Tensor, query_x: Tensor) -> Tensor:
        check_episode(support_x, support_y, query_x, self.ways)
        support, query = embed_episode(self.embedding, support_x, query_x)
        if self.fce:
            support = self.support_context(support)
            steps = support.shape[1] if self.fce_steps is None else self.fce_steps
            query = self.query_context(query, support, steps)
        return attention_label_log_probs(cosine_attention(query, support), support_y, self.ways)
