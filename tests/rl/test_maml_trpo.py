"""MAML-TRPO on synthetic episodes: curvature products, subsampling, the outer step."""

import dataclasses

import pytest
import torch

from metarl.core.maml import parameters_of
from metarl.core.trpo import flatten, unflatten
from metarl.nonfinite import NonFiniteError
from metarl.rl.config import MAMLTRPOConfig
from metarl.rl.episodes import Episodes
from metarl.rl.maml_trpo import MAMLTRPO, subsample_index, take_episodes
from metarl.rl.policy import GaussianMLPPolicy

T, K, E, OBS, ACT = 6, 3, 8, 2, 2


def synthetic_episodes(policy, params, seed, *, terminate_early=True):
    """Episodes sampled from ``params`` (shared or stacked) with rewards that favour a > o."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, K, E, OBS, generator=g, dtype=torch.float64)
    with torch.no_grad():
        mean, log_std = policy.mean_and_log_std(params, obs)
        dist = torch.distributions.Normal(mean, log_std.exp())
        actions = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=g,
                                                        dtype=torch.float64)
        log_probs = dist.log_prob(actions).sum(-1)
    rewards = -(actions - obs).square().sum(-1) + torch.arange(K, dtype=torch.float64)[:, None]
    lengths = torch.full((K, E), T)
    if terminate_early:
        lengths[0, :3] = torch.tensor([2, 4, 5])
    mask = (torch.arange(T)[:, None, None] < lengths).to(torch.float64)
    return Episodes(obs, actions, rewards * mask, log_probs, mask, lengths, lengths < T)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(OBS, ACT, hidden_sizes=(8,)).double()
    # hvp_subsample=1.0: the tests below compare with (or start from) the full-data product.
    settings = MAMLTRPOConfig(fast_lr=0.5, max_kl=0.01, cg_damping=0.0, hvp_subsample=1.0)
    learner = MAMLTRPO(policy, settings)
    theta = parameters_of(policy)
    train = synthetic_episodes(policy, {k: v.detach() for k, v in theta.items()}, seed=1)
    adapted = learner.adapt(theta, learner.process(train))
    valid = synthetic_episodes(policy, {k: v.detach() for k, v in adapted.items()}, seed=2)
    return learner, policy, train, valid


def curvature(learner, train, valid, **changes):
    learner = MAMLTRPO(learner.policy, dataclasses.replace(learner.settings, **changes))
    theta = parameters_of(learner.policy)
    product = learner.curvature_product(theta, learner.process(train), learner.process(valid),
                                        torch.Generator().manual_seed(0))
    return product


def test_gauss_newton_product_equals_the_exact_kl_hessian_through_the_inner_update(setup):
    learner, policy, train, valid = setup
    size = flatten(parameters_of(policy)).numel()
    v = torch.randn(size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = curvature(learner, train, valid, curvature="exact")(v)
    gauss_newton = curvature(learner, train, valid, curvature="gauss_newton")(v)
    assert exact.norm() > 1e-4
    torch.testing.assert_close(gauss_newton, exact, rtol=1e-8, atol=1e-10)


def test_subsampled_product_approaches_the_full_one_as_the_fraction_grows(setup):
    learner, policy, train, valid = setup
    size = flatten(parameters_of(policy)).numel()
    v = torch.randn(size, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    full = curvature(learner, train, valid)(v)
    torch.testing.assert_close(curvature(learner, train, valid, hvp_subsample=1.0)(v), full)
    errors = []
    for fraction in (0.25, 0.5, 0.75):
        relative = []
        for seed in range(8):
            learner_seed = MAMLTRPO(learner.policy, dataclasses.replace(
                learner.settings, hvp_subsample=fraction))
            product = learner_seed.curvature_product(
                parameters_of(policy), learner.process(train), learner.process(valid),
                torch.Generator().manual_seed(seed))
            relative.append(((product(v) - full).norm() / full.norm()).item())
        errors.append(sum(relative) / len(relative))
    assert errors[0] > errors[1] > errors[2] > 0


def test_subsample_keeps_the_same_episodes_of_every_task(setup):
    _, _, _, valid = setup
    part = take_episodes(valid, subsample_index(E, 0.5, torch.Generator().manual_seed(0)))
    assert part.episodes_per_task == 4
    first = part.observations[:, 0, 0]
    matches = [(valid.observations[:, 0, e] == first).all() for e in range(E)]
    assert sum(bool(m) for m in matches) == 1


def surrogate_at(learner, flat_theta, train, valid):
    theta = {k: v.requires_grad_(True)
             for k, v in unflatten(flat_theta.clone(), parameters_of(learner.policy)).items()}
    adapted = learner.adapt(theta, learner.process(train))
    return learner.surrogate(adapted, learner.process(valid)).item()


def test_step_improves_the_surrogate_within_the_kl_bound(setup):
    learner, policy, train, valid = setup
    before = flatten(parameters_of(policy)).detach().clone()
    info = learner.step(learner.process(train), learner.process(valid))
    after = flatten(parameters_of(policy)).detach().clone()
    assert info.accepted and info.line_search_steps >= 1
    assert 0 < info.kl <= learner.settings.max_kl
    assert not torch.equal(before, after)
    # The improvement it reports is the real change of the post-adaptation surrogate.
    gained = surrogate_at(learner, after, train, valid) - surrogate_at(learner, before, train, valid)
    assert gained == pytest.approx(info.surrogate_improvement, rel=1e-6)
    assert gained > 0


def test_step_with_the_callers_adaptation_equals_the_step_that_adapts_itself(setup):
    learner, policy, train, valid = setup
    start = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    train_data, valid_data = learner.process(train), learner.process(valid)
    own = learner.step(train_data, valid_data, torch.Generator().manual_seed(0))
    after_own = flatten(parameters_of(policy)).detach().clone()
    policy.load_state_dict(start)
    given = learner.adapt(parameters_of(policy), train_data)  # as the trainer does
    reused = learner.step(train_data, valid_data, torch.Generator().manual_seed(0),
                          adapted=given)
    assert own == reused
    assert torch.equal(flatten(parameters_of(policy)).detach(), after_own)


def test_rejected_step_leaves_the_policy_unchanged(setup):
    learner, policy, train, valid = setup
    before = flatten({k: v.detach().clone() for k, v in parameters_of(policy).items()})
    # One fraction of a step sized for KL 1: the quadratic model is off that far, the step
    # breaks the KL bound (23) and is rejected for that, with finite values.
    far = MAMLTRPO(policy, dataclasses.replace(learner.settings, max_kl=1.0, ls_max_steps=1))
    info = far.step(far.process(train), far.process(valid))
    assert not info.accepted and info.kl > 1.0 and not info.rejected_non_finite
    assert torch.equal(flatten(parameters_of(policy)).detach(), before)
    # Sized for KL 10⁴, the KL at every fraction tried overflows: rejected as non-finite.
    huge = MAMLTRPO(policy, dataclasses.replace(learner.settings, max_kl=1e4, ls_max_steps=2))
    info = huge.step(huge.process(train), huge.process(valid))
    assert not info.accepted and info.rejected_non_finite
    assert torch.equal(flatten(parameters_of(policy)).detach(), before)


def test_a_non_finite_surrogate_is_an_error_and_leaves_the_policy_unchanged(setup):
    learner, policy, train, valid = setup
    before = flatten({k: v.detach().clone() for k, v in parameters_of(policy).items()})
    poisoned = dataclasses.replace(valid, log_probs=valid.log_probs * float("nan"))
    with pytest.raises(NonFiniteError, match="the surrogate is nan"):
        learner.step(learner.process(train), learner.process(poisoned))
    assert torch.equal(flatten(parameters_of(policy)).detach(), before)


def test_a_non_finite_meta_gradient_is_an_error(setup):
    learner, policy, train, valid = setup
    huge = MAMLTRPO(policy, dataclasses.replace(learner.settings, fast_lr=1e38))
    with pytest.raises(NonFiniteError, match=r"the meta-gradient is non-finite \(\d+ of \d+ "):
        huge.step(huge.process(train), huge.process(valid))


def test_a_step_rejected_for_non_finite_curvature_says_so(setup):
    learner, policy, train, valid = setup
    before = flatten({k: v.detach().clone() for k, v in parameters_of(policy).items()})
    broken = MAMLTRPO(policy, dataclasses.replace(learner.settings, cg_damping=float("nan")))
    info = broken.step(broken.process(train), broken.process(valid))
    assert not info.accepted and info.rejected_non_finite and info.line_search_steps == 0
    assert torch.equal(flatten(parameters_of(policy)).detach(), before)


def test_invalid_settings_are_rejected():
    policy = GaussianMLPPolicy(OBS, ACT)
    with pytest.raises(ValueError, match="curvature='fisher' is not valid; choose from"):
        MAMLTRPO(policy, MAMLTRPOConfig(curvature="fisher"))
    with pytest.raises(ValueError, match="hvp_subsample=0.0 must be in"):
        MAMLTRPO(policy, MAMLTRPOConfig(hvp_subsample=0.0))
