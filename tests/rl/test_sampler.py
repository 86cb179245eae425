"""The in-process batched sampler: output layout, per-task parameters, log-probs, masks, seeds."""

import dataclasses
from dataclasses import fields

import numpy as np
import pytest
import torch

from metarl import envs
from metarl.config import ConfigError
from metarl.core.maml import stack_params
from metarl.envs.registry import NotATaskFamilyError, TaskFamily
from metarl.nonfinite import NonFiniteError
from metarl.rl.episodes import Episodes
from metarl.rl.policy import GaussianMLPPolicy, log_prob
from metarl.rl.sampler import BatchedSampler, PolicySpec, episode_seeds
from metarl.rl.workers import make_sampler


def spec_of(name: str, hidden=(8, 8)) -> PolicySpec:
    batch = envs.make_batched(name, 1, num_threads=1)
    batch.close()
    return PolicySpec(batch.observation_size, batch.action_size, hidden)


def policy_params(spec: PolicySpec, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    policy = GaussianMLPPolicy(spec.obs_size, spec.act_size, spec.hidden_sizes)
    return {name: p.detach() for name, p in policy.named_parameters()}


def constant_policy(spec: PolicySpec, means, log_std=-10.0) -> dict:
    """Task-stacked params whose mean action is ``means[k]`` whatever the observation."""
    params = policy_params(spec)
    stacked = {name: torch.zeros(len(means), *p.shape) for name, p in params.items()}
    last = len(spec.hidden_sizes)
    stacked[f"layers.{last}.bias"] = torch.tensor(means, dtype=torch.float32)
    stacked["log_std"] = torch.full((len(means), spec.act_size), log_std)
    return stacked


def sample(name, tasks, params, seed=0, episodes=3, **kwargs) -> Episodes:
    spec = kwargs.pop("spec", None) or spec_of(name)
    with BatchedSampler(name, spec, num_tasks=len(tasks), episodes_per_task=episodes,
                        num_threads=1, **kwargs) as sampler:
        return sampler.sample(tasks, params, seed)


def assert_near(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """(torch.testing.assert_close costs a second of imports on its first call.)"""
    assert actual.shape == expected.shape
    error = (actual - expected).abs().max().item()
    assert error <= atol, f"max abs error {error} > {atol}"


def assert_identical(a: Episodes, b: Episodes) -> None:
    for f in fields(Episodes):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name


@pytest.mark.parametrize("name, horizon, obs, act", [("navigation_2d", 100, 2, 2),
                                                      ("cheetah_vel", 200, 20, 6)])
def test_output_shapes_dtypes_and_masks(name, horizon, obs, act):
    spec = spec_of(name)
    tasks = envs.sample_tasks(name, 2, seed=1)
    batch = sample(name, tasks, policy_params(spec), spec=spec)
    t, k, e = horizon, 2, 3
    assert batch.observations.shape == (t, k, e, obs)
    assert batch.actions.shape == (t, k, e, act)
    for array in ("rewards", "log_probs", "mask"):
        assert getattr(batch, array).shape == (t, k, e)
    for array in ("observations", "actions", "rewards", "log_probs", "mask"):
        assert getattr(batch, array).dtype == torch.float32
        assert torch.isfinite(getattr(batch, array)).all()
    assert batch.lengths.shape == (k, e) and batch.lengths.dtype == torch.int64
    assert batch.terminated.shape == (k, e) and batch.terminated.dtype == torch.bool
    if name == "cheetah_vel":  # never terminates: every episode runs the full horizon
        assert (batch.lengths == t).all() and not batch.terminated.any()
        assert (batch.mask == 1).all()
    else:
        assert torch.equal(batch.observations[0], torch.zeros(k, e, obs))  # start at (0, 0)
    # Episodes of one task differ (own reset seed and noise); the stored obs is the env's.
    assert not torch.equal(batch.actions[:, 0, 0], batch.actions[:, 0, 1])


def test_each_task_is_sampled_with_its_own_parameters():
    spec = spec_of("navigation_2d")
    tasks = [{"goal": [0.45, -0.45]}, {"goal": [-0.45, 0.45]}]  # never reached: no termination
    batch = sample("navigation_2d", tasks, constant_policy(spec, [[5.0, 5.0], [-5.0, -5.0]]))
    assert (batch.lengths == 100).all()
    # Stored actions are the unclipped samples; the env got them clipped to [-0.1, 0.1].
    assert_near(batch.actions[:, 0], torch.full((100, 3, 2), 5.0), atol=1e-3)
    assert_near(batch.actions[:, 1], torch.full((100, 3, 2), -5.0), atol=1e-3)
    steps = torch.arange(100, dtype=torch.float32).view(100, 1, 1) * 0.1
    assert_near(batch.observations[:, 0], steps.expand(100, 3, 2), atol=1e-4)
    assert_near(batch.observations[:, 1], -steps.expand(100, 3, 2), atol=1e-4)


def test_normalized_actions_map_minus_one_to_one_onto_the_bounds():
    spec = dataclasses.replace(spec_of("navigation_2d"), normalize_actions=True)
    tasks = [{"goal": [0.45, -0.45]}, {"goal": [-0.45, 0.45]}]  # never reached
    batch = sample("navigation_2d", tasks, constant_policy(spec, [[0.5, -0.25], [3.0, -3.0]]),
                   spec=spec)
    assert_near(batch.actions[:, 0], torch.tensor([0.5, -0.25]).expand(100, 3, 2), atol=1e-3)
    steps = torch.arange(100, dtype=torch.float32).view(100, 1, 1)
    # 0.5 -> 0.05 and -0.25 -> -0.025 per step; 3.0 is outside [-1, 1]: the bound, 0.1.
    for k, per_step in enumerate(([0.05, -0.025], [0.1, -0.1])):
        expected = (steps * torch.tensor(per_step)).expand(100, 3, 2)
        assert_near(batch.observations[:, k], expected, atol=1e-3)


@pytest.mark.parametrize("form", ["shared", "stacked"])
def test_log_probs_are_the_policys_log_prob_of_the_stored_actions(form):
    spec = spec_of("cheetah_vel")
    params = policy_params(spec)
    params["log_std"] = torch.linspace(-1.0, 0.5, spec.act_size)
    if form == "stacked":
        params = {name: (p + 0.1 * torch.randn_like(p)).contiguous()
                  for name, p in stack_params(params, 2).items()}
    tasks = envs.sample_tasks("cheetah_vel", 2, seed=3)
    batch = sample("cheetah_vel", tasks, params, spec=spec)
    expected = log_prob(params, batch.observations, batch.actions, spec.nonlinearity)
    assert_near(batch.log_probs, expected * batch.mask, atol=1e-4)


def test_early_termination_is_masked():
    spec = spec_of("navigation_2d")
    # Task 0: goal at the start, (almost) zero actions -> terminated after the first step.
    # Task 1: steps of 0.02 towards x = 0.045 -> terminated after the second step.
    # Task 2: never reaches its goal -> runs the full horizon, truncated.
    tasks = [{"goal": [0.0, 0.0]}, {"goal": [0.045, 0.0]}, {"goal": [0.4, 0.4]}]
    params = constant_policy(spec, [[0.0, 0.0], [0.02, 0.0], [0.0, 0.0]])
    batch = sample("navigation_2d", tasks, params)
    assert batch.lengths.tolist() == [[1] * 3, [2] * 3, [100] * 3]
    assert batch.terminated.tolist() == [[True] * 3, [True] * 3, [False] * 3]
    for k, length in enumerate((1, 2, 100)):
        assert (batch.mask[:length, k] == 1).all() and (batch.mask[length:, k] == 0).all()
        for array in (batch.observations, batch.actions, batch.rewards, batch.log_probs):
            assert (array[length:, k] == 0).all()
        assert (batch.rewards[:length, k] < 0).all()  # -distance at every valid step


def test_same_seed_same_episodes_different_seed_differs():
    spec = spec_of("cheetah_vel")
    tasks = envs.sample_tasks("cheetah_vel", 2, seed=0)
    params = {name: (p + 0.05 * torch.randn_like(p)).contiguous()
              for name, p in stack_params(policy_params(spec), 2).items()}
    with BatchedSampler("cheetah_vel", spec, num_tasks=2, episodes_per_task=2,
                        num_threads=1) as sampler:
        first, other, again = (sampler.sample(tasks, params, s) for s in (7, 8, 7))
    assert_identical(first, again)
    assert not torch.equal(first.observations[0], other.observations[0])  # reset noise
    assert not torch.equal(first.actions, other.actions)


def test_seeds_depend_on_task_index_and_episode_not_on_episode_count():
    seeds3, noise3 = episode_seeds(5, task_index=4, episodes=3, horizon=10, act_size=2)
    seeds5, noise5 = episode_seeds(5, task_index=4, episodes=5, horizon=10, act_size=2)
    assert seeds5[:3] == seeds3 and np.array_equal(noise5[:3], noise3)
    other_seeds, other_noise = episode_seeds(5, task_index=5, episodes=3, horizon=10, act_size=2)
    assert other_seeds != seeds3 and not np.array_equal(other_noise, noise3)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        episode_seeds(-1, 0, 1, 1, 1)


def test_plugin_family_without_batched_form_runs_through_the_fallback(plugin_envs):
    name = "plugin_family:LineTargetEnv"
    spec = PolicySpec(1, 1, (8, 8))
    tasks = [{"target": 0.5}, {"target": -0.5}]
    params = constant_policy(spec, [[0.04], [-0.04]], log_std=-5.0)
    batch = sample(name, tasks, params, spec=spec)
    assert batch.observations.shape == (30, 2, 3, 1)
    # The point starts in [-0.1, 0.1] and moves 0.04 per step towards its target, so it lands
    # within 0.05 of it after 10 to 15 steps: terminated.
    assert batch.terminated.all() and ((batch.lengths >= 10) & (batch.lengths <= 15)).all()
    assert (batch.rewards.sum(0) < 0).all()


def test_a_flagged_non_finite_state_ends_the_episode_as_terminated_counted_and_finite(
        plugin_envs):
    from faulty_families import FlaggedLine

    family = TaskFamily("flagged_line", None, FlaggedLine, None, 20)
    spec = PolicySpec(1, 1, (8,))
    tasks = [{"target": 1.0}, {"target": -1.0}]
    batch = sample(family, tasks, policy_params(spec), spec=spec)
    assert batch.lengths.tolist() == [[3] * 3, [20] * 3]
    assert batch.terminated.tolist() == [[True] * 3, [False] * 3]
    assert batch.non_finite.tolist() == [[True] * 3, [False] * 3]
    assert not batch.non_finite_actions().any()  # the env diverged, not the policy
    for array in (batch.observations, batch.actions, batch.rewards, batch.log_probs):
        assert torch.isfinite(array).all()
    assert (batch.rewards[:2, 0] == -1).all() and (batch.rewards[2:, 0] == 0).all()


@pytest.mark.parametrize(("name", "method", "count"), [
    ("DivergingLine", "step", "3 of 6 instances at episode step 3"),  # BatchedEnvBase finds it
    ("RawBatchedLine", "step", "3 of 6 instances at episode step 3"),  # the sampler finds it
    ("NanRewardLine", "step", "6 of 6 instances at episode step 2"),
    ("NanResetLine", "reset", "6 of 6 instances"),
])
def test_nan_from_the_env_that_it_did_not_flag_is_a_fault_of_the_family(plugin_envs, name,
                                                                        method, count):
    import faulty_families

    env_cls = getattr(faulty_families, name)
    family = TaskFamily(f"faulty_families:{name}", None, env_cls,
                        getattr(env_cls, "batched_cls", None), 20)
    spec = PolicySpec(1, 1, (8,))
    tasks = [{"target": 1.0}, {"target": -1.0}]
    with pytest.raises(NotATaskFamilyError) as error:
        sample(family, tasks, policy_params(spec), spec=spec)
    assert str(error.value).startswith(f"faulty_families:{name}: {method} returned non-finite "
                                       f"(NaN/inf, or beyond float32's ±3.4e38) observations or rewards in {count}")


def test_non_finite_actions_of_a_finite_policy_are_marked_not_hidden():
    spec = spec_of("navigation_2d")
    params = {name: torch.full_like(p, 1e38) for name, p in policy_params(spec).items()}
    params["log_std"] = torch.zeros(spec.act_size)
    batch = sample("navigation_2d", envs.sample_tasks("navigation_2d", 2, seed=0), params)
    # The mean overflows to inf; the env clips the action, so the episodes run on, but the
    # batch says which ones the policy broke (and the stored actions are not finite).
    assert batch.non_finite_actions().all() and not batch.non_finite.any()
    assert not torch.isfinite(batch.actions[0]).all()


def test_a_non_finite_policy_is_refused_before_sampling():
    spec = spec_of("navigation_2d")
    params = policy_params(spec)
    params["layers.0.weight"] = params["layers.0.weight"].clone()
    params["layers.0.weight"][0, 1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"the policy parameters to sample with are "
                                             r"non-finite \(layers.0.weight: 1 of 16 values\)"):
        sample("navigation_2d", envs.sample_tasks("navigation_2d", 2, seed=0), params)


def test_bad_arguments_raise_clear_errors():
    spec = spec_of("navigation_2d")
    tasks = envs.sample_tasks("navigation_2d", 2, seed=0)
    with BatchedSampler("navigation_2d", spec, num_tasks=2, episodes_per_task=1) as sampler:
        with pytest.raises(ValueError, match="built for 2 tasks"):
            sampler.sample(tasks[:1], policy_params(spec), 0)
        with pytest.raises(ValueError, match="task-stacked params for 2 tasks"):
            sampler.sample(tasks, stack_params(policy_params(spec), 3), 0)
        with pytest.raises(KeyError, match="exactly the keys"):
            sampler.sample(tasks, {"log_std": torch.zeros(2)}, 0)
    with pytest.raises(RuntimeError, match="after close"):
        sampler.sample(tasks, policy_params(spec), 0)
    with pytest.raises(NotATaskFamilyError, match="observations of size 2"):  # a ValueError
        BatchedSampler("navigation_2d", PolicySpec(3, 2), num_tasks=1, episodes_per_task=1)
    with pytest.raises(ValueError, match="observations of size 20"):  # before any worker starts
        make_sampler("cheetah_vel", PolicySpec(3, 6), num_tasks=2, episodes_per_task=1,
                     num_workers=2)
    with pytest.raises(ValueError, match="num_workers must be a positive int"):
        make_sampler("navigation_2d", spec, num_tasks=2, episodes_per_task=1, num_workers=0)


@pytest.mark.parametrize("num_workers", [1, None])
def test_make_sampler_in_process_has_no_subprocess(num_workers):
    spec = spec_of("navigation_2d")  # by default array-maths families sample in-process
    with make_sampler("navigation_2d", spec, num_tasks=2, episodes_per_task=2,
                      num_workers=num_workers) as sampler:
        assert isinstance(sampler, BatchedSampler)
        batch = sampler.sample(envs.sample_tasks("navigation_2d", 2, 0), policy_params(spec), 0)
    assert batch.num_tasks == 2 and batch.episodes_per_task == 2
    sampler.close()  # idempotent


def test_normalized_actions_need_finite_bounds_a_config_error_before_any_worker_starts(
        plugin_envs):
    from faulty_families import UnboundedLine

    family = TaskFamily("unbounded_line", None, UnboundedLine, None, 20)
    spec = PolicySpec(1, 1, (8,), normalize_actions=True)
    with pytest.raises(ConfigError, match=r"normalize_actions=True \(--normalize-actions\) "
                       r"needs finite action bounds, but unbounded_line has low=\[-inf\]"):
        BatchedSampler(family, spec, num_tasks=1, episodes_per_task=1)
    with pytest.raises(ConfigError, match="use --no-normalize-actions"):
        make_sampler(family, spec, num_tasks=2, episodes_per_task=1, num_workers=2)
    with BatchedSampler(family, dataclasses.replace(spec, normalize_actions=False), num_tasks=1,
                        episodes_per_task=1) as sampler:
        assert sampler.spec.normalize_actions is False  # unnormalised, it samples as usual
