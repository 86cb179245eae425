"""The MANN's LRUA memory against hand-computed values, and the model on the episode interface."""

from __future__ import annotations

import math

import pytest
import torch

from metarl.nonfinite import NonFiniteError
from metarl.supervised.episodic.mann import (
    MANN,
    cosine_similarity,
    least_used_weights,
    read_memory,
    read_weights,
    support_order,
    update_usage,
    write_memory,
    write_weights,
)

torch.set_num_threads(1)

WAYS = 3


def tiny_mann(ways: int = WAYS, **kwargs) -> MANN:
    sizes = dict(hidden=4, controller_size=8, memory_rows=6, memory_width=5, num_reads=2)
    return MANN(ways, **{**sizes, **kwargs})


def random_episode(tasks: int, shots: int = 2, queries: int = 2, ways: int = WAYS, seed: int = 0,
                   size: int = 16):
    g = torch.Generator().manual_seed(seed)
    support_x = torch.rand(tasks, ways * shots, 1, size, size, generator=g)
    support_y = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1).contiguous()
    query_x = torch.rand(tasks, ways * queries, 1, size, size, generator=g)
    query_y = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1).contiguous()
    return support_x, support_y, query_x, query_y


# --- the LRUA pieces -------------------------------------------------------------------------

def test_cosine_read_weights_and_read_vector_by_hand():
    keys = torch.tensor([[[3.0, 4.0]]])  # [T=1, n=1, W=2]
    memory = torch.tensor([[[3.0, 4.0], [4.0, -3.0], [-3.0, -4.0]]])  # [1, 3, 2]
    cos = cosine_similarity(keys, memory)
    torch.testing.assert_close(cos, torch.tensor([[[1.0, 0.0, -1.0]]]), atol=1e-6, rtol=0)
    w = read_weights(keys, memory)
    e = math.e
    torch.testing.assert_close(w, torch.tensor([[[e, 1.0, 1 / e]]]) / (e + 1 + 1 / e))
    half = torch.tensor([[[0.5, 0.25, 0.25]]])
    torch.testing.assert_close(read_memory(half, memory),
                               torch.tensor([[[0.5 * 3 + 0.25 * 4 - 0.75, 2 + 0.25 * (-3 - 4)]]]))


def test_key_strength_multiplies_the_cosine_inside_the_softmax():
    keys = torch.tensor([[[3.0, 4.0]]])
    memory = torch.tensor([[[3.0, 4.0], [4.0, -3.0], [-3.0, -4.0]]])  # cosines 1, 0, -1
    e2 = math.exp(2.0)
    torch.testing.assert_close(read_weights(keys, memory, strength=2.0),
                               torch.tensor([[[e2, 1.0, 1 / e2]]]) / (e2 + 1 + 1 / e2))
    # beta = 1 caps the contrast of two rows at e^2 whatever the memory: over many rows the
    # read is close to uniform; a large beta puts nearly all the weight on the best row
    rows = torch.cat([memory, torch.tensor([[[4.0, -3.0]]]).expand(1, 125, 2)], dim=1)
    assert read_weights(keys, rows).max() < 0.03
    assert read_weights(keys, rows, strength=10.0).max() > 0.99


def test_cosine_of_zero_rows_and_keys_is_zero_with_finite_gradients():
    keys = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]], requires_grad=True)  # a zero key
    memory = torch.zeros(1, 4, 2, requires_grad=True)  # the empty memory
    cos = cosine_similarity(keys, memory)
    assert torch.equal(cos, torch.zeros(1, 2, 4))
    w = read_weights(keys, memory)
    torch.testing.assert_close(w, torch.full((1, 2, 4), 0.25))  # uniform over the rows
    (w * torch.arange(4.0)).sum().add(read_memory(w, memory).sum()).backward()
    assert torch.isfinite(keys.grad).all() and torch.isfinite(memory.grad).all()


def test_cosine_matches_the_plain_cosine_away_from_zero():
    g = torch.Generator().manual_seed(0)
    keys, memory = torch.randn(2, 3, 5, generator=g), torch.randn(2, 4, 5, generator=g)
    plain = torch.nn.functional.cosine_similarity(keys.unsqueeze(2), memory.unsqueeze(1), dim=-1)
    torch.testing.assert_close(cosine_similarity(keys, memory), plain, atol=1e-5, rtol=0)


def test_cosine_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match memory"):
        cosine_similarity(torch.zeros(1, 2, 3), torch.zeros(1, 4, 5))


def test_least_used_picks_the_n_smallest_usages_lowest_row_first_on_ties():
    usage = torch.tensor([[0.5, 0.1, 0.0, 0.1], [0.0, 0.0, 0.0, 0.0]])
    w = least_used_weights(usage, 3)
    expected = torch.tensor([
        [[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],  # 0.0 (row 2), then the tie 0.1: rows 1, 3
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],  # all tied: rows 0, 1, 2
    ], dtype=torch.float32)
    assert torch.equal(w, expected)
    # the sum over heads is the paper's w^lu: 1 on the n smallest usages, 0 elsewhere
    assert torch.equal(w.sum(1), torch.tensor([[0.0, 1, 1, 1], [1, 1, 1, 0]]))
    with pytest.raises(ValueError, match="heads must be in 1..4"):
        least_used_weights(usage, 5)


def test_write_weights_interpolate_previous_read_and_least_used():
    prev_read = torch.tensor([[[0.2, 0.8, 0.0]]])
    least_used = torch.tensor([[[0.0, 0.0, 1.0]]])
    gate = torch.tensor([[math.log(3.0)]])  # sigmoid = 3/4
    torch.testing.assert_close(write_weights(gate, prev_read, least_used),
                               torch.tensor([[[0.15, 0.6, 0.25]]]))


def test_write_zeroes_the_least_used_rows_then_adds_each_heads_vector():
    memory = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]])
    least_used = torch.tensor([[[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]])  # rows 2, 3
    weights = torch.tensor([[[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]]])
    add = torch.tensor([[[2.0, -2.0], [10.0, 20.0]]])
    expected = torch.tensor([[[1.0 + 1.0, 1.0 - 1.0],  # row 0 += 0.5 a_0
                              [2.0, 2.0],  # untouched
                              [0.0 + 1.0, 0.0 - 1.0],  # zeroed, then += 0.5 a_0
                              [0.0 + 10.0, 0.0 + 20.0]]])  # zeroed, then += a_1
    torch.testing.assert_close(write_memory(memory, weights, add, least_used), expected)


def test_usage_decays_and_adds_every_heads_reads_and_writes():
    usage = torch.tensor([[1.0, 0.0, 2.0]])
    read = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]])
    write = torch.tensor([[[0.0, 0.0, 1.0], [0.25, 0.0, 0.75]]])
    torch.testing.assert_close(update_usage(usage, read, write, gamma=0.9),
                               torch.tensor([[0.9 + 0.5 + 0.25, 0.5 + 1.0, 1.8 + 1.75]]))


def test_first_step_writes_each_head_to_its_own_fresh_row():
    torch.manual_seed(0)
    model = tiny_mann()
    inputs = torch.randn(2, model.controller.input_size - model.num_reads * model.memory_width)
    state = model.step(inputs, model.initial_state(2, inputs))
    key, gate = model._head_outputs(state.h)
    # no previous read: w^w = (1 - sigmoid(alpha)) w^lu, head j writes its key on row j of the
    # empty memory
    expected = torch.zeros(2, model.memory_rows, model.memory_width)
    expected[:, :model.num_reads] = (1 - torch.sigmoid(gate)).unsqueeze(-1) * key
    torch.testing.assert_close(state.memory, expected)
    torch.testing.assert_close(state.read_weights.sum(-1), torch.ones(2, model.num_reads))
    torch.testing.assert_close(state.reads, torch.einsum("tjm,tmw->tjw", state.read_weights,
                                                         state.memory))


def test_an_untrained_query_key_finds_the_rows_its_own_support_image_wrote():
    """What lets training start: the query of a support image, before any training, reads
    (argmax of its read weights) one of the rows that image's step wrote far more often than the
    1 in 5 of a random written row."""
    torch.manual_seed(0)
    ways, tasks = 5, 64
    model = MANN(ways, hidden=4, controller_size=32, memory_rows=16, memory_width=8,
                 num_reads=2)
    features = torch.randn(tasks, ways, 4)
    labels = torch.arange(ways).expand(tasks, -1)
    inputs = torch.cat([features, torch.nn.functional.one_hot(labels, ways).float()], dim=-1)
    state, written = model.initial_state(tasks, features), []
    with torch.no_grad():
        for t in range(ways):
            written.append(least_used_weights(state.usage, model.num_reads).argmax(-1))  # [T, n]
            state = model.step(inputs[:, t], state)
        assert torch.equal(state.memory, model.write_support(features, labels).memory)
        _, key = model.query_keys(state, features)  # the queries are the support images
        picked = read_weights(key, state.memory).argmax(-1)  # [T, Q, n]
    own = torch.stack(written, dim=1)  # [T, S, n]: the rows step s wrote
    hits = (picked.unsqueeze(-1) == own.unsqueeze(2)).any(-1).float().mean()
    assert hits > 0.4  # chance: 0.2


# --- the support order -----------------------------------------------------------------------

def test_support_order_depends_on_the_images_only():
    support_x, _, _, _ = random_episode(tasks=3, shots=2)
    order = support_order(support_x)
    assert torch.equal(order.sort(-1).values, torch.arange(6).expand(3, -1))  # permutations
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    reordered = support_order(support_x[:, perm])
    assert torch.equal(perm[reordered], order)  # the same images in the same order
    assert torch.equal(support_order(support_x[1:2]), order[1:2])  # alone as in the batch


# --- the model on episodes -------------------------------------------------------------------

def test_logits_shape_and_the_state_shapes():
    torch.manual_seed(0)
    model = tiny_mann()
    support_x, support_y, query_x, _ = random_episode(tasks=4, shots=2, queries=3)
    assert model.episode_logits(support_x, support_y, query_x).shape == (4, 9, WAYS)
    state = model.write_support(torch.randn(4, 6, 4), support_y)
    assert state.memory.shape == (4, 6, 5) and state.usage.shape == (4, 6)
    assert state.reads.shape == (4, 2, 5) and state.read_weights.shape == (4, 2, 6)
    assert state.h.shape == state.c.shape == (4, 8)


def test_a_task_alone_scores_as_in_a_batch():
    torch.manual_seed(0)
    model = tiny_mann()
    support_x, support_y, query_x, _ = random_episode(tasks=3)
    batch = model.episode_logits(support_x, support_y, query_x)
    for t in range(3):
        alone = model.episode_logits(support_x[t:t + 1], support_y[t:t + 1], query_x[t:t + 1])
        torch.testing.assert_close(alone[0], batch[t], atol=1e-5, rtol=1e-5)


def test_a_query_is_scored_without_the_other_queries():
    torch.manual_seed(0)
    model = tiny_mann()
    state = model.write_support(torch.randn(2, 6, 4), torch.tensor([[0, 0, 1, 1, 2, 2]] * 2))
    before = [x.clone() for x in state]
    queries = torch.randn(2, 5, 4)
    logits = model.read_queries(state, queries)
    assert all(torch.equal(a, b) for a, b in zip(before, state))  # queries do not write
    changed = queries.clone()
    changed[:, 1:] = torch.randn(2, 4, 4)
    torch.testing.assert_close(model.read_queries(state, changed)[:, 0], logits[:, 0])
    torch.testing.assert_close(model.read_queries(state, queries[:, 2:3])[:, 0], logits[:, 2])


def test_scores_do_not_depend_on_how_the_support_is_listed():
    torch.manual_seed(0)
    model = tiny_mann()
    support_x, support_y, query_x, _ = random_episode(tasks=2, shots=2)
    logits = model.episode_logits(support_x, support_y, query_x)
    perm = torch.tensor([3, 1, 5, 0, 4, 2])
    shuffled = model.episode_logits(support_x[:, perm], support_y[:, perm], query_x)
    torch.testing.assert_close(shuffled, logits, atol=1e-5, rtol=1e-5)


def test_scores_depend_on_the_support_labels():
    torch.manual_seed(0)
    model = tiny_mann()
    support_x, support_y, query_x, _ = random_episode(tasks=2)
    relabelled = (support_y + 1) % WAYS
    assert not torch.allclose(model.episode_logits(support_x, support_y, query_x),
                              model.episode_logits(support_x, relabelled, query_x))


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    model = tiny_mann()
    loss, accuracy = model.episode_loss(*random_episode(tasks=2, shots=2))
    assert loss.shape == accuracy.shape == (2,) and not accuracy.requires_grad
    loss.mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_zero_images_keep_the_memory_and_the_gradients_finite():
    torch.manual_seed(0)
    model = tiny_mann()
    support_x, support_y, query_x, query_y = random_episode(tasks=2, shots=3)
    zeros_s, zeros_q = torch.zeros_like(support_x), torch.zeros_like(query_x)
    state = model.write_support(torch.zeros(2, 9, 4), support_y)
    assert all(torch.isfinite(x).all() for x in state)
    loss, _ = model.episode_loss(zeros_s, support_y, zeros_q, query_y)
    loss.mean().backward()
    assert torch.isfinite(loss).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_constructor_and_inputs_are_checked():
    with pytest.raises(ValueError, match="ways must be >= 1, got 0"):
        MANN(0)
    with pytest.raises(ValueError, match="num_reads=5 exceeds memory_rows=4"):
        MANN(3, memory_rows=4, num_reads=5)
    with pytest.raises(ValueError, match=r"gamma .* must be in \[0, 1\], got 1.5"):
        MANN(3, gamma=1.5)
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match=f"key_strength .* must be a finite number > 0, "
                                             f"got {bad}"):
            MANN(3, key_strength=bad)
    model = tiny_mann()
    support_x, support_y, query_x, _ = random_episode(tasks=2)
    with pytest.raises(ValueError, match="support labels must be in 0..2"):
        model.episode_logits(support_x, support_y + 1, query_x)
    with pytest.raises(ValueError, match="do not agree"):
        model.episode_logits(support_x, support_y, query_x[:1])
    with pytest.raises(ValueError, match=r"expected images \[T, B, C, H, W\]"):
        model.episode_logits(support_x[0], support_y, query_x)


def test_non_finite_class_scores_are_named_for_the_trainer_to_stop_on():
    model = tiny_mann()
    support_x, support_y, query_x, _ = random_episode(tasks=2)
    query_x[1, 0] = math.nan  # one bad image: the trainer's divergence line, not a silent NaN
    with pytest.raises(NonFiniteError, match="MANN's class scores are non-finite"):
        model.episode_logits(support_x, support_y, query_x)


# --- learning --------------------------------------------------------------------------------

def pattern_episodes(patterns: torch.Tensor, tasks: int, queries: int, noise: float,
                     g: torch.Generator):
    """Episodes over a fixed set of patterns (one per class) whose labels are permuted in every
    episode: the label of a pattern can be known only from the episode's support."""
    ways = patterns.shape[0]
    shown = torch.stack([torch.randperm(ways, generator=g) for _ in range(tasks)])  # label -> pat
    support_x = patterns[shown] + noise * torch.randn(tasks, ways, *patterns.shape[1:],
                                                      generator=g)
    query_y = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1)
    query_x = patterns[shown.gather(1, query_y)]
    query_x = query_x + noise * torch.randn(query_x.shape, generator=g)
    return support_x, torch.arange(ways).expand(tasks, -1), query_x, query_y


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_learns_3_way_1_shot_episodes_above_chance(seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    patterns = (torch.rand(WAYS, 1, 16, 16, generator=g) < 0.5).float()
    model = MANN(WAYS, hidden=8, controller_size=32, memory_width=16, num_reads=2)  # 128 rows
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss, _ = model.episode_loss(*pattern_episodes(patterns, 16, 2, 0.1, g))
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    with torch.no_grad():
        _, accuracy = model.episode_loss(*pattern_episodes(patterns, 200, 2, 0.1, g))
    # chance is 1/3; seeds 0 to 7 of this run reached 1.0
    assert accuracy.mean() > 0.9
