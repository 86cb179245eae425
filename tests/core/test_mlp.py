"""metarl.core.mlp: the task-stacked forward equals each task's own shared forward."""

import pytest
import torch

from metarl.core import mlp


def stacked_layers(sizes, tasks, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(tasks, o, i, generator=g, dtype=torch.float64),
             torch.randn(tasks, o, generator=g, dtype=torch.float64))
            for i, o in zip(sizes[:-1], sizes[1:])]


@pytest.mark.parametrize("name", list(mlp.NONLINEARITIES))
def test_task_forward_equals_a_loop_of_shared_forwards(name):
    act = mlp.activation(name)
    layers = stacked_layers((3, 5, 4, 2), tasks=4)
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    out = mlp.task_forward(layers, x, act)
    assert out.shape == (4, 7, 2)
    for k in range(4):
        expected = mlp.forward([(w[k], b[k]) for w, b in layers], x[k], act)
        torch.testing.assert_close(out[k], expected)


def test_layers_of_reads_the_nn_linear_names_in_order():
    net = torch.nn.Module()
    net.layers = torch.nn.ModuleList([torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)])
    params = dict(net.named_parameters())
    layers = mlp.layers_of(params)
    assert [tuple(w.shape) for w, _ in layers] == [(3, 2), (1, 3)]
    torch.testing.assert_close(mlp.forward(layers, torch.ones(5, 2), torch.relu),
                               torch.nn.functional.linear(
                                   torch.relu(net.layers[0](torch.ones(5, 2))),
                                   net.layers[1].weight, net.layers[1].bias))
    del params["layers.1.bias"]
    with pytest.raises(KeyError, match="layers.1.weight but no layers.1.bias"):
        mlp.layers_of(params)


def test_bad_names_and_shapes_are_errors():
    with pytest.raises(ValueError, match="unknown nonlinearity 'sigmoid'; valid choices: tanh, relu"):
        mlp.activation("sigmoid")
    layers = stacked_layers((3, 2), tasks=4)
    with pytest.raises(ValueError, match=r"layers.0.weight has shape \(4, 2, 3\); task-stacked"):
        mlp.task_forward(layers, torch.randn(5, 7, 3, dtype=torch.float64), torch.relu)
