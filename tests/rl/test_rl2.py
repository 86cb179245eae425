"""RL²: the GRU policy's inputs, the batched trial sampler against a step-by-step loop, GAE over a
whole trial, PPO's clipped surrogate, and the command line (train, resume, evaluate)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml
from run_helpers import only_run_dir

from metarl import envs
from metarl.rl.ppo import clipped_surrogate, trial_gae
from metarl.rl.recurrent_policy import GRUGaussianPolicy, policy_inputs
from metarl.rl.returns import gae
from metarl.rl.rl2 import ppo_batch, ppo_loss
from metarl.rl.sampler import episode_seeds
from metarl.rl.trial_sampler import Trials, TrialSampler
from metarl.rl.value_scale import ValueScale
from metarl.run import main

#: A plug-in family whose episodes end early (terminated near the target), horizon 30:
#: trials with masked gaps in their episode slots.
LINE = "plugin_family:LineTargetFromBatch"
TINY = ["--num-batches", "2", "--meta-batch-size", "2", "--trials-per-task", "2",
        "--hidden-size", "4", "--ppo-epochs", "1", "--num-minibatches", "2",
        "--torch-threads", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def policy_for(obs_size: int, act_size: int, hidden: int = 6, seed: int = 0,
               log_std: float = 0.0) -> GRUGaussianPolicy:
    torch.manual_seed(seed)
    return GRUGaussianPolicy(obs_size, act_size, hidden, init_log_std=log_std)


def sample(env: str, *, tasks: int = 2, trials: int = 3, episodes: int = 2, hidden: int = 6,
           normalize: bool = False, seed: int = 5, log_std: float = 0.0):
    family = envs.resolve(env)
    with TrialSampler(family, num_tasks=tasks, trials_per_task=trials,
                      episodes_per_trial=episodes, normalize_actions=normalize,
                      num_threads=1) as sampler:
        policy = policy_for(sampler.obs_size, sampler.act_size, hidden, log_std=log_std)
        task_list = family.sample_tasks(tasks, seed=1)
        return family, policy, task_list, sampler.sample(task_list, policy, seed,
                                                         keep_hidden=True)


def loop_trials(family, policy, tasks, seed, trials, episodes, bounds, scale=None):
    """Each trial stepped alone: the family's single Gymnasium env, the GRU one row at a time.
    Returns per (task, trial) a list of episodes, each a list of per-step records."""
    horizon, act = family.horizon, policy.act_size
    low, high = bounds
    env = family.make()
    out = {}
    with torch.no_grad():
        for k, task in enumerate(tasks):
            seeds, noise = episode_seeds(seed, k, trials * episodes, horizon, act)
            for m in range(trials):
                h = policy.initial_state(1)
                prev_a, prev_r, prev_d = torch.zeros(1, act), torch.zeros(1), torch.zeros(1)
                trial = []
                for j in range(episodes):
                    env.unwrapped.set_task(task)
                    obs, _ = env.reset(seed=int(seeds[m * episodes + j]))
                    steps = []
                    for s in range(horizon):
                        x = policy_inputs(torch.tensor(obs, dtype=torch.float32)[None], prev_a,
                                          prev_r, prev_d)
                        h = policy.step(x, h)
                        mean, log_std, value = policy.heads(h)
                        a = mean + log_std.exp() * torch.from_numpy(noise[m * episodes + j, s])
                        env_a = a[0].double().numpy()
                        if scale is not None:
                            env_a = env_a * scale[0] + scale[1]
                        obs, r, term, trunc, _ = env.step(np.clip(env_a, low, high))
                        steps.append({"x": x[0], "h": h[0], "a": a[0], "r": float(r),
                                      "v": value[0]})
                        prev_a, prev_r = a, torch.tensor([r], dtype=torch.float32)
                        prev_d = torch.tensor([float(term or trunc)])
                        if term or trunc:
                            break
                    trial.append(steps)
                    prev_d = torch.ones(1)
                out[k, m] = trial
    env.close()
    return out


@pytest.mark.parametrize("env, normalize", [(LINE, False), ("navigation_2d", True)])
def test_batched_trials_equal_each_trial_stepped_alone(plugin_envs, env, normalize):
    family, policy, tasks, trials = sample(env, trials=2, normalize=normalize, log_std=-0.5)
    batched = family.make_batched(1)
    low, high = np.asarray(batched.action_low), np.asarray(batched.action_high)
    batched.close()
    scale = ((high - low) / 2.0, (high + low) / 2.0) if normalize else None
    loop = loop_trials(family, policy, tasks, 5, 2, 2, (low, high), scale)
    horizon = trials.horizon
    ended_early = 0
    for (k, m), episodes in loop.items():
        for j, steps in enumerate(episodes):
            assert int(trials.lengths[j, k, m]) == len(steps)
            ended_early += len(steps) < horizon
            taken = slice(j * horizon, j * horizon + len(steps))
            # One row at a time, a matmul may round differently than over all rows (the
            # GRU's last bits): equal to float32 rounding, not bit for bit.
            for name, key in (("inputs", "x"), ("actions", "a"), ("hidden", "h"),
                              ("values", "v"), ("rewards", "r")):
                looped = torch.stack([torch.as_tensor(step[key], dtype=torch.float32)
                                      for step in steps])
                torch.testing.assert_close(getattr(trials, name)[taken, k, m], looped,
                                           rtol=1e-5, atol=1e-6, msg=f"{name} of {k, m, j}")
            # the rest of the slot: masked, zeros, the state held
            rest = slice(taken.stop, (j + 1) * horizon)
            assert not trials.mask[rest, k, m].any() and not trials.rewards[rest, k, m].any()
            assert (trials.hidden[rest, k, m] == trials.hidden[taken.stop - 1, k, m]).all()
    if env == LINE:
        assert ended_early > 0  # the gaps were exercised


def test_inputs_are_the_observation_and_the_previous_steps_action_reward_and_done():
    x = policy_inputs(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]]),
                      torch.tensor([5.0]), torch.tensor([1.0]))
    assert x.tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0, 1.0]]
    with pytest.raises(ValueError, match="prev_reward has leading shape"):
        policy_inputs(torch.zeros(2, 2), torch.zeros(2, 1), torch.zeros(3), torch.zeros(2))


def test_sampled_inputs_carry_the_last_step_across_the_episode_boundary(plugin_envs):
    _, _, _, trials = sample(LINE)
    obs, act = 1, 1
    horizon = trials.horizon
    for k in range(trials.num_tasks):
        for m in range(trials.trials_per_task):
            x = trials.inputs[:, k, m]
            assert x[0, obs:].tolist() == [0.0, 0.0, 0.0]  # nothing before the trial
            for j in range(trials.episodes_per_trial):
                start, length = j * horizon, int(trials.lengths[j, k, m])
                for t in range(start + 1, start + length):  # inside an episode: the step before
                    want = [*trials.actions[t - 1, k, m].tolist(),
                            trials.rewards[t - 1, k, m].item(), 0.0]
                    assert x[t, obs:].tolist() == want
                if j:  # the first step of a later episode: the previous episode's last, done 1
                    last = (j - 1) * horizon + int(trials.lengths[j - 1, k, m]) - 1
                    want = [*trials.actions[last, k, m].tolist(),
                            trials.rewards[last, k, m].item(), 1.0]
                    assert x[start, obs:].tolist() == want
                    assert x[start, obs + act + 1] == 1.0


def test_the_state_persists_across_episodes_and_restarts_with_each_trial(plugin_envs):
    _, policy, _, trials = sample(LINE)
    horizon, rows = trials.horizon, trials.num_tasks * trials.trials_per_task
    x = trials.inputs.reshape(trials.inputs.shape[0], rows, -1)
    hidden = trials.hidden.reshape(x.shape[0], rows, -1)
    with torch.no_grad():
        fresh = policy.step(x[horizon], policy.initial_state(rows))
        carried = policy.step(x[horizon], hidden[horizon - 1])
        first = policy.step(x[0], policy.initial_state(rows))
        # the loss's unroll recomputes the sampler's states exactly
        unrolled = policy.unroll(x, trials.mask.reshape(x.shape[0], rows) != 0)
    assert torch.equal(hidden[horizon], carried)  # episode 1 starts from episode 0's state
    assert not torch.allclose(hidden[horizon], fresh)  # ... not from zero
    assert torch.equal(hidden[0], first)  # every trial (row) starts from zero
    assert torch.equal(unrolled, hidden)


def test_sampled_actions_and_values_are_the_policys_heads_bit_for_bit(plugin_envs):
    """The sampler calls the GRU and the heads' kernels directly (less Python per step): the
    states (above, through ``unroll``), actions and values must stay the policy's own, bit for
    bit, at every step an episode took, rows whose episode had ended included."""
    family, policy, _, trials = sample(LINE, trials=3, episodes=2, log_std=-0.5)
    t_len, tasks, trials_n = trials.rewards.shape
    horizon, episodes, act = trials.horizon, trials.episodes_per_trial, policy.act_size
    rows = tasks * trials_n
    eps = torch.zeros(t_len, tasks, trials_n, act)  # the sampler's noise, as its docstring says
    for k in range(tasks):
        noise = torch.from_numpy(episode_seeds(5, k, trials_n * episodes, horizon, act)[1])
        for m in range(trials_n):
            eps[:, k, m] = noise[m * episodes:(m + 1) * episodes].reshape(t_len, act)
    taken = trials.mask.reshape(t_len, rows) != 0
    assert (taken.any(1) & ~taken.all(1)).any()  # steps with some rows held, others stepped
    with torch.no_grad():
        for t in range(t_len):  # all K·M rows at once, as the sampler steps them
            mean, log_std, value = policy.heads(trials.hidden[t].reshape(rows, -1))
            action = mean + log_std.exp() * eps[t].reshape(rows, act)
            assert torch.equal(value[taken[t]], trials.values[t].reshape(rows)[taken[t]]), t
            assert torch.equal(action[taken[t]],
                               trials.actions[t].reshape(rows, act)[taken[t]]), t


def test_a_second_call_starts_new_trials_from_zero(plugin_envs):
    family = envs.resolve(LINE)
    with TrialSampler(family, num_tasks=2, trials_per_task=2, episodes_per_trial=2,
                      num_threads=1) as sampler:
        policy = policy_for(1, 1)
        tasks = family.sample_tasks(2, seed=0)
        first = sampler.sample(tasks, policy, 3, keep_hidden=True)
        again = sampler.sample(tasks, policy, 3, keep_hidden=True)
    for name in ("inputs", "actions", "rewards", "hidden", "lengths"):
        assert torch.equal(getattr(first, name), getattr(again, name)), name


def test_trial_gae_crosses_inner_episode_ends_and_skips_the_gaps():
    gamma, lam = 0.9, 0.8
    # two episodes of slots of 3 steps; each took 2 (the third step of each slot is masked)
    r = torch.tensor([1.0, 2.0, 9.0, 3.0, 4.0, 9.0])
    v = torch.tensor([0.5, 1.0, 9.0, 1.5, 2.0, 9.0])
    m = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    # by hand, the trial as one sequence 1, 2, 3, 4 with values 0.5, 1, 1.5, 2:
    a3 = 4 - 2.0                                     # 2
    a2 = (3 + gamma * 2.0 - 1.5) + gamma * lam * a3  # 3.3 + 1.44 = 4.74
    a1 = (2 + gamma * 1.5 - 1.0) + gamma * lam * a2  # 2.35 + 3.4128 = 5.7628
    a0 = (1 + gamma * 1.0 - 0.5) + gamma * lam * a1  # 1.4 + 4.149216 = 5.549216
    expected = torch.tensor([a0, a1, 0.0, a2, a3, 0.0])
    torch.testing.assert_close(trial_gae(r, v, m, gamma, lam), expected)
    assert math.isclose(a0, 5.549216, rel_tol=1e-9)
    # per-episode GAE cuts at the first episode's end: a different (wrong for RL²) advantage
    episodic = gae(r[:2], v[:2], m[:2], gamma, lam)
    assert not torch.allclose(episodic, expected[:2])
    # without gaps it is returns.gae of the whole trial; with λ = 1, v = 0 the trial's return
    full = torch.ones(4)
    dense_r, dense_v = r[m != 0], v[m != 0]
    torch.testing.assert_close(trial_gae(dense_r, dense_v, full, gamma, lam),
                               gae(dense_r, dense_v, full, gamma, lam))
    trial_return = sum(gamma ** i * x for i, x in enumerate([1.0, 2.0, 3.0, 4.0]))
    assert math.isclose(trial_gae(r, torch.zeros(6), m, gamma, 1.0)[0].item(), trial_return,
                        rel_tol=1e-6)


def test_trial_gae_is_batched_over_trials_like_one_at_a_time():
    torch.manual_seed(0)
    r, v = torch.randn(8, 2, 3), torch.randn(8, 2, 3)
    m = (torch.rand(8, 2, 3) > 0.3).float()
    batched = trial_gae(r, v, m, 0.99, 0.95)
    for k in range(2):
        for j in range(3):
            torch.testing.assert_close(batched[:, k, j],
                                       trial_gae(r[:, k, j], v[:, k, j], m[:, k, j], 0.99, 0.95))


def test_clipped_surrogate_against_hand_computed_numbers():
    log_ratio = torch.tensor([0.5, -0.5, 0.5, -0.5, 0.0, 3.0])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0, 5.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # the last step is masked
    new = log_ratio.clone().requires_grad_(True)
    objective, clip_fraction = clipped_surrogate(new, torch.zeros(6), adv, mask, 0.2)
    up, down = math.exp(0.5), math.exp(-0.5)  # 1.6487, 0.6065
    # min(ρA, clip(ρ)A): 1.2 (clipped), 0.6065, -1.6487, -0.8 (clipped), 2
    expected = (1.2 + down - up - 0.8 + 2.0) / 5
    assert math.isclose(objective.item(), expected, rel_tol=1e-6)
    assert math.isclose(clip_fraction.item(), 4 / 5, rel_tol=1e-6)
    objective.backward()
    # no gradient where the clipped term is the minimum, ρA's elsewhere (∂ρ/∂log ρ = ρ)
    want = torch.tensor([0.0, down, -up, 0.0, 2.0, 0.0]) / 5
    torch.testing.assert_close(new.grad, want)
    with pytest.raises(ValueError, match="clip_eps must be > 0"):
        clipped_surrogate(new, torch.zeros(6), adv, mask, 0.0)


def test_the_loss_at_the_sampling_policy_has_ratio_one(plugin_envs):
    _, policy, _, trials = sample(LINE)
    batch, scale = ppo_batch(trials, 0.99, 0.95)
    assert scale == ValueScale()  # normalize_values off: the targets stay in returns
    loss, parts = ppo_loss(policy, batch, clip_eps=0.2, value_coef=0.5, entropy_coef=0.01)
    assert parts["clip_fraction"].item() == 0.0
    # the sampler's log-probabilities, recomputed (the GRU states bit for bit, the heads over
    # [T, N] rows rather than [N] to float32 rounding)
    assert abs(parts["approx_kl"].item()) < 1e-8
    # the value part: ½ mean (V - R)², with V the sampler's values and R = A + V: ½ mean A²
    adv = trial_gae(trials.rewards, trials.values, trials.mask, 0.99, 0.95)
    half_square = 0.5 * adv[trials.mask != 0].square().mean()
    torch.testing.assert_close(parts["value"], half_square, rtol=1e-4, atol=1e-6)
    # the entropy of N(μ, σ²) with log σ = 0 in one dimension: ½ log 2πe
    assert math.isclose(parts["entropy"].item(), 0.5 * math.log(2 * math.pi * math.e),
                        rel_tol=1e-6)
    torch.testing.assert_close(loss, parts["policy"] + 0.5 * parts["value"]
                               - 0.01 * parts["entropy"])
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in policy.parameters())


def test_trials_refuse_a_mask_that_disagrees_with_the_lengths(plugin_envs):
    _, _, _, trials = sample(LINE)
    fields = {name: getattr(trials, name) for name in trials.__dataclass_fields__}
    fields["lengths"] = fields["lengths"].clone()
    fields["lengths"][0, 0, 0] -= 1
    with pytest.raises(ValueError, match="mask must be 1.0 for the first lengths"):
        Trials(**fields)


def test_cli_trains_and_a_resume_repeats_the_uninterrupted_run_bit_for_bit(tmp_path):
    common = ["--env", "navigation_2d", *TINY[2:], "--trials-per-task", "1", "--num-minibatches", "1",
              "--checkpoint-every", "1"]
    assert main(["rl2", "--num-batches", "3", *common, "--output-dir",
                 str(tmp_path / "full")]) == 0
    assert main(["rl2", "--num-batches", "2", *common, "--output-dir", str(tmp_path / "cut")]) == 0
    cut = only_run_dir(tmp_path / "cut")
    assert cut.name.startswith("rl2__navigation_2d__0__")
    assert (cut / "checkpoint.pt").exists() and list(cut.glob("events.out.tfevents.*"))
    saved = yaml.safe_load((cut / "config.yaml").read_text())
    assert saved["algo"] == "rl2" and saved["normalize_actions"] is True  # the shipped YAML
    assert main(["rl2", "--resume", str(cut), "--num-batches", "3", "--no-progress"]) == 0
    full = torch.load(only_run_dir(tmp_path / "full") / "checkpoint.pt", weights_only=True)
    resumed = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert resumed["iteration"] == full["iteration"] == 3
    for name, value in full["policy"].items():
        assert torch.equal(resumed["policy"][name], value), name
    assert full["value_scale"]["std"] != 1.0  # normalize_values (the shipped YAML) set it
    for name, value in full["value_scale"].items():
        assert torch.equal(resumed["value_scale"][name], value), name
    assert full["optimizer"]["state"]  # Adam's moments, restored on resume
    for index, moments in full["optimizer"]["state"].items():
        for key, value in moments.items():
            assert torch.equal(torch.as_tensor(resumed["optimizer"]["state"][index][key]),
                               torch.as_tensor(value)), (index, key)


def test_evaluate_writes_one_point_per_episode_on_maml_trpos_held_out_tasks(
        tmp_path, monkeypatch, capsys):
    from metarl.evaluation import EVALUATION_SEED_OFFSET
    from metarl.rl import rl2_evaluate

    assert main(["rl2", *TINY, "--num-batches", "0", "--trials-per-task", "1",
                 "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "3"]) == 0
    curve = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    assert len(curve["methods"]["rl2"]["mean"]) == 2  # one point per episode of the trial
    assert curve["num_tasks"] == 3 and curve["episodes_per_trial"] == 2
    assert (run_dir / "evaluation" / "curve.png").exists()
    capsys.readouterr()
    for steps in ("3", "0"):  # 0 too, though it equals False
        assert main(["evaluate", "--run", str(run_dir), "--steps", steps]) == 2
        assert "--steps: not for RL2 runs" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run_dir), "--baseline-iterations", "0"]) == 2
    assert "--baseline-iterations: not for RL2 runs" in capsys.readouterr().err
    seen = {}

    def record(config, state, tasks, seed):
        seen["tasks"] = tasks
        return np.zeros((len(tasks), config.episodes_per_trial))

    monkeypatch.setattr(rl2_evaluate, "trial_returns", record)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "4"]) == 0
    want = envs.resolve("navigation_2d").sample_tasks(4, seed=0 + EVALUATION_SEED_OFFSET)
    assert seen["tasks"] == want


@pytest.mark.slow
def test_a_few_iterations_raise_the_trial_return_on_fixed_navigation_tasks():
    import dataclasses

    from metarl.experiment import make_config
    from metarl.rl.rl2 import RL2Trainer

    config = dataclasses.replace(make_config("rl2", env="navigation_2d"), meta_batch_size=10,
                                 trials_per_task=4, hidden_size=32, ppo_epochs=4,
                                 num_minibatches=2, lr=3e-3, torch_threads=1)
    tasks = envs.resolve("navigation_2d").sample_tasks(10, seed=123)
    with RL2Trainer(config) as trainer:
        before = trainer.sample(tasks, seed=7).episode_returns().sum(0).mean().item()
        for _ in range(8):
            trainer.step()
        after = trainer.sample(tasks, seed=7).episode_returns().sum(0).mean().item()
    # measured: -230 before, -145 after (a random GRU policy wanders off)
    assert after > before + 40, (before, after)
