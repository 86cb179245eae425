"""FOMAML, Reptile and ANIL (metarl.supervised.optimization): their updates against
hand-computed values, loops and finite differences, and their trainers on sine and Omniglot
(checkpoints that resume bit for bit)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.func import functional_call

from metarl.config import ConfigError, validate
from metarl.core.maml import adapt, parameters_of, stack_params
from metarl.runs import CheckpointError, load_checkpoint, save_checkpoint
from metarl.supervised.curves import adaptation_curve
from metarl.supervised.omniglot.model import ConvNet
from metarl.supervised.optimization import CONFIGS, TRAINERS
from metarl.supervised.optimization.anil import (
    adapt_head,
    anil_query_outputs,
    body_head,
)
from metarl.supervised.optimization.fomaml import FOMAMLLearner
from metarl.supervised.optimization.reptile import (
    inner_sgd,
    outer_step_size,
    reptile_direction,
)
from metarl.supervised.sine import problem as sine
from metarl.supervised.sine.model import MLP

METHODS = ("fomaml", "reptile", "anil")


def mse(output, target):
    return ((output - target) ** 2).mean(dim=(1, 2))


def tiny_sine(method: str, **changes):
    """A trainer of ``method`` on sine with a tiny MLP and meta-batch."""
    settings = {"meta_batch_size": 3, "hidden_sizes": (5, 5), "eval_every": 0,
                "num_batches": 10, **changes}
    config = CONFIGS[method]["sine"](**settings)
    validate(config)
    return TRAINERS[method](sine.build_problem(config), config)


# --- Reptile -------------------------------------------------------------------------------------

def quadratic_loss(params, data):
    """Σ_i ½ a_i ‖θ_i − c_i‖², ``a [B, 1]``, ``c [B, 2]``: task i's own quadratic."""
    a, c = data
    return (0.5 * a * (params["theta"] - c) ** 2).sum()


@pytest.mark.parametrize("steps,expected", [(1, [1.05, -1.65]), (2, [1.08, -1.395])])
def test_reptile_meta_step_on_quadratics_matches_the_hand_computed_update(steps, expected):
    # θ = (1, −2); task 1: a = 1, c = (0, 0); task 2: a = 3, c = (2, 2); α = 0.1, ε = 0.5.
    # θ'_i = c_i + (1 − α a_i)^k (θ − c_i): k = 1: (0.9, −1.8), (1.3, −0.8); k = 2: (0.81,
    # −1.62), (1.51, 0.04). θ + ε (mean θ' − θ) = (1.05, −1.65) and (1.08, −1.395).
    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    data = (torch.tensor([[1.0], [3.0]], dtype=torch.float64),
            torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64))
    adapted = inner_sgd(quadratic_loss, {"theta": theta}, data, num_steps=steps, step_size=0.1)
    theta.grad = reptile_direction({"theta": theta}, adapted)["theta"]
    torch.optim.SGD([theta], lr=0.5).step()
    torch.testing.assert_close(theta.detach(), torch.tensor(expected, dtype=torch.float64))
    assert not adapted["theta"].requires_grad  # no graph to θ


def test_reptile_direction_after_one_step_is_alpha_times_the_mean_support_gradient():
    torch.manual_seed(0)
    model = MLP(1, 1, (6, 6)).double()
    params = parameters_of(model)
    x, y = torch.randn(4, 5, 1, dtype=torch.float64), torch.randn(4, 5, 1, dtype=torch.float64)
    adapted = inner_sgd(lambda p, d: mse(model.task_forward(p, d[0]), d[1]).sum(), params,
                        (x, y), num_steps=1, step_size=0.03)
    direction = reptile_direction(params, adapted)
    gradients = [torch.autograd.grad(((model(x[i]) - y[i]) ** 2).mean(), list(params.values()))
                 for i in range(4)]  # one task at a time
    for j, name in enumerate(params):
        mean_gradient = torch.stack([g[j] for g in gradients]).mean(dim=0)
        torch.testing.assert_close(direction[name], 0.03 * mean_gradient)


def test_epsilon_anneals_linearly_from_meta_lr_to_zero():
    assert [outer_step_size(1.0, t, 4) for t in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert outer_step_size(0.1, 9, 4) == 0.0
    with pytest.raises(ValueError, match="num_batches=0"):
        outer_step_size(1.0, 0, 0)
    learner = tiny_sine("reptile", num_batches=4, meta_lr=0.2)
    logged = [learner.step()["train/outer_step_size"] for _ in range(4)]
    assert logged == pytest.approx([0.2, 0.15, 0.1, 0.05])


def test_reptile_trainer_step_equals_a_loop_over_tasks():
    learner = tiny_sine("reptile", num_steps=2, fast_lr=0.05, meta_lr=0.4, num_batches=5)
    model, config = learner.model, learner.config
    before = {k: v.detach().clone() for k, v in parameters_of(model).items()}
    generator = torch.Generator()
    generator.set_state(learner.generator.get_state())
    (x, y), _ = learner.problem.meta_batch(3, generator, query_size=config.queries)
    adapted = []
    for i in range(3):  # k plain SGD steps on task i from θ
        params = {k: v.clone().requires_grad_(True) for k, v in before.items()}
        for _ in range(2):
            loss = ((functional_call(model, params, (x[i],)) - y[i]) ** 2).mean()
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {k: (v - 0.05 * g).detach().requires_grad_(True)
                      for (k, v), g in zip(params.items(), grads)}
        adapted.append(params)
    learner.step()
    for name, theta in before.items():
        mean = torch.stack([a[name] for a in adapted]).mean(dim=0).detach()
        torch.testing.assert_close(model.get_parameter(name).detach(),
                                   theta + 0.4 * (mean - theta))


# --- ANIL ----------------------------------------------------------------------------------------

def sine_batch(tasks: int = 3, dtype=torch.float64):
    generator = torch.Generator().manual_seed(1)
    support, query = sine.SineProblem(shots=4, query_size=5).meta_batch(tasks, generator)
    return tuple(t.to(dtype) for t in support), tuple(t.to(dtype) for t in query)


def test_anil_meta_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = MLP(1, 1, (3, 3)).double()
    split = body_head(model)
    support, query = sine_batch()
    params = {k: v.detach().clone() for k, v in parameters_of(model).items()}

    def meta_loss(p):
        out = anil_query_outputs(split, mse, p, support, query[0], num_steps=2, step_size=0.1)
        return mse(out, query[1]).mean()

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    grads = dict(zip(leaves, torch.autograd.grad(meta_loss(leaves), list(leaves.values()))))
    assert grads["layers.0.weight"].abs().sum() > 0  # the body learns through the head's steps
    h = 1e-6
    for name, value in params.items():
        for index in range(value.numel()):
            shifted = [{**{k: v.clone() for k, v in params.items()},
                        name: value.flatten().index_add(
                            0, torch.tensor([index]), torch.tensor([sign * h], dtype=value.dtype)
                        ).view_as(value)} for sign in (1, -1)]
            plus, minus = ({k: v.requires_grad_(True) for k, v in p.items()} for p in shifted)
            numeric = (meta_loss(plus) - meta_loss(minus)).detach() / (2 * h)
            torch.testing.assert_close(grads[name].flatten()[index], numeric, rtol=1e-5,
                                       atol=1e-8)


def maml_on_the_head(model, split, params, support, query_x, *, num_steps, step_size):
    """MAML's ``adapt`` of the head alone, the body stacked and frozen, through the model's own
    ``task_forward``: what ANIL must equal. Returns (adapted head, query outputs)."""
    tasks = support[0].shape[0]
    stacked = stack_params(params, tasks)
    body = {k: v for k, v in stacked.items() if k not in (split.weight, split.bias)}
    head = {k: stacked[k] for k in (split.weight, split.bias)}
    adapted = adapt(lambda p, d: mse_or_ce(model.task_forward({**body, **p}, d[0]), d[1]).sum(),
                    head, support, num_steps=num_steps, step_size=step_size)
    return adapted, model.task_forward({**body, **adapted}, query_x)


def mse_or_ce(output, target):
    if target.dtype == torch.long:
        return torch.nn.functional.cross_entropy(output.transpose(1, 2), target,
                                                 reduction="none").mean(dim=1)
    return mse(output, target)


@pytest.mark.parametrize("kind", ["mlp", "convnet"])
def test_anil_equals_maml_restricted_to_the_head(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        model = MLP(1, 1, (4, 4))
        support, query = sine_batch(dtype=torch.float32)
    else:  # a narrow ConvNet on random 3-way episodes of 2 tasks
        model = ConvNet(3, hidden=4)
        support = (torch.rand(2, 3, 1, 28, 28), torch.tensor([[0, 1, 2]] * 2))
        query = (torch.rand(2, 6, 1, 28, 28), torch.tensor([[0, 1, 2, 2, 1, 0]] * 2))
    split = body_head(model)
    params = parameters_of(model)
    body, head = split.split(params)
    anil_head = adapt_head(split, mse_or_ce, head, split.features(body, support[0]), support[1],
                           num_steps=2, step_size=0.3, first_order=False)
    anil_out = anil_query_outputs(split, mse_or_ce, params, support, query[0], num_steps=2,
                                  step_size=0.3)
    maml_head, maml_out = maml_on_the_head(model, split, params, support, query[0],
                                           num_steps=2, step_size=0.3)
    assert set(anil_head) == {split.weight, split.bias}  # the body is not adapted
    for name in anil_head:
        torch.testing.assert_close(anil_head[name], maml_head[name], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(anil_out, maml_out, rtol=1e-4, atol=1e-5)
    anil_grad = torch.autograd.grad(mse_or_ce(anil_out, query[1]).mean(), list(head.values()))
    maml_grad = torch.autograd.grad(mse_or_ce(maml_out, query[1]).mean(), list(head.values()))
    for a, b in zip(anil_grad, maml_grad):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_anil_inner_loop_leaves_the_body_untouched():
    learner = tiny_sine("anil", num_steps=3)
    model = learner.model
    support, query = sine_batch(dtype=torch.float32)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    loss, _ = learner.meta_loss(support, query)
    body = [p for name, p in model.named_parameters() if not name.startswith("layers.2.")]
    for name, value in model.state_dict().items():  # computing the meta-loss writes nothing
        assert torch.equal(value, before[name])
    start = learner.start()
    assert set(start.params) == {"layers.2.weight", "layers.2.bias"}
    out = start.model.task_forward(stack_params(start.params, 3), support[0])
    assert out.grad_fn is not None  # fine-tuning reaches the head...
    assert all(g is None for g in torch.autograd.grad(out.sum(), body, allow_unused=True))
    assert loss.grad_fn is not None  # ...and the meta-loss reaches the body too


def test_anil_held_out_curve_adapts_the_head_only():
    learner = tiny_sine("anil", eval_every=1, eval_tasks=4, eval_steps=3, fast_lr=0.2)
    logged = learner.step()
    support, query = learner.held_out()
    model, split = learner.model, learner.split
    params = {k: v.detach().requires_grad_(True) for k, v in parameters_of(model).items()}
    head_only = [mse(maml_on_the_head(model, split, params, support, query[0], num_steps=k,
                                      step_size=0.2)[1], query[1]).mean() for k in range(4)]
    assert [logged[f"adaptation/mse_step_{k}"] for k in range(4)] == pytest.approx(
        [v.item() for v in head_only], rel=1e-5)
    everything = adaptation_curve(learner.task_losses, learner.task_scores, params, support,
                                  query, steps=3, step_size=0.2).mean(dim=0)
    assert float(everything[3]) != pytest.approx(logged["adaptation/mse_step_3"], rel=1e-3)


# --- FOMAML and the configs ----------------------------------------------------------------------

@pytest.mark.parametrize("task", ["sine", "omniglot"])
def test_fomaml_configs_refuse_second_order(task):
    assert CONFIGS["fomaml"][task]().first_order is True
    with pytest.raises(ConfigError, match="first_order=False.*use maml for the second-order"):
        validate(CONFIGS["fomaml"][task](first_order=False))
    with pytest.raises(ConfigError, match="reptile"):
        validate(CONFIGS["reptile"][task](first_order=False))
    config = dataclasses.replace(CONFIGS["fomaml"]["sine"](), first_order=False)
    with pytest.raises(ConfigError, match="use maml"):
        FOMAMLLearner(sine.build_problem(config), config)


def test_every_method_has_a_config_for_every_task_that_subclasses_the_task_config():
    from metarl.supervised.omniglot.problem import OmniglotConfig

    assert set(CONFIGS) == set(TRAINERS) == set(METHODS)
    for method in METHODS:
        assert TRAINERS[method].algo == method
        assert issubclass(CONFIGS[method]["sine"], sine.SineConfig)
        assert issubclass(CONFIGS[method]["omniglot"], OmniglotConfig)


# --- Trainers: a step on each task, checkpoints that resume bit for bit -------------------------

def assert_resumes_bit_for_bit(make, tmp_path):
    """One step, a checkpoint through the file format, then one more step each for the
    uninterrupted trainer and one rebuilt from the checkpoint: equal to the bit."""
    first = make()
    values = first.step()
    assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
    save_checkpoint(tmp_path / "checkpoint.pt", first.state())
    resumed = make()
    resumed.load(load_checkpoint(tmp_path / "checkpoint.pt"), source="the checkpoint")
    assert resumed.iteration == 1
    first.step()
    resumed.step()
    for name, value in first.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert torch.equal(first.generator.get_state(), resumed.generator.get_state())
    state, again = first.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert state.keys() == again.keys()
    for index in state:
        for key, value in state[index].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(again[index][key]))


@pytest.mark.parametrize("method", METHODS)
def test_sine_trainer_resumes_bit_for_bit(method, tmp_path):
    assert_resumes_bit_for_bit(lambda: tiny_sine(method), tmp_path)


@pytest.mark.parametrize("method", METHODS)
def test_omniglot_trainer_steps_and_resumes_bit_for_bit(method, tmp_path, omniglot_dir,
                                                        omniglot_cache_dir, omniglot):
    from metarl.supervised.omniglot.problem import build_problem

    config = CONFIGS[method]["omniglot"](data_dir=str(omniglot_dir),
                                         cache_dir=str(omniglot_cache_dir), meta_batch_size=2,
                                         queries=1, num_steps=2, eval_every=0, num_batches=10)
    validate(config)
    problem = build_problem(config)
    assert_resumes_bit_for_bit(lambda: TRAINERS[method](problem, config), tmp_path)


def test_a_reptile_checkpoint_refuses_another_annealing_horizon(tmp_path):
    learner = tiny_sine("reptile", num_batches=10)
    learner.step()
    longer = tiny_sine("reptile", num_batches=20)
    with pytest.raises(CheckpointError, match="num_batches=10.*num_batches=20"):
        longer.load(learner.state(), source="ckpt")


def test_a_checkpoint_of_one_method_does_not_load_into_another():
    state = tiny_sine("anil").state()
    with pytest.raises(CheckpointError):
        tiny_sine("fomaml").load(state, source="ckpt")


def test_reptile_baselines_train_with_an_adam_rate_not_epsilon():
    assert tiny_sine("reptile", meta_lr=0.7).baseline_lr() == 1e-3
    assert tiny_sine("anil", meta_lr=0.002).baseline_lr() == 0.002
