"""The metric family (Prototypical, Matching, Relation, Siamese networks): hand-computed maths,
loop versions, invariances of the support set, task independence, gradients and learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metarl.supervised.episodic.matching import (
    MatchingNet,
    QueryContext,
    attention_label_log_probs,
    cosine_attention,
)
from metarl.supervised.episodic.model import class_means, class_sums
from metarl.supervised.episodic.protonet import ProtoNet, prototypes, squared_distances
from metarl.supervised.episodic.relation import RelationModule, RelationNet, relation_mse
from metarl.supervised.episodic.siamese import (
    SiameseNet,
    balanced_pair_bce,
    max_per_class,
    pair_targets,
)

WAYS, SHOTS, QUERIES, TASKS, SIDE = 3, 2, 2, 3, 16


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


MODELS = {
    "protonet": lambda ways: ProtoNet(ways, hidden=8),
    "matching": lambda ways: MatchingNet(ways, hidden=8, fce=False),
    "matching_fce": lambda ways: MatchingNet(ways, hidden=8, fce=True),
    "relation": lambda ways: RelationNet(ways, hidden=8, image_size=SIDE),
    "siamese": lambda ways: SiameseNet(ways, hidden=8),
}
#: Models whose scores do not depend on the order of the support set (FCE's bi-LSTM does).
ORDER_FREE = ["protonet", "matching", "relation", "siamese"]


def make_model(name: str, ways: int = WAYS, seed: int = 0):
    torch.manual_seed(seed)
    return MODELS[name](ways)


def episode(tasks: int = TASKS, seed: int = 0, shots: int = SHOTS, ways: int = WAYS):
    """Random images; support labels shuffled per task (models must not rely on order)."""
    g = torch.Generator().manual_seed(seed)
    sy = torch.stack([torch.arange(ways).repeat(shots)[torch.randperm(ways * shots, generator=g)]
                      for _ in range(tasks)])
    qy = torch.arange(ways).repeat_interleave(QUERIES).expand(tasks, -1).contiguous()
    sx = torch.rand(tasks, ways * shots, 1, SIDE, SIDE, generator=g)
    qx = torch.rand(tasks, ways * QUERIES, 1, SIDE, SIDE, generator=g)
    return sx, sy, qx, qy


# ---------------------------------------------------------------- shapes and shared helpers


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_finite_loss(name):
    model = make_model(name)
    sx, sy, qx, qy = episode()
    logits = model.episode_logits(sx, sy, qx)
    assert logits.shape == (TASKS, WAYS * QUERIES, WAYS)
    loss, acc = model.episode_loss(sx, sy, qx, qy)
    assert loss.shape == acc.shape == (TASKS,)
    assert torch.isfinite(loss).all() and loss.requires_grad and not acc.requires_grad
    torch.testing.assert_close(acc, (logits.argmax(-1) == qy).float().mean(1))


def test_class_sums_and_means_by_hand():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]]])  # [1, 3, 2]
    y = torch.tensor([[1, 0, 1]])
    torch.testing.assert_close(class_sums(x, y, 2), torch.tensor([[[3.0, 4.0], [6.0, 9.0]]]))
    torch.testing.assert_close(class_means(x, y, 2), torch.tensor([[[3.0, 4.0], [3.0, 4.5]]]))
    maps = torch.arange(24.0).view(1, 3, 2, 2, 2)  # features with spatial layout
    torch.testing.assert_close(class_sums(maps, y, 2)[0, 1], maps[0, 0] + maps[0, 2])


# ---------------------------------------------------------------- Prototypical Networks


def test_prototypes_and_squared_distances_against_numpy():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(2, 5, 3))
    labels = np.array([[0, 1, 1, 2, 0], [2, 2, 1, 0, 1]])
    query = rng.normal(size=(2, 4, 3))
    expected_c = np.zeros((2, 3, 3))
    for t in range(2):
        for k in range(3):
            expected_c[t, k] = emb[t][labels[t] == k].mean(0)
    expected_d = np.array([[[((query[t, q] - expected_c[t, k]) ** 2).sum() for k in range(3)]
                            for q in range(4)] for t in range(2)])
    c = prototypes(torch.tensor(emb), torch.tensor(labels), 3)
    np.testing.assert_allclose(c.numpy(), expected_c, rtol=1e-12)
    d = squared_distances(torch.tensor(query), c)
    np.testing.assert_allclose(d.numpy(), expected_d, rtol=1e-12)


def test_squared_distances_by_hand_and_shape_errors():
    a = torch.tensor([[[0.0, 0.0], [1.0, 2.0]]])
    b = torch.tensor([[[3.0, 4.0]]])
    torch.testing.assert_close(squared_distances(a, b), torch.tensor([[[25.0], [8.0]]]))
    with pytest.raises(ValueError, match=r"\(1, 2, 2\) and \(1, 2\)"):
        squared_distances(a, b[0])


def test_protonet_logits_are_negative_distances_to_class_means():
    model = make_model("protonet")
    sx, sy, qx, _ = episode()
    emb = model.embedding(torch.cat([sx, qx], 1))
    support, query = emb[:, :sx.shape[1]], emb[:, sx.shape[1]:]
    expected = torch.empty(TASKS, qx.shape[1], WAYS)
    for t in range(TASKS):
        for k in range(WAYS):
            c = support[t][sy[t] == k].mean(0)
            expected[t, :, k] = -((query[t] - c) ** 2).sum(-1)
    torch.testing.assert_close(model.episode_logits(sx, sy, qx), expected)


# ---------------------------------------------------------------- Matching Networks


def test_cosine_attention_and_label_log_probs_against_a_loop():
    g = torch.Generator().manual_seed(1)
    query, support = torch.randn(2, 3, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    labels = torch.tensor([[0, 1, 2, 1, 0], [2, 2, 0, 1, 1]])
    att = cosine_attention(query, support)
    log_p = attention_label_log_probs(att, labels, 3)
    for t in range(2):
        for q in range(3):
            cos = [float(query[t, q] @ support[t, i] / (query[t, q].norm() * support[t, i].norm()))
                   for i in range(5)]
            z = sum(math.exp(c) for c in cos)
            a = [math.exp(c) / z for c in cos]
            assert att[t, q].tolist() == pytest.approx(a, rel=1e-5)
            for k in range(3):
                p = sum(a[i] for i in range(5) if labels[t, i] == k)
                assert float(log_p[t, q, k]) == pytest.approx(math.log(p), rel=1e-5)


def test_matching_cross_entropy_is_minus_log_of_the_attention_vote():
    model = make_model("matching")
    sx, sy, qx, qy = episode()
    emb = model.embedding(torch.cat([sx, qx], 1))
    att = cosine_attention(emb[:, sx.shape[1]:], emb[:, :sx.shape[1]])
    vote = att @ F.one_hot(sy, WAYS).float()  # [T, Q, N]
    expected = -vote.gather(2, qy.unsqueeze(2)).squeeze(2).log().mean(1)
    loss, _ = model.episode_loss(sx, sy, qx, qy)
    torch.testing.assert_close(loss, expected)


def test_attention_lstm_against_the_papers_recurrence_one_query_at_a_time():
    torch.manual_seed(0)
    ctx = QueryContext(4)
    query, support = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    out = ctx(query, support, steps=3)
    cell = ctx.cell
    for t in range(2):
        for q in range(3):
            f = query[t, q]
            h, c = f, torch.zeros(4)
            for _ in range(3):
                a = torch.softmax(support[t] @ h, 0)                  # a(h_{k-1}, g(x_i))
                r = a @ support[t]                                   # r_{k-1}
                gates = cell.weight_ih @ torch.cat([f, r]) + cell.bias_ih \
                    + cell.weight_hh @ h + cell.bias_hh              # W [x; h; r]
                i, fg, gg, o = gates.chunk(4)
                c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(gg)
                h = torch.sigmoid(o) * torch.tanh(c) + f             # h_k = h^_k + f'(x)
            torch.testing.assert_close(out[t, q], h, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ctx(query, support, steps=0), query)


def test_fce_steps_default_to_the_support_size_and_depend_on_support_order():
    sx, sy, qx, _ = episode(tasks=1)
    default = make_model("matching_fce")
    explicit = make_model("matching_fce")
    explicit.fce_steps = sx.shape[1]
    torch.testing.assert_close(default.episode_logits(sx, sy, qx),
                               explicit.episode_logits(sx, sy, qx))
    perm = torch.tensor([3, 1, 5, 0, 2, 4])
    assert not torch.allclose(default.episode_logits(sx, sy, qx),
                              default.episode_logits(sx[:, perm], sy[:, perm], qx))


# ---------------------------------------------------------------- Relation Networks


def test_relation_mse_by_hand():
    scores = torch.tensor([[[0.9, 0.2], [0.5, 0.5]]])
    y = torch.tensor([[0, 1]])
    expected = (0.1 ** 2 + 0.2 ** 2 + 0.5 ** 2 + 0.5 ** 2) / 4
    assert float(relation_mse(scores, y)) == pytest.approx(expected)


def test_relation_module_pools_omniglot_maps_7_to_3_to_1():
    module = RelationModule(128, 64, 8, map_size=7)
    assert module.fc1.in_features == 64  # 7x7 -> pool 3x3 -> pool 1x1, 64 channels
    scores = module(torch.randn(2, 4, 64, 7, 7), torch.randn(2, 3, 64, 7, 7))
    assert scores.shape == (2, 4, 3) and ((scores >= 0) & (scores <= 1)).all()
    net = RelationNet(5, hidden=4)  # 28x28 images: embedding maps 7x7
    sx, qx = torch.rand(1, 5, 1, 28, 28), torch.rand(1, 5, 1, 28, 28)
    assert net.embedding.feature_maps(sx).shape == (1, 5, 4, 7, 7)
    assert net.episode_logits(sx, torch.arange(5).view(1, 5), qx).shape == (1, 5, 5)
    with pytest.raises(ValueError, match="3x3 pixels are too small"):
        RelationModule(map_size=3)


def test_relation_class_maps_are_summed_support_maps():
    model = make_model("relation")
    sx, sy, qx, qy = episode()
    maps = model.embedding.feature_maps(torch.cat([sx, qx], 1))
    support, query = maps[:, :sx.shape[1]], maps[:, sx.shape[1]:]
    for t in range(TASKS):
        classes = torch.stack([support[t][sy[t] == k].sum(0) for k in range(WAYS)])
        expected = model.relation(query[t].unsqueeze(0), classes.unsqueeze(0))[0]
        torch.testing.assert_close(model.episode_logits(sx, sy, qx)[t], expected)
    loss, _ = model.episode_loss(sx, sy, qx, qy)
    torch.testing.assert_close(loss, relation_mse(model.episode_logits(sx, sy, qx), qy))


# ---------------------------------------------------------------- Siamese networks


def test_siamese_pair_targets_and_balance_against_a_loop():
    g = torch.Generator().manual_seed(2)
    sy = torch.tensor([[0, 1, 2, 1], [2, 0, 1, 2]])
    qy = torch.tensor([[1, 0, 2], [0, 0, 1]])
    logits = torch.randn(2, 3, 4, generator=g)
    targets = pair_targets(qy, sy)
    for t in range(2):
        pos, neg = [], []
        for q in range(3):
            for i in range(4):
                same = int(qy[t, q]) == int(sy[t, i])
                assert targets[t, q, i] == float(same)
                p = torch.sigmoid(logits[t, q, i])
                (pos if same else neg).append(float(-torch.log(p if same else 1 - p)))
        expected = 0.5 * sum(pos) / len(pos) + 0.5 * sum(neg) / len(neg)
        assert float(balanced_pair_bce(logits, targets)[t]) == pytest.approx(expected, rel=1e-5)
    # Balanced: more copies of a negative pair do not change the negatives' weight.
    one_neg = balanced_pair_bce(torch.tensor([[[2.0, -0.5]]]), torch.tensor([[[1.0, 0.0]]]))
    three_neg = balanced_pair_bce(torch.tensor([[[2.0, -0.5, -0.5, -0.5]]]),
                                  torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]))
    torch.testing.assert_close(one_neg, three_neg)
    only_neg = torch.zeros(1, 1, 2)
    with pytest.raises(ValueError, match="task 0 has 0 same-class and 2 different-class"):
        balanced_pair_bce(torch.zeros(1, 1, 2), only_neg)


def test_siamese_logits_are_the_best_support_match_per_class():
    scores = torch.tensor([[[0.1, 0.7, -0.3, 0.2]]])
    labels = torch.tensor([[0, 1, 0, 1]])
    torch.testing.assert_close(max_per_class(scores, labels, 2), torch.tensor([[[0.1, 0.7]]]))
    model = make_model("siamese")
    sx, sy, qx, _ = episode()
    with torch.no_grad():
        emb = model.embedding(torch.cat([sx, qx], 1))
        logits = model.episode_logits(sx, sy, qx)
    support, query = emb[:, :sx.shape[1]], emb[:, sx.shape[1]:]
    w, b = model.distance.weight[0].detach(), model.distance.bias[0].detach()
    for t in range(TASKS):
        for q in range(qx.shape[1]):
            for k in range(WAYS):
                best = max(float(w @ (query[t, q] - support[t, i]).abs() + b)
                           for i in range(sx.shape[1]) if sy[t, i] == k)
                assert float(logits[t, q, k]) == pytest.approx(best, rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- invariances


@pytest.mark.parametrize("name", ORDER_FREE)
def test_permuting_the_support_set_leaves_scores_unchanged(name):
    model = make_model(name)
    sx, sy, qx, _ = episode()
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    torch.testing.assert_close(model.episode_logits(sx[:, perm], sy[:, perm], qx),
                               model.episode_logits(sx, sy, qx), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_relabelling_classes_permutes_the_scores(name):
    model = make_model(name)
    sx, sy, qx, _ = episode()
    pi = torch.tensor([2, 0, 1])  # class k is called pi[k]
    relabelled = model.episode_logits(sx, pi[sy], qx)
    torch.testing.assert_close(relabelled[..., pi], model.episode_logits(sx, sy, qx),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_a_tasks_scores_do_not_depend_on_the_other_tasks(name):
    model = make_model(name)
    sx, sy, qx, qy = episode()
    together = model.episode_logits(sx, sy, qx)
    loss, _ = model.episode_loss(sx, sy, qx, qy)
    for t in range(TASKS):
        alone = model.episode_logits(sx[t:t + 1], sy[t:t + 1], qx[t:t + 1])
        torch.testing.assert_close(together[t:t + 1], alone, rtol=1e-4, atol=1e-5)
        loss_t, _ = model.episode_loss(sx[t:t + 1], sy[t:t + 1], qx[t:t + 1], qy[t:t + 1])
        torch.testing.assert_close(loss[t:t + 1], loss_t, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_gradient_reaches_every_parameter(name):
    model = make_model(name)
    sx, sy, qx, qy = episode()
    loss, _ = model.episode_loss(sx, sy, qx, qy)
    loss.mean().backward()
    for key, p in model.named_parameters():
        assert p.grad is not None, key
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, key


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name", MODELS)
def test_bad_episodes_are_rejected_by_name(name):
    model = make_model(name)
    sx, sy, qx, qy = episode()
    missing = sy.clone()
    missing[1][missing[1] == 2] = 0
    with pytest.raises(ValueError, match="task 1 has no support example of class 2"):
        model.episode_logits(sx, missing, qx)
    high = sy.clone()
    high[0, 3] = 7
    with pytest.raises(ValueError, match=r"support labels must be in 0..2 .* got 7 at index"):
        model.episode_logits(sx, high, qx)
    bad_q = qy.clone()
    bad_q[2, 1] = -1
    with pytest.raises(ValueError, match=r"query labels must be in 0..2 .* got -1 at index \(2, 1"):
        model.episode_loss(sx, sy, qx, bad_q)
    with pytest.raises(ValueError, match="disagree"):
        model.episode_logits(sx, sy[:, :-1], qx)
    with pytest.raises(ValueError, match="query images"):
        model.episode_logits(sx, sy, qx[:-1])


def test_bad_constructor_arguments_are_rejected_by_name():
    with pytest.raises(ValueError, match="ways must be an integer >= 1, got 0"):
        ProtoNet(0)
    with pytest.raises(ValueError, match="ways must be an integer >= 2, got 1"):
        SiameseNet(1)
    with pytest.raises(ValueError, match="fce_steps must be None .* got -1"):
        MatchingNet(5, fce_steps=-1)


# ---------------------------------------------------------------- learning


def blob_episode(g: torch.Generator, tasks: int = 4, ways: int = 3, queries: int = 2,
                 side: int = SIDE):
    """``ways``-way 1-shot episodes whose classes are bright 3x3 blobs at distinct places (drawn
    per task from 9 places, labels shuffled) on a noisy background."""
    places = [(r, c) for r in (2, 7, 12) for c in (2, 7, 12)]

    def images(which, count):
        x = 0.8 * torch.rand(tasks, count, 1, side, side, generator=g)
        for t in range(tasks):
            for j in range(count):
                r, c = places[which[t, j]]
                r += int(torch.randint(-1, 2, (1,), generator=g))
                c += int(torch.randint(-1, 2, (1,), generator=g))
                x[t, j, 0, r:r + 3, c:c + 3] += 1.0
        return x

    chosen = torch.stack([torch.randperm(9, generator=g)[:ways] for _ in range(tasks)])
    sy = torch.stack([torch.randperm(ways, generator=g) for _ in range(tasks)])
    qy = torch.arange(ways).repeat(queries).expand(tasks, -1).contiguous()
    sx = images(chosen.gather(1, sy), ways)
    qx = images(chosen.gather(1, qy), ways * queries)
    return sx, sy, qx, qy


def mean_accuracy(model, g, batches=5):
    with torch.no_grad():
        return float(torch.cat([model.episode_loss(*blob_episode(g, tasks=8))[1]
                                for _ in range(batches)]).mean())


def learn_blobs(name: str, seed: int) -> tuple[float, float]:
    """Held-out accuracy before and after 30 Adam steps on 4-task blob batches."""
    model = make_model(name, seed=seed)
    before = mean_accuracy(model, torch.Generator().manual_seed(100 + seed))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss, _ = model.episode_loss(*blob_episode(g))
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    return before, mean_accuracy(model, torch.Generator().manual_seed(100 + seed))


#: One case in the default suite (about half a second); the rest are slow.
LEARNING_CASES = [pytest.param(name, seed, marks=() if (name, seed) == ("protonet", 0)
                               else pytest.mark.slow)
                  for name in MODELS for seed in (0, 1)]


@pytest.mark.parametrize(("name", "seed"), LEARNING_CASES)
def test_thirty_adam_steps_learn_blob_classes(name, seed):
    """Chance is 1/3. Over seeds 0-4 the trained accuracy was >= 0.93 for every model but the
    Siamese net (>= 0.74: its pair loss is a step removed from classification), from
    0.3-0.64 untrained."""
    before, after = learn_blobs(name, seed)
    assert after > 0.65 and after > before + 0.2, (before, after)


def test_attention_steps_with_full_context_embeddings_off_are_named_as_ignored(caplog):
    from metarl.supervised.episodic.config import MatchingConfig
    from metarl.supervised.episodic.methods import METHODS

    assert not METHODS["matching"].build(MatchingConfig(fce=False)).fce
    assert "warning" not in caplog.text  # the default steps: nothing was given
    assert METHODS["matching"].build(MatchingConfig(fce=False, fce_steps=3)).fce_steps == 3
    assert "warning: fce_steps=3 ignored: full-context embeddings are off (add --fce to use " \
        "them)" in caplog.text
