"""Batches of a fixed number of env steps, drawn as rllab's sampler drew them."""

import numpy as np
import pytest
import torch

from metarl import envs
from metarl.core.maml import parameters_of
from metarl.rl.policy import GaussianMLPPolicy
from metarl.rl.sampler import PolicySpec
from metarl.rl.step_budget import (
    completed_within_budget,
    round_seed,
    sample_env_steps,
    slots_for,
)
from metarl.rl.workers import make_sampler


def test_slots_are_the_budget_over_the_horizon_capped_at_100():
    assert slots_for(4000, 200) == 20 and slots_for(4000, 100) == 40
    assert slots_for(150, 100) == 1 and slots_for(10**6, 100) == 100
    with pytest.raises(ValueError, match="steps=0"):
        slots_for(0, 100)


def test_full_length_episodes_give_exactly_one_per_slot():
    lengths = np.full((1, 3, 4), 100)  # one round, 3 tasks, 4 slots, none ends early
    assert completed_within_budget(lengths, 400).all()


def test_a_budget_past_one_episode_per_slot_needs_another_round():
    lengths = np.full((1, 1, 4), 100)
    assert completed_within_budget(lengths, 450) is None  # 400 steps done at t=100
    keep = completed_within_budget(np.full((2, 1, 4), 100), 450)
    assert keep.all()  # rllab stops at t=200 with 8 episodes, 800 steps


def test_short_episodes_fill_the_budget_and_running_ones_are_dropped():
    # Two slots. Slot 0: episodes of 10 steps; slot 1: one of 100. Budget 100 steps:
    # at t=100 slot 0 has completed 10 episodes (100 steps) and slot 1 its one (100).
    # The count reaches 100 at t=100; everything completed by then is kept.
    lengths = np.array([[[10, 100]]] * 12)  # [R=12, K=1, S=2]
    keep = completed_within_budget(lengths, 100)
    assert keep[:, 0, 0].tolist() == [True] * 10 + [False] * 2
    assert keep[:, 0, 1].tolist() == [True] + [False] * 11

    # Budget 60: reached at t=60 by slot 0's six episodes; slot 1's episode is still running.
    keep = completed_within_budget(lengths, 60)
    assert keep[:, 0, 0].sum() == 6 and not keep[:, 0, 1].any()


def test_the_stopping_time_must_lie_within_what_every_slot_covers():
    # Slot 1's first episode (100 steps) covers t <= 100, slot 0's two rounds only t <= 20:
    # whether slot 0 completes more episodes before the budget is reached is not yet known.
    lengths = np.array([[[10, 100]], [[10, 100]]])
    assert completed_within_budget(lengths, 100) is None


def test_tasks_are_independent():
    lengths = np.array([[[50, 50], [100, 100]]] * 4)  # task 0 short episodes, task 1 full
    keep = completed_within_budget(lengths, 200)
    assert keep[:, 0].sum() == 4  # t=100: two per slot
    assert keep[:, 1].sum() == 2 and keep[0, 1].all()


def rllab_loop(lengths, steps):
    """The sampler's loop, one time step at a time: the kept episodes, or None if a slot runs
    out of sampled episodes before the budget is reached."""
    rounds, tasks, slots = lengths.shape
    keep = np.zeros(lengths.shape, dtype=bool)
    for k in range(tasks):
        current, left, done, t = [0] * slots, [int(lengths[0, k, s]) for s in range(slots)], 0, 0
        while done < steps:
            t += 1
            for s in range(slots):
                if current[s] >= rounds:
                    return None  # this slot's next episode was never sampled
                left[s] -= 1
                if left[s] == 0:
                    keep[current[s], k, s] = True
                    done += int(lengths[current[s], k, s])
                    current[s] += 1
                    left[s] = int(lengths[current[s], k, s]) if current[s] < rounds else 0
    return keep


def test_the_kept_episodes_are_the_plain_loops():
    rng = np.random.default_rng(0)
    for _ in range(300):
        r, k, s = rng.integers(1, 5, size=3)
        horizon = int(rng.integers(1, 12))
        full = rng.random() < 0.5  # mostly full-length episodes, or any length
        lengths = np.where(rng.random((r, k, s)) < (0.8 if full else 0.0), horizon,
                           rng.integers(1, horizon + 1, size=(r, k, s)))
        steps = int(rng.integers(1, 3 * s * horizon + 1))
        expected, got = rllab_loop(lengths, steps), completed_within_budget(lengths, steps)
        assert (got is None) == (expected is None), (lengths.tolist(), steps)
        if got is not None:
            assert np.array_equal(got, expected), (lengths.tolist(), steps)


def test_bad_lengths_are_refused():
    with pytest.raises(ValueError, match="lengths must be"):
        completed_within_budget(np.zeros((1, 1, 2)), 10)


def navigation_sampler(episodes):
    spec = PolicySpec(2, 2, hidden_sizes=(8,), normalize_actions=True)
    return spec, make_sampler("navigation_2d", spec, num_tasks=2, episodes_per_task=episodes,
                              num_workers=1)


def standing_still(spec):
    """A policy that stays where it starts: mean action 0 (zero output layer), noise e^-6."""
    policy = GaussianMLPPolicy(spec.obs_size, spec.act_size, hidden_sizes=spec.hidden_sizes,
                               init_log_std=-6.0, init_output_scale=0.0)
    return {k: v.detach() for k, v in parameters_of(policy).items()}


def test_sampled_batches_hold_the_budget_and_round_zero_is_the_fixed_batch():
    spec, sampler = navigation_sampler(episodes=2)
    with sampler:
        # A goal at the start: standing still terminates on step 1. The other: never.
        tasks = [{"goal": [0.0, 0.0]}, {"goal": [0.4, -0.4]}]
        params = standing_still(spec)
        batch = sample_env_steps(sampler, tasks, params, seed=5, steps=200)
        fixed = sampler.sample(tasks, params, seed=5)
    lengths = batch.lengths
    # Task 0: episodes of one step, back to back, until 200 steps: 100 rounds of 2 slots.
    assert (lengths[0] == 1).all() and lengths.shape == (2, 200)
    # Task 1: never terminates; the first round's two 100-step episodes are the whole batch.
    assert lengths[1, :2].tolist() == [100, 100] and (lengths[1, 2:] == 0).all()
    assert torch.equal(batch.rewards[:, :, :2], fixed.rewards)  # round 0 = the fixed batch
    per_task = batch.returns_per_task()  # over the kept episodes only, not the empty slots
    assert per_task[1] == pytest.approx(fixed.returns_per_task()[1].item())
    assert per_task[0] == pytest.approx(0.0, abs=1e-3)


def test_each_round_samples_fresh_episodes():
    spec, sampler = navigation_sampler(episodes=1)
    policy = GaussianMLPPolicy(spec.obs_size, spec.act_size, hidden_sizes=spec.hidden_sizes,
                               init_output_scale=0.0)  # zero mean, σ = 1: the same every run
    params = {k: v.detach() for k, v in parameters_of(policy).items()}
    tasks = [{"goal": [0.4, -0.4]}, {"goal": [-0.3, 0.2]}]
    with sampler:  # one slot, episodes that run the full 100 steps: 150 steps need two rounds
        batch = sample_env_steps(sampler, tasks, params, seed=3, steps=150)
    assert batch.lengths.tolist() == [[100, 100], [100, 100]]
    assert not torch.equal(batch.actions[:, :, 0], batch.actions[:, :, 1])


def test_the_sampler_must_run_the_slots_of_the_budget():
    spec, sampler = navigation_sampler(episodes=3)
    with sampler, pytest.raises(ValueError, match="runs 2 episodes side by side"):
        tasks = envs.registry.sample_tasks("navigation_2d", 2, seed=0)
        sample_env_steps(sampler, tasks, standing_still(spec), seed=0, steps=200)


def test_round_seeds_differ_and_round_zero_keeps_the_seed():
    assert round_seed(7, 0) == 7
    assert len({round_seed(7, r) for r in range(50)}) == 50
