"""MAML-TRPO really learns on navigation_2d (seeded, margins measured across seeds)."""

import pytest
import torch

from metarl.core.maml import parameters_of
from metarl.core.trpo import flatten, unflatten
from metarl.rl.config import MAMLTRPOConfig
from metarl.rl.trainer import MetaRLTrainer, derive_seed


def small_config(seed: int) -> MAMLTRPOConfig:
    return MAMLTRPOConfig(env="navigation_2d", seed=seed, meta_batch_size=10, fast_batch_size=10,
                          num_workers=1)


def test_one_meta_step_improves_the_post_adaptation_surrogate_on_navigation():
    from metarl import envs

    torch.set_num_threads(1)
    with MetaRLTrainer(small_config(0)) as trainer:
        learner = trainer.learner
        tasks = envs.sample_tasks("navigation_2d", 10, seed=5)
        theta = trainer.theta()
        train = learner.process(trainer.sampler.sample(tasks, theta, seed=1))
        adapted = learner.adapt({k: v.requires_grad_(True) for k, v in trainer.theta().items()},
                                train)
        valid = learner.process(trainer.sampler.sample(
            tasks, {k: v.detach() for k, v in adapted.items()}, seed=2))

        def surrogate(flat):
            params = {k: v.requires_grad_(True)
                      for k, v in unflatten(flat.clone(), parameters_of(trainer.policy)).items()}
            return learner.surrogate(learner.adapt(params, train), valid).item()

        before = flatten(parameters_of(trainer.policy)).detach().clone()
        info = learner.step(train, valid)
        after = flatten(parameters_of(trainer.policy)).detach().clone()
    assert info.accepted and 0 < info.kl <= 0.01
    assert surrogate(after) > surrogate(before) + 1e-3


def run(seed: int, iterations: int = 8):
    with MetaRLTrainer(small_config(seed)) as trainer:
        return [trainer.step() for _ in range(iterations)]


def check_learning(history):
    after = [h["returns/step_1"] for h in history]
    before = [h["returns/step_0"] for h in history]
    # Measured over seeds 0-2 (10 tasks x 10 episodes): -210..-136 at the first iteration,
    # -39..-35 at the eighth; adaptation then adds 6-14 to the return.
    assert sum(after[-2:]) / 2 > after[0] + 50
    assert sum(after[-2:]) / 2 > sum(before[-2:]) / 2


def test_short_navigation_run_raises_the_post_adaptation_return():
    torch.set_num_threads(1)
    history = run(seed=0)
    check_learning(history)
    # The logged line search: an accepted step takes a fraction in (0, 1], a rejected one 0.
    assert all((0 < h["trpo/step_fraction"] <= 1) == bool(h["trpo/accepted"]) for h in history)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_short_navigation_run_raises_the_post_adaptation_return_across_seeds(seed):
    torch.set_num_threads(1)
    check_learning(run(seed=seed))


def test_iteration_seeds_are_independent_streams():
    seeds = {derive_seed(0, it, purpose) for it in range(50)
             for purpose in ("tasks", "train", "valid", "subsample")}
    assert len(seeds) == 200
    assert derive_seed(0, 3, "train") == derive_seed(0, 3, "train")


def test_a_step_logs_episode_lengths_and_the_policy_std():
    torch.set_num_threads(1)
    nav = MAMLTRPOConfig(env="navigation_2d", meta_batch_size=2, fast_batch_size=2,
                         hidden_sizes=(8, 8), num_workers=1)
    with MetaRLTrainer(nav) as trainer:
        values = trainer.step()
        std = trainer.policy.log_std.detach().exp().mean().item()
    assert values["episodes/length_step_0"] == values["episodes/length_step_1"] == 100
    assert values["policy/std"] == pytest.approx(std) and std != pytest.approx(1.0)  # stepped
    # The ant under the initial policy (σ = 1) jumps or falls out of its healthy height.
    ant = MAMLTRPOConfig(env="ant_dir", meta_batch_size=2, fast_batch_size=2,
                         hidden_sizes=(8, 8), num_workers=1, cg_iters=2)
    with MetaRLTrainer(ant) as trainer:
        values = trainer.step()
    assert 1 <= values["episodes/length_step_0"] < 200
