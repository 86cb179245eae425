"""The Relation Network's first relation conv, split by linearity into a query half and a class
half, against the paper's concatenate-then-convolve form: scores, every parameter's gradient,
and the checkpoint layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metarl.supervised.episodic.model import class_sums, embed_episode, per_task_batch_norm
from metarl.supervised.episodic.relation import RelationModule, RelationNet

HIDDEN, QUERIES_PER_CLASS, SIDE = 16, 2, 28


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def concatenated_pairs(query, classes):
    """``pairs[t, q, k] = concat(query[t, q], classes[t, k])``: ``[T, Q, N, C + C', h, w]``."""
    tasks, queries, ways = query.shape[0], query.shape[1], classes.shape[1]
    return torch.cat([query.unsqueeze(2).expand(tasks, queries, ways, *query.shape[2:]),
                      classes.unsqueeze(1).expand(tasks, queries, ways, *classes.shape[2:])],
                     dim=3)


def reference_relation(module: RelationModule, query, classes):
    """The relation module as the paper writes it: both convs on every pair's concatenated
    map ``[T*Q*N, C + C', h, w]``, each followed by per-task batch norm, ReLU and max-pool."""
    tasks, queries, ways = query.shape[0], query.shape[1], classes.shape[1]
    h = concatenated_pairs(query, classes).flatten(0, 2)
    for i, conv in enumerate(module.convs):
        h = per_task_batch_norm(conv(h), tasks, module.norm_weight[i], module.norm_bias[i])
        h = F.max_pool2d(F.relu(h), 2)
    h = F.relu(module.fc1(h.flatten(1)))
    return torch.sigmoid(module.fc2(h)).view(tasks, queries, ways)


def reference_logits(model: RelationNet, support_x, support_y, query_x):
    support, query = embed_episode(model.embedding.feature_maps, support_x, query_x)
    return reference_relation(model.relation, query, class_sums(support, support_y, model.ways))


def random_model(ways: int, seed: int = 0) -> RelationNet:
    """A small Relation Network whose batch-norm scales and shifts are random too (at their
    initial ones and zeros they would hide a mixed-up channel)."""
    torch.manual_seed(seed)
    model = RelationNet(ways, hidden=HIDDEN, image_size=SIDE)
    with torch.no_grad():
        for module in (model.embedding, model.relation):
            module.norm_weight.uniform_(0.5, 1.5)
            module.norm_bias.normal_(0.0, 0.3)
    return model


def random_episode(tasks: int, ways: int, shots: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sy = torch.stack([torch.arange(ways).repeat(shots)[torch.randperm(ways * shots, generator=g)]
                      for _ in range(tasks)])
    qy = torch.randint(0, ways, (tasks, ways * QUERIES_PER_CLASS), generator=g)
    sx = torch.rand(tasks, ways * shots, 1, SIDE, SIDE, generator=g)
    qx = torch.rand(tasks, ways * QUERIES_PER_CLASS, 1, SIDE, SIDE, generator=g)
    return sx, sy, qx, qy


@pytest.mark.parametrize("ways, shots, tasks", [(5, 1, 3), (5, 5, 2), (20, 1, 2), (20, 5, 3)])
def test_split_first_conv_equals_concatenate_then_convolve(ways, shots, tasks):
    model = random_model(ways)
    sx, sy, qx, qy = random_episode(tasks, ways, shots)
    scores = model.episode_logits(sx, sy, qx)
    expected = reference_logits(model, sx, sy, qx)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)
    assert float(scores.detach().std()) > 1e-3  # scores that differ between pairs, not a constant

    params = dict(model.named_parameters())
    target = F.one_hot(qy, ways).to(scores.dtype)
    grads = torch.autograd.grad((scores - target).pow(2).mean(), list(params.values()))
    expected_grads = torch.autograd.grad((expected - target).pow(2).mean(), list(params.values()))
    for name, grad, expected_grad in zip(params, grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-5, msg=name)
    # (A conv's bias before batch norm cancels in the mean, so its gradient is rounding noise.)
    assert grads[list(params).index("relation.convs.0.weight")].abs().max() > 1e-4


def test_query_half_comes_first_and_each_task_is_normalised_alone():
    """The split module on maps whose halves differ in channel count (3 query, 5 class) equals
    the concatenated form, and a task's scores do not change when another task's maps do."""
    torch.manual_seed(1)
    module = RelationModule(8, 6, 4, map_size=5)
    with torch.no_grad():
        module.norm_bias.normal_()
    query, classes = torch.randn(3, 4, 3, 5, 5), torch.randn(3, 2, 5, 5, 5)
    scores = module(query, classes)
    torch.testing.assert_close(scores, reference_relation(module, query, classes))
    other_query, other_classes = query.clone(), classes.clone()
    other_query[1].normal_()
    other_classes[1].normal_()
    changed = module(other_query, other_classes)
    torch.testing.assert_close(changed[[0, 2]], scores[[0, 2]])
    assert not torch.allclose(changed[1], scores[1])


def test_maps_that_do_not_fill_the_first_conv_are_refused():
    module = RelationModule(8, 6, 4, map_size=5)
    with pytest.raises(ValueError, match=r"C \+ C' = 8, got \(2, 4, 3, 5, 5\) and "
                                         r"\(2, 2, 3, 5, 5\)"):
        module(torch.randn(2, 4, 3, 5, 5), torch.randn(2, 2, 3, 5, 5))
    with pytest.raises(ValueError, match="same tasks and pixels"):
        module(torch.randn(2, 4, 4, 5, 5), torch.randn(3, 2, 4, 5, 5))
    with pytest.raises(ValueError, match="same tasks and pixels"):
        module(torch.randn(2, 4, 4, 5, 5), torch.randn(2, 2, 4, 4, 4))


#: The parameters of ``RelationNet(5)`` and their shapes, as checkpoints store them.
CHECKPOINT_LAYOUT = {
    "embedding.norm_weight": (4, 64), "embedding.norm_bias": (4, 64),
    "embedding.convs.0.weight": (64, 1, 3, 3), "embedding.convs.0.bias": (64,),
    "embedding.convs.1.weight": (64, 64, 3, 3), "embedding.convs.1.bias": (64,),
    "embedding.convs.2.weight": (64, 64, 3, 3), "embedding.convs.2.bias": (64,),
    "embedding.convs.3.weight": (64, 64, 3, 3), "embedding.convs.3.bias": (64,),
    "relation.norm_weight": (2, 64), "relation.norm_bias": (2, 64),
    "relation.convs.0.weight": (64, 128, 3, 3), "relation.convs.0.bias": (64,),
    "relation.convs.1.weight": (64, 64, 3, 3), "relation.convs.1.bias": (64,),
    "relation.fc1.weight": (8, 64), "relation.fc1.bias": (8,),
    "relation.fc2.weight": (1, 8), "relation.fc2.bias": (1,),
}


def test_checkpoint_layout_is_the_concatenated_modules(tmp_path):
    """Same keys and shapes as the 128-channel first conv: a saved state dict loads strictly
    into a fresh model, which then scores as the saved one does."""
    torch.manual_seed(0)
    model = RelationNet(5)
    state = model.state_dict()
    assert {key: tuple(value.shape) for key, value in state.items()} == CHECKPOINT_LAYOUT
    torch.save(state, tmp_path / "model.pt")
    torch.manual_seed(1)
    loaded = RelationNet(5)
    loaded.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True), strict=True)
    sx, sy, qx, _ = random_episode(1, 5, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.episode_logits(sx, sy, qx),
                                   model.episode_logits(sx, sy, qx))
