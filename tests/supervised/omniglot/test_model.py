"""The Omniglot conv net under functional adaptation, and the batched meta-loss vs a plain loop."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, vmap

from metarl.core.maml import parameters_of, stack_params
from metarl.supervised.curves import adaptation_curve
from metarl.supervised.omniglot import model as convnet
from metarl.supervised.omniglot.data import Episode, EpisodeSampler
from metarl.supervised.omniglot.maml import meta_loss, meta_loss_loop, task_groups
from metarl.supervised.omniglot.model import ConvNet, grouped_forward
from metarl.supervised.omniglot.problem import OmniglotProblem

TASKS, WAYS, SHOTS, QUERIES = 3, 5, 1, 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread for these tiny networks: on a loaded 2-core machine every OpenMP
    barrier of a tiny op can wait a scheduler slice, turning 20 ms into seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_net(seed: int = 0, ways: int = WAYS) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(ways, hidden=8)


def random_batch(tasks: int = TASKS, seed: int = 0) -> Episode:
    g = torch.Generator().manual_seed(seed)

    def labels(per_class):
        return torch.arange(WAYS).repeat_interleave(per_class).expand(tasks, -1).contiguous()

    return Episode(
        torch.rand(tasks, WAYS * SHOTS, 1, 28, 28, generator=g),
        labels(SHOTS),
        torch.rand(tasks, WAYS * QUERIES, 1, 28, 28, generator=g),
        labels(QUERIES),
    )


def test_shapes_and_batch_norm_uses_batch_statistics():
    net = small_net()
    assert net(torch.rand(7, 1, 28, 28)).shape == (7, WAYS)
    assert not list(net.buffers())  # no running statistics
    # Batch statistics in eval mode too: the output depends on the other images of the batch.
    net.eval()
    x = torch.rand(4, 1, 28, 28)
    assert not torch.allclose(net(x)[:2], net(x[:2]))
    with pytest.raises(ValueError, match="images \\[B, C, H, W\\]"):
        net.features(torch.rand(1, 28, 28))


def test_grouped_forward_equals_per_task_calls():
    net = small_net()
    params = {k: v + 0.01 * torch.randn((TASKS, *v.shape)) for k, v in parameters_of(net).items()}
    x = torch.rand(TASKS, 6, 1, 28, 28)
    for channels_last in (False, True):
        out = grouped_forward(params, x, channels_last=channels_last)
        assert out.shape == (TASKS, 6, WAYS)
        for t in range(TASKS):
            expected = functional_call(net, {k: v[t] for k, v in params.items()}, (x[t],))
            torch.testing.assert_close(out[t], expected, rtol=1e-4, atol=1e-5)


def test_convnet_under_vmap_matches_grouped_forward():
    net = small_net()
    params = parameters_of(net)
    batch = random_batch()
    stacked = {k: v + 0.01 * torch.randn((TASKS, *v.shape)) for k, v in params.items()}
    out = vmap(lambda p, x: functional_call(net, p, (x,)))(stacked, batch.query_x)
    expected = grouped_forward(stacked, batch.query_x, channels_last=False)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "first_order,num_steps,group_size",
    [(False, 1, None), (False, 1, 3), (True, 1, 1), (False, 2, 2)],
)
def test_batched_meta_loss_equals_loop(first_order, num_steps, group_size):
    net = small_net()
    params = parameters_of(net)
    batch = random_batch()
    kwargs = dict(num_steps=num_steps, step_size=0.4, first_order=first_order)
    batched = meta_loss(net, params, batch, group_size=group_size, **kwargs)
    loop = meta_loss_loop(net, params, batch, **kwargs)
    assert batched.loss.shape == batched.accuracy.shape == (TASKS,)
    torch.testing.assert_close(batched.loss, loop.loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.accuracy, loop.accuracy)
    grads_b = torch.autograd.grad(batched.loss.mean(), list(params.values()))
    grads_l = torch.autograd.grad(loop.loss.mean(), list(params.values()))
    for name, gb, gl in zip(params, grads_b, grads_l):
        torch.testing.assert_close(gb, gl, rtol=1e-3, atol=1e-5, msg=name)


def test_second_order_differs_from_first_order():
    net = small_net()
    params = parameters_of(net)
    batch = random_batch()
    grads = [
        torch.autograd.grad(
            meta_loss(net, params, batch, first_order=fo).loss.mean(), [params["head.weight"]]
        )[0]
        for fo in (False, True)
    ]
    assert not torch.allclose(*grads, atol=1e-6)


def test_meta_gradient_matches_finite_differences():
    net = small_net().double()
    params = parameters_of(net)
    b = random_batch(tasks=2)
    batch = Episode(b.support_x.double(), b.support_y, b.query_x.double(), b.query_y)
    name, index, eps = "blocks.1.0.weight", (2, 3, 1, 1), 1e-6
    (grad,) = torch.autograd.grad(meta_loss(net, params, batch).loss.mean(), [params[name]])

    def shifted(delta):
        moved = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        with torch.no_grad():
            moved[name][index] += delta
        return meta_loss(net, moved, batch).loss.mean().item()

    finite_difference = (shifted(eps) - shifted(-eps)) / (2 * eps)
    assert abs(grad[index].item() - finite_difference) < 1e-6 * max(1.0, abs(finite_difference))


def test_meta_loss_rejects_single_episode():
    net = small_net()
    batch = random_batch()
    single = Episode(batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0])
    with pytest.raises(ValueError, match="task axis"):
        meta_loss(net, parameters_of(net), single)
    with pytest.raises(ValueError, match="group_size must be >= 1"):
        meta_loss(net, parameters_of(net), batch, group_size=0)


def test_adaptation_curve_matches_meta_loss():
    """The evaluation curve (``curves.adaptation_curve`` through ``ConvNet.task_forward``, as
    the trainer and ``evaluate`` run it) equals ``meta_loss``'s accuracy after k steps."""
    net = small_net()
    params = parameters_of(net)
    batch = random_batch()

    def losses(p, data):
        return OmniglotProblem.task_loss(net.task_forward(p, data[0]), data[1])

    def scores(p, data):
        return OmniglotProblem.task_score(net.task_forward(p, data[0]), data[1])

    support, query = (batch.support_x, batch.support_y), (batch.query_x, batch.query_y)
    curve = adaptation_curve(losses, scores, params, support, query, steps=2, step_size=0.4)
    assert curve.shape == (TASKS, 3)
    torch.testing.assert_close(curve, adaptation_curve(losses, scores, params, support, query,
                                                       steps=2, step_size=0.4, chunk_size=1))
    for k in range(3):
        expected = meta_loss(net, params, batch, num_steps=k, first_order=True).accuracy
        torch.testing.assert_close(curve[:, k], expected)
    assert all(p.grad is None for p in params.values())


def test_task_forward_and_meta_loss_share_the_default_task_groups(monkeypatch):
    """One default (``convnet.task_slices``): ``CPU_GROUP_SIZE`` on a CPU, else one group."""
    sizes = []
    real = convnet.grouped_forward
    monkeypatch.setattr(convnet, "CPU_GROUP_SIZE", 3)
    monkeypatch.setattr(convnet, "grouped_forward",
                        lambda p, x, **kw: sizes.append(x.shape[0]) or real(p, x, **kw))
    net = small_net()
    x = torch.rand(5, 4, 1, 28, 28)
    out = net.task_forward(stack_params(parameters_of(net), 5), x)
    assert out.shape == (5, 4, WAYS) and sizes == [3, 2]
    assert [s.stop - s.start for s in task_groups(random_batch(tasks=5), None)] == [3, 2]
    assert convnet.task_slices(32, torch.device("cuda")) == [slice(0, 32)]


def test_meta_training_on_omniglot_episodes_reduces_loss(omniglot):
    """A few seeded meta-steps on real episodes: the meta-loss goes down."""
    torch.manual_seed(0)
    net = ConvNet(5, hidden=8)
    params = parameters_of(net)
    opt = torch.optim.Adam(params.values(), lr=3e-3)
    sampler = EpisodeSampler(omniglot, omniglot.characters[:40], ways=5, shots=1, queries=3, seed=0)
    fixed = sampler.sample_batch(4)
    before = meta_loss(net, params, fixed).loss.mean().item()
    for _ in range(5):
        opt.zero_grad()
        meta_loss(net, params, sampler.sample_batch(4)).loss.mean().backward()
        opt.step()
    assert meta_loss(net, params, fixed).loss.mean().item() < before


def test_stacked_params_are_views():
    net = small_net()
    stacked = stack_params(parameters_of(net), 4)
    assert stacked["head.weight"].shape == (4, WAYS, 8)
