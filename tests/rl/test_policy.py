import pytest
import torch
from torch.func import functional_call

from metarl.core.maml import parameters_of, stack_params
from metarl.rl.policy import GaussianMLPPolicy, gaussian_kl


def make_policy(nonlinearity="tanh", seed=0):
    torch.manual_seed(seed)
    return GaussianMLPPolicy(3, 2, hidden_sizes=(8, 5), nonlinearity=nonlinearity).double()


def normal(policy, params, obs):
    """Reference: ``N(μ_θ(o), σ²)`` per action dimension, from ``torch.distributions``."""
    mean, log_std = policy.mean_and_log_std(params, obs)
    return torch.distributions.Normal(mean, log_std.exp())


def perturbed_stack(policy, k, scale=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    stacked = stack_params(parameters_of(policy), k)
    return {
        n: p + scale * torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in stacked.items()
    }


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("lead", [(), (4,)])
def test_task_stacked_forward_equals_loop_of_functional_call(nonlinearity, lead):
    policy = make_policy(nonlinearity)
    k, e = 3, 5
    params = perturbed_stack(policy, k)
    obs = torch.randn(*lead, k, e, 3, dtype=torch.float64)
    mean, log_std = policy.mean_and_log_std(params, obs)
    assert mean.shape == log_std.shape == (*lead, k, e, 2)
    for i in range(k):
        task = {n: p[i] for n, p in params.items()}
        ref_mean, ref_log_std = functional_call(policy, task, (obs[..., i, :, :],))
        torch.testing.assert_close(mean[..., i, :, :], ref_mean)
        torch.testing.assert_close(log_std[..., i, :, :], ref_log_std)


def test_shared_params_match_module_forward():
    policy = make_policy()
    obs = torch.randn(7, 2, 3, dtype=torch.float64)
    mean, log_std = policy.mean_and_log_std(parameters_of(policy), obs)
    ref = policy.layers[2](torch.tanh(policy.layers[1](torch.tanh(policy.layers[0](obs)))))
    torch.testing.assert_close(mean, ref)
    torch.testing.assert_close(log_std, policy.log_std.expand(7, 2, 2))


def test_log_prob_matches_torch_distributions():
    policy = make_policy()
    params = perturbed_stack(policy, 2)
    obs = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    actions = torch.randn(4, 2, 3, 2, dtype=torch.float64)
    lp = policy.log_prob(params, obs, actions)
    assert lp.shape == (4, 2, 3)
    torch.testing.assert_close(lp, normal(policy, params, obs).log_prob(actions).sum(-1))


def test_kl_closed_form_matches_torch_and_is_zero_on_itself():
    policy = make_policy()
    p = perturbed_stack(policy, 2, seed=4)
    q = perturbed_stack(policy, 2, seed=5)
    obs = torch.randn(3, 2, 4, 3, dtype=torch.float64)
    out_p, out_q = policy.mean_and_log_std(p, obs), policy.mean_and_log_std(q, obs)
    kl = gaussian_kl(*out_p, *out_q)
    ref = torch.distributions.kl_divergence(normal(policy, p, obs), normal(policy, q, obs)).sum(-1)
    assert kl.shape == (3, 2, 4)
    torch.testing.assert_close(kl, ref)
    torch.testing.assert_close(
        gaussian_kl(*out_p, *out_p), torch.zeros(3, 2, 4, dtype=torch.float64)
    )


def test_gradient_reaches_every_parameter():
    policy = make_policy()
    params = parameters_of(policy)
    stacked = stack_params(params, 2)
    obs = torch.randn(5, 2, 3, 3, dtype=torch.float64)
    actions = torch.randn(5, 2, 3, 2, dtype=torch.float64)
    loss = (
        -policy.log_prob(stacked, obs, actions).mean()
        - policy.log_prob(params, obs, actions).mean()
    )
    grads = torch.autograd.grad(loss, list(params.values()))
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    assert set(policy.state_dict()) == set(params)


def test_bad_arguments_name_valid_choices():
    with pytest.raises(ValueError, match="valid choices: tanh, relu"):
        GaussianMLPPolicy(3, 2, nonlinearity="sigmoid")
    policy = make_policy()
    params = perturbed_stack(policy, 3)
    with pytest.raises(ValueError, match="K=3 tasks need obs"):
        policy.mean_and_log_std(params, torch.zeros(2, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="actions have shape"):
        policy.log_prob(
            parameters_of(policy), torch.zeros(4, 3, dtype=torch.float64), torch.zeros(4, 3)
        )
    with pytest.raises(KeyError, match="log_std"):
        policy.mean_and_log_std(
            {"layers.0.weight": torch.zeros(2, 3), "layers.0.bias": torch.zeros(2)}, torch.zeros(3)
        )


def test_maml_adapt_on_stacked_params_equals_per_task_adapt():
    from metarl.core.maml import adapt

    policy = make_policy()
    params = parameters_of(policy)
    k = 3
    obs = torch.randn(4, k, 2, 3, dtype=torch.float64)
    actions = torch.randn(4, k, 2, 2, dtype=torch.float64)
    adv = torch.randn(4, k, 2, dtype=torch.float64)

    def stacked_loss(p, data):  # sum over tasks of each task's mean loss
        o, a, w = data
        return -(policy.log_prob(p, o, a) * w).mean(dim=(0, 2)).sum()

    adapted = adapt(stacked_loss, stack_params(params, k), (obs, actions, adv), step_size=0.1)
    for i in range(k):

        def task_loss(p, data):
            o, a, w = data
            return -(policy.log_prob(p, o, a) * w).mean()

        ref = adapt(task_loss, params, (obs[:, i], actions[:, i], adv[:, i]), step_size=0.1)
        for name in params:
            torch.testing.assert_close(adapted[name][i], ref[name])
