"""ProMP: its objectives against hand-computed values and exact expectations, its outer step on
synthetic episodes, and ``python -m metarl.run promp`` with tiny budgets."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import yaml
from run_helpers import one_error_line, only_run_dir

from metarl.core.maml import parameters_of
from metarl.nonfinite import NonFiniteError
from metarl.rl.config import PROMPConfig
from metarl.rl.episodes import Episodes
from metarl.rl.maml_trpo import TaskData
from metarl.rl.policy import GaussianMLPPolicy
from metarl.rl.promp import ProMP
from metarl.rl.promp_objectives import (
    adapt_kl_coef,
    clip_fraction,
    clipped_surrogate,
    kl_penalty,
    lvc_objective,
    vpg_objective,
)
from metarl.rl.returns import discounted_returns
from metarl.run import main
from metarl.runs import load_checkpoint

T, K, E, OBS, ACT = 5, 2, 4, 2, 2


def synthetic_episodes(policy, params, seed: int) -> Episodes:
    """Episodes ``[T, K, E]`` sampled from ``params`` (shared or task-stacked), rewards favouring
    a > o, the first task's first episode ending early."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T, K, E, OBS, generator=g, dtype=torch.float64)
    with torch.no_grad():
        mean, log_std = policy.mean_and_log_std(params, obs)
        actions = mean + log_std.exp() * torch.randn(mean.shape, generator=g, dtype=torch.float64)
        log_probs = policy.log_prob(params, obs, actions)
    rewards = -(actions - obs).square().sum(-1)
    lengths = torch.full((K, E), T)
    lengths[0, 0] = 2
    mask = (torch.arange(T)[:, None, None] < lengths).to(torch.float64)
    return Episodes(obs, actions, rewards * mask, log_probs, mask, lengths, lengths < T)


@pytest.fixture
def setup():
    """A float64 policy, its learner and processed pre- and post-update episodes."""
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(OBS, ACT, hidden_sizes=(6,)).double()
    learner = ProMP(policy, PROMPConfig(fast_lr=0.3, num_outer_steps=3, init_kl_coef=0.1))
    theta = {k: v.detach() for k, v in parameters_of(policy).items()}
    train = learner.process(synthetic_episodes(policy, theta, seed=1))
    adapted = learner.adapt(parameters_of(policy), train)
    valid = learner.process(synthetic_episodes(policy, {k: v.detach() for k, v in
                                                        adapted.items()}, seed=2))
    return learner, policy, train, valid


# --- (a) the LVC objective's gradient is the policy gradient ---------------------------------

def test_lvc_gradient_equals_the_vpg_gradient_and_its_hessian_adds_the_score_term(setup):
    learner, policy, train, _ = setup
    ep = train.episodes
    theta = parameters_of(policy)
    log_probs = policy.log_prob(theta, ep.observations, ep.actions)
    names = list(theta)

    def grads(objective):
        return torch.autograd.grad(objective.sum(), [theta[n] for n in names], create_graph=True)

    vpg = grads(vpg_objective(log_probs, train.advantages, ep.mask))
    lvc = grads(lvc_objective(log_probs, log_probs.detach(), train.advantages, ep.mask))
    # The sampling policy's own log-probabilities (θ = θ_o): the same function to second order.
    sampled = grads(lvc_objective(log_probs, ep.log_probs, train.advantages, ep.mask))
    for a, b, c in zip(vpg, lvc, sampled):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-12)
    # Hessian-vector products: LVC's = VPG's + mean_t (∇log π_t · v) ∇log π_t A_t.
    v = [torch.randn_like(g, generator=torch.Generator().manual_seed(3)) for g in vpg]

    def hvp(gradient):
        dot = sum((g * w).sum() for g, w in zip(gradient, v))
        return torch.autograd.grad(dot, [theta[n] for n in names], retain_graph=True)

    h_vpg, h_lvc, h_sampled = hvp(vpg), hvp(lvc), hvp(sampled)
    # mean_t (∇log π_t · v) A_t ∇log π_t, with every ∇log π_t · v = J v as the derivative of
    # (Jᵀ z) · v with respect to z
    z = torch.zeros_like(log_probs, requires_grad=True)
    transposed = torch.autograd.grad(log_probs, [theta[n] for n in names], grad_outputs=z,
                                     create_graph=True)
    (along,) = torch.autograd.grad(sum((j * w).sum() for j, w in zip(transposed, v)), z)
    weights = train.advantages * ep.mask / ep.mask.sum(dim=(0, 2))[:, None]
    score = torch.autograd.grad((weights * along.detach() * log_probs).sum(),
                                [theta[n] for n in names], retain_graph=True)
    for a, b, c, s in zip(h_vpg, h_lvc, h_sampled, score):
        torch.testing.assert_close(b, a + s, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(c, b, rtol=1e-8, atol=1e-11)


# --- (b) the estimators' expectations and variances on a problem with exact values ----------

def gaussian_bandit_estimates(num_batches: int = 20000, horizon: int = 5, theta0: float = 0.3):
    """Each estimator's gradient and Hessian estimate of one episode, ``num_batches`` times:
    a 1-D Gaussian policy a_t ~ N(θ, 1) for ``horizon`` steps with reward r_t = -a_t², each
    objective a mean over the steps. Exactly, (1/T) J(θ) = -(θ² + 1): gradient -2θ, Hessian -2.
    Each episode is a task of its own ([T, K, 1] with K episodes), so one backward pass gives
    every episode's derivatives with respect to its own copy of θ."""
    g = torch.Generator().manual_seed(0)
    actions = theta0 + torch.randn(horizon, num_batches, 1, generator=g, dtype=torch.float64)
    rewards = -actions.square()
    mask = torch.ones_like(rewards)
    to_go = discounted_returns(rewards, mask, 1.0)
    theta = torch.full((num_batches,), theta0, dtype=torch.float64, requires_grad=True)
    log_probs = -0.5 * (actions - theta[None, :, None]).square() - 0.5 * math.log(2 * math.pi)
    cumulative = torch.cumsum(log_probs, 0)  # DiCE: each reward weighted by all earlier actions
    objectives = {
        "lvc": lvc_objective(log_probs, log_probs.detach(), to_go, mask),
        "vpg": vpg_objective(log_probs, to_go, mask),
        "dice": (torch.exp(cumulative - cumulative.detach()) * rewards).mean(dim=(0, 2)),
    }
    out = {}
    for name, objective in objectives.items():
        (gradient,) = torch.autograd.grad(objective.sum(), theta, create_graph=True)
        (hessian,) = torch.autograd.grad(gradient.sum(), theta, retain_graph=True)
        out[name] = (gradient.detach(), hessian.detach())
    return out, -2.0 * theta0, -2.0


def within(estimates: torch.Tensor, exact: float, standard_errors: float = 4.0) -> bool:
    error = estimates.std().item() / math.sqrt(estimates.numel())
    return abs(estimates.mean().item() - exact) < standard_errors * error


def test_lvc_estimates_the_exact_hessian_with_lower_variance_than_dice_where_vpg_is_biased():
    estimates, gradient, hessian = gaussian_bandit_estimates()
    lvc, vpg, dice = estimates["lvc"], estimates["vpg"], estimates["dice"]
    # The same policy-gradient estimate from all three, of the right expectation.
    torch.testing.assert_close(lvc[0], vpg[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lvc[0], dice[0], rtol=1e-12, atol=1e-12)
    assert within(lvc[0], gradient)
    # LVC and DiCE both estimate the Hessian without bias here (the steps are independent, so
    # the products across steps that LVC drops have expectation 0) ...
    assert within(lvc[1], hessian) and within(dice[1], hessian)
    # ... LVC with less than half of DiCE's variance ...
    assert lvc[1].var() < 0.5 * dice[1].var()
    # ... and the VPG objective's Hessian, lacking the score-function term, is far off.
    assert not within(vpg[1], hessian, standard_errors=50.0)


# --- (c) the clipped surrogate and the KL penalty -------------------------------------------

def test_clipped_surrogate_against_hand_computed_values():
    # One task, steps [T=3, K=1, E=2]; the last step of the second episode is padding.
    ratio = torch.tensor([[1.5, 0.5], [1.5, 0.5], [1.1, 7.0]], dtype=torch.float64)[:, None]
    advantages = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 5.0]],
                              dtype=torch.float64)[:, None]
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]], dtype=torch.float64)[:, None]
    log_probs = ratio.log().requires_grad_(True)
    sampling = torch.zeros_like(ratio)
    value = clipped_surrogate(log_probs, sampling, advantages, mask, clip_eps=0.2)
    # min(r A, clip(r, 0.8, 1.2) A): 1.2, 0.5, -1.5, -0.8, 2.2 over the 5 valid steps
    torch.testing.assert_close(value, torch.tensor([(1.2 + 0.5 - 1.5 - 0.8 + 2.2) / 5],
                                                   dtype=torch.float64))
    (gradient,) = torch.autograd.grad(value.sum(), log_probs)
    # d/d log π of r A is r A where the unclipped term is the minimum, else 0
    expected = torch.tensor([[0.0, 0.5], [-1.5, 0.0], [2.2, 0.0]], dtype=torch.float64)[:, None]
    torch.testing.assert_close(gradient, expected / 5)
    assert clip_fraction(log_probs.detach(), sampling, mask, 0.2) == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match=r"clip_eps=1.0 must be in \(0, 1\)"):
        clipped_surrogate(log_probs, sampling, advantages, mask, clip_eps=1.0)
    with pytest.raises(ValueError, match=r"advantages has shape \(3, 1\), the mask \(3, 1, 2\)"):
        clipped_surrogate(log_probs, sampling, advantages[:, :, 0], mask, clip_eps=0.2)


def test_kl_penalty_is_the_coefficient_times_the_mean_task_kl():
    # Two tasks of one step, 1-D: KL(N(0,1) ‖ N(1,1)) = 0.5 and KL(N(0,1) ‖ N(0,e²)) = 1 + e⁻²/2 - 1/2
    old = (torch.zeros(1, 2, 1, 1, dtype=torch.float64), torch.zeros(1, 2, 1, 1, dtype=torch.float64))
    new = (torch.tensor([1.0, 0.0], dtype=torch.float64).reshape(1, 2, 1, 1),
           torch.tensor([0.0, 1.0], dtype=torch.float64).reshape(1, 2, 1, 1))
    mask = torch.ones(1, 2, 1, dtype=torch.float64)
    expected = 0.1 * (0.5 + (1.0 + 0.5 * math.exp(-2.0) - 0.5)) / 2
    assert kl_penalty(old, new, mask, 0.1).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="coefficient nan must be a finite number >= 0"):
        kl_penalty(old, new, mask, float("nan"))


# --- (d) the adaptive KL coefficient ---------------------------------------------------------

@pytest.mark.parametrize("kl, expected", [(0.001, 0.5), (0.01 / 1.5 - 1e-9, 0.5),
                                          (0.01 / 1.5, 1.0), (0.01, 1.0), (0.015, 1.0),
                                          (0.015 + 1e-9, 2.0), (1.0, 2.0)])
def test_adaptive_kl_coefficient_follows_the_rule(kl, expected):
    assert adapt_kl_coef(1.0, kl, 0.01) == expected


def test_adaptive_kl_coefficient_refuses_a_non_finite_kl():
    with pytest.raises(ValueError, match="the inner KL is nan"):
        adapt_kl_coef(1.0, float("nan"), 0.01)


def test_the_learner_adapts_its_coefficient_by_the_rule_after_its_steps(setup):
    learner, policy, train, valid = setup
    learner.settings = dataclasses.replace(learner.settings, adaptive_kl=True,
                                           target_inner_kl=1e-9)
    info = learner.step(train, valid)
    assert info.kl_coef == 0.1 and info.inner_kl > 1.5e-9
    assert learner.kl_coef == adapt_kl_coef(0.1, info.inner_kl, 1e-9) == 0.2


# --- the outer step --------------------------------------------------------------------------

def test_meta_gradient_through_the_lvc_step_matches_finite_differences(setup):
    learner, policy, train, valid = setup
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in parameters_of(policy).items()}
    with torch.no_grad():
        old = policy.mean_and_log_std(theta, train.episodes.observations)

    def objective(params):
        return learner.objective(params, learner.adapt(params, train), train, valid, old)

    grads = torch.autograd.grad(objective(theta), list(theta.values()))
    g = torch.Generator().manual_seed(5)
    direction = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in theta.items()}
    h = 1e-5

    def moved(sign):
        return {k: (v + sign * h * direction[k]).detach().requires_grad_(True)
                for k, v in theta.items()}

    numeric = (objective(moved(1)) - objective(moved(-1))).item() / (2 * h)
    analytic = sum((gr * direction[k]).sum() for gr, k in zip(grads, theta)).item()
    assert abs(analytic) > 1e-3
    assert numeric == pytest.approx(analytic, rel=1e-6)


def test_outer_steps_reuse_a_given_adaptation_only_for_the_first_step(setup):
    learner, policy, train, valid = setup
    start = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    info = learner.step(train, valid)
    after = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    policy.load_state_dict(start)
    again = ProMP(policy, learner.settings)
    given = again.adapt(parameters_of(policy), train)
    info_given = again.step(train, valid, adapted=given)
    for name, value in policy.state_dict().items():
        torch.testing.assert_close(value, after[name], rtol=0, atol=0)
    assert info_given == info
    assert info.objective_after > info.objective_before  # J improved on this batch


def test_first_adam_step_moves_each_parameter_by_the_learning_rate(setup):
    learner, policy, train, valid = setup
    settings = dataclasses.replace(learner.settings, num_outer_steps=1, outer_lr=1e-3)
    learner = ProMP(policy, settings)
    theta = parameters_of(policy)
    with torch.no_grad():
        old = policy.mean_and_log_std({k: v.detach() for k, v in theta.items()},
                                      train.episodes.observations)
    grads = torch.autograd.grad(learner.objective(theta, learner.adapt(theta, train), train,
                                                  valid, old), list(theta.values()))
    before = {k: v.detach().clone() for k, v in theta.items()}
    learner.step(train, valid)
    for (name, value), grad in zip(theta.items(), grads):  # Adam's first step: lr · sign(∇J)
        big = grad.abs() > 1e-6
        torch.testing.assert_close((value.detach() - before[name])[big],
                                   1e-3 * grad.sign()[big], rtol=1e-4, atol=0)


def test_a_non_finite_objective_raises_before_the_policy_changes(setup):
    learner, policy, train, valid = setup
    before = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    broken = TaskData(valid.episodes, valid.advantages * float("nan"))
    with pytest.raises(NonFiniteError, match="the ProMP objective is nan at outer step 1"):
        learner.step(train, broken)
    for name, value in policy.state_dict().items():
        assert torch.equal(value, before[name])


# --- (e), (f) the command line ---------------------------------------------------------------

TINY = ["--env", "navigation_2d", "--meta-batch-size", "2", "--fast-batch-size", "2",
        "--hidden-sizes", "8", "--num-outer-steps", "2", "--num-workers", "1",
        "--torch-threads", "1", "--no-progress"]


def test_promp_trains_writes_its_run_directory_and_evaluates(tmp_path, capsys):
    assert main(["promp", *TINY, "--num-batches", "2", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith("promp__navigation_2d__0__")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["algo"], saved["clip_eps"], saved["outer_lr"]) == ("promp", 0.3, 1e-3)
    assert saved["normalize_actions"] is True  # experiments/promp/navigation_2d.yaml
    assert "max_kl" not in saved
    assert list(run_dir.glob("events.out.tfevents.*"))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert (state["algo"], state["iteration"], state["kl_coef"]) == ("promp", 2, 5e-4)
    assert set(state["optimizer"]["state"]) == set(range(len(state["policy"])))
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--episodes-per-task", "2", "--no-progress"]) == 0
    curve = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    assert list(curve["methods"]) == ["promp"]  # the run's curve, named by its algorithm


def test_an_iteration_logs_the_outer_steps_values_and_the_shared_ones(tmp_path):
    from metarl import experiment
    from metarl.rl.promp_trainer import ProMPTrainer

    config = experiment.make_config("promp", env="navigation_2d", meta_batch_size=2,
                                    fast_batch_size=2, hidden_sizes=[8], num_outer_steps=2,
                                    num_workers=1, torch_threads=1, output_dir=str(tmp_path))
    with ProMPTrainer(config) as trainer:
        values = trainer.step()
        assert trainer.name == "promp navigation_2d" and trainer.iteration == 1
    assert {"returns/step_0", "returns/step_1", "time/optimisation_s"} <= set(values)
    assert values["promp/kl_coef"] == 5e-4 and values["promp/inner_kl"] > 0
    assert 0 <= values["promp/clip_fraction"] <= 1
    assert not [tag for tag in values if tag.startswith("trpo/")]
    assert all(math.isfinite(value) for value in values.values())


def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    common = [*TINY, "--checkpoint-every", "1", "--adaptive-kl", "--target-inner-kl", "1e-9"]
    assert main(["promp", "--num-batches", "3", *common,
                 "--output-dir", str(tmp_path / "whole")]) == 0
    assert main(["promp", "--num-batches", "2", *common,
                 "--output-dir", str(tmp_path / "cut")]) == 0
    cut = only_run_dir(tmp_path / "cut")
    assert main(["promp", "--resume", str(cut), "--num-batches", "3", "--no-progress"]) == 0
    whole = load_checkpoint(only_run_dir(tmp_path / "whole") / "checkpoint.pt")
    resumed = load_checkpoint(cut / "checkpoint.pt")
    assert resumed["iteration"] == 3 and resumed["kl_coef"] == whole["kl_coef"] == 5e-4 * 8
    for name, value in whole["policy"].items():
        assert torch.equal(resumed["policy"][name], value), name
    for index, entry in whole["optimizer"]["state"].items():
        for key, value in entry.items():
            assert torch.equal(resumed["optimizer"]["state"][index][key], value), (index, key)


def test_config_errors_name_the_bad_value(tmp_path, capsys):
    assert main(["promp", *TINY, "--adaptive-kl", "--init-kl-coef", "0",
                 "--output-dir", str(tmp_path)]) == 2
    assert "adaptive_kl=True needs init_kl_coef > 0" in one_error_line(capsys)
    assert main(["promp", *TINY, "--clip-eps", "1", "--output-dir", str(tmp_path)]) == 2
    assert one_error_line(capsys) == "error: clip_eps=1.0 must be in (0, 1)"
    assert main(["promp", *TINY, "--max-kl", "0.1", "--output-dir", str(tmp_path)]) == 2
    capsys.readouterr()


def test_a_target_kl_without_the_adaptive_penalty_is_named_as_ignored(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="metarl"):
        assert main(["promp", *TINY, "--num-batches", "1", "--target-inner-kl", "0.05",
                     "--output-dir", str(tmp_path)]) == 0
    said = [r.getMessage() for r in caplog.records if "target_inner_kl" in r.getMessage()]
    assert said == ["warning: target_inner_kl=0.05 ignored: the KL penalty's coefficient is "
                    "fixed (add --adaptive-kl to aim it at this KL)"]
