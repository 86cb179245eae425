"""The shared pieces of the episodic models: per-task batch norm and the conv embedding."""

import pytest
import torch
import torch.nn.functional as F

from metarl.supervised.episodic.model import BN_EPS, ConvEmbedding, per_task_batch_norm


def test_per_task_batch_norm_uses_each_task_s_own_statistics():
    torch.manual_seed(0)
    h = torch.randn(6, 4, 5, 5) * torch.arange(1.0, 7.0).view(6, 1, 1, 1)
    weight, bias = torch.rand(4), torch.randn(4)
    out = per_task_batch_norm(h, 2, weight, bias)
    for t in range(2):  # written out: mean and biased variance over the task's images and pixels
        g = h[3 * t:3 * (t + 1)]
        mean = g.mean(dim=(0, 2, 3), keepdim=True)
        var = g.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        expected = (g - mean) / torch.sqrt(var + BN_EPS) * weight.view(1, -1, 1, 1) \
            + bias.view(1, -1, 1, 1)
        torch.testing.assert_close(out[3 * t:3 * (t + 1)], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[3 * t:3 * (t + 1)],
                                   F.batch_norm(g, None, None, weight, bias, training=True),
                                   atol=1e-5, rtol=1e-5)


def test_per_task_batch_norm_refuses_a_batch_that_does_not_split():
    with pytest.raises(ValueError, match="7 images do not split into 2 tasks"):
        per_task_batch_norm(torch.zeros(7, 1, 2, 2), 2, torch.ones(1), torch.zeros(1))


def test_the_embedding_of_a_task_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    embedding = ConvEmbedding(hidden=8)
    x = torch.randn(3, 5, 1, 28, 28)
    alone = embedding(x[1:2])
    torch.testing.assert_close(embedding(x)[1:2], alone, atol=1e-5, rtol=1e-5)
    assert alone.shape == (1, 5, embedding.output_size()) == (1, 5, 8)
    assert ConvEmbedding(hidden=8, pool_blocks=2).feature_maps(x).shape == (3, 5, 8, 7, 7)


def plain_maps(embedding: ConvEmbedding, x: torch.Tensor) -> torch.Tensor:
    """The embedding written out one task at a time: conv, batch norm with the task's batch
    statistics, ReLU, max-pool."""
    out = []
    for images in x:
        h = images
        for i, conv in enumerate(embedding.convs):
            h = F.relu(F.batch_norm(conv(h), None, None, embedding.norm_weight[i],
                                    embedding.norm_bias[i], training=True, eps=BN_EPS))
            if i < embedding.pool_blocks:
                h = F.max_pool2d(h, 2)
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("pool_blocks", [None, 2])
def test_grouped_embedding_equals_one_task_at_a_time(pool_blocks):
    torch.manual_seed(0)
    embedding = ConvEmbedding(hidden=8, pool_blocks=pool_blocks)
    x = torch.randn(5, 4, 1, 28, 28)  # an odd number of tasks: the last group is shorter
    torch.testing.assert_close(embedding.feature_maps(x), plain_maps(embedding, x),
                               atol=1e-4, rtol=1e-4)
    grads = torch.autograd.grad(embedding(x).square().sum(), list(embedding.parameters()))
    expected = torch.autograd.grad(plain_maps(embedding, x).square().sum(),
                                   list(embedding.parameters()))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)
