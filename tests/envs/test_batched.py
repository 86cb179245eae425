"""The batched form reproduces the single env: same tasks, seeds and actions -> same transitions."""

import threading

import numpy as np
import pytest

from metarl import envs

SEEDS = [11, 12, 13]


def run_single(name, tasks, seeds, policy, steps, setup=None, options=None):
    """Per instance: list of (obs, reward, terminated, truncated) from gym.make'd single envs
    (built with the env ``options``)."""
    family = envs.resolve(name).with_options(**(options or {}))
    out = []
    for i, (task, seed) in enumerate(zip(tasks, seeds)):
        env = family.make(task=task)
        obs, _ = env.reset(seed=seed)
        if setup is not None:
            setup(env.unwrapped, i)
        rows = [(obs, 0.0, False, False)]
        for t in range(steps):
            obs, reward, terminated, truncated, _ = env.step(policy(t, i, obs))
            rows.append((obs, reward, terminated, truncated))
            if terminated or truncated:
                break
        out.append(rows)
    return out


def run_batched(name, tasks, seeds, policy, steps, setup=None, options=None):
    family = envs.resolve(name).with_options(**(options or {}))
    batch = family.make_batched(len(tasks), num_threads=2)
    batch.set_tasks(tasks)
    obs = batch.reset(seeds)
    if setup is not None:
        setup(batch, None)
    out = [[(obs[i], 0.0, False, False)] for i in range(len(tasks))]
    for t in range(steps):
        actions = np.stack([policy(t, i, out[i][-1][0]) for i in range(len(tasks))])
        obs, reward, terminated, truncated, info = batch.step(actions)
        assert not info["non_finite"].any()
        for i in np.flatnonzero(info["active"]):
            out[i].append((obs[i], reward[i], terminated[i], truncated[i]))
    batch.close()
    return out


def assert_same(single, batched, atol):
    assert [len(rows) for rows in single] == [len(rows) for rows in batched]
    for rows_s, rows_b in zip(single, batched):
        for (o_s, r_s, te_s, tr_s), (o_b, r_b, te_b, tr_b) in zip(rows_s, rows_b):
            np.testing.assert_allclose(o_b, o_s, rtol=0, atol=atol)
            assert r_b == pytest.approx(r_s, abs=atol)
            assert (te_b, tr_b) == (te_s, tr_s)


def random_policy(name, steps):
    space = envs.make(name).action_space
    low, high = space.low, space.high
    actions = np.random.default_rng(5).uniform(low, high, size=(steps, len(SEEDS), low.size))
    return lambda t, i, obs: actions[t, i]


def test_navigation_batched_matches_single_through_termination():
    tasks = [{"goal": [0.3, -0.2]}, {"goal": [-0.45, 0.4]}, {"goal": [0.05, 0.05]}]
    goals = np.array([task["goal"] for task in tasks])
    noise = np.random.default_rng(0).normal(0, 0.01, size=(100, 3, 2))

    def policy(t, i, obs):  # approach the goal geometrically, with noise
        return 0.4 * (goals[i] - obs) + noise[t, i] * (t < 10)

    single = run_single("navigation_2d", tasks, SEEDS, policy, 100)
    batched = run_batched("navigation_2d", tasks, SEEDS, policy, 100)
    assert_same(single, batched, atol=0)
    assert all(rows[-1][2] for rows in batched)  # every agent reached its goal
    assert len({len(rows) for rows in batched}) > 1  # at different times


@pytest.mark.parametrize("name", ["cheetah_vel", "cheetah_dir"])
def test_cheetah_batched_matches_single_full_episode(name):
    tasks = envs.sample_tasks(name, 3, seed=1)
    policy = random_policy(name, 200)
    single = run_single(name, tasks, SEEDS, policy, 200)
    batched = run_batched(name, tasks, SEEDS, policy, 200)
    assert_same(single, batched, atol=1e-9)
    assert all(len(rows) == 201 and rows[-1][3] for rows in batched)  # truncated at 200


#: The MAML paper's clock per family, spelt both ways (the preset, and its two options).
PAPER_CLOCKS = [("cheetah_vel", {"clock": "paper"}),
                ("cheetah_dir", {"frame_skip": 1, "timestep": 0.01}),
                ("ant_vel", {"clock": "paper"}),
                ("ant_dir", {"frame_skip": 1, "timestep": 0.02}),
                ("ant_goal", {"clock": "paper"}),
                ("ant_dir", {"clock": "paper", "contacts": "rllab"})]


@pytest.mark.parametrize(("name", "options"), PAPER_CLOCKS)
def test_batched_matches_single_over_full_episodes_on_the_papers_clock(name, options):
    tasks = envs.sample_tasks(name, 3, seed=1)
    policy = random_policy(name, 200)
    single = run_single(name, tasks, SEEDS, policy, 200, options=options)
    batched = run_batched(name, tasks, SEEDS, policy, 200, options=options)
    assert_same(single, batched, atol=1e-9)
    assert all(rows[-1][2] or (len(rows) == 201 and rows[-1][3]) for rows in batched)
    default = run_batched(name, tasks, SEEDS, policy, 200)
    assert not np.allclose(default[0][1][0], batched[0][1][0])  # another clock: other states


def jump(env, index):
    """Launch instance 1 upwards so its torso leaves [0.2, 1.0]: an early termination."""
    qpos, qvel = env.qpos, env.qvel
    if index is None:
        qvel[1, 2] = 4.0
        env.set_state(qpos, qvel)
    elif index == 1:
        qvel[2] = 4.0
        env.set_state(qpos, qvel)


@pytest.mark.parametrize("name", ["ant_vel", "ant_dir", "ant_goal"])
def test_ant_batched_matches_single_with_termination(name):
    tasks = envs.sample_tasks(name, 3, seed=2)
    steps = 120 if name == "ant_vel" else 40
    policy = random_policy(name, steps)
    single = run_single(name, tasks, SEEDS, policy, steps, setup=jump)
    batched = run_batched(name, tasks, SEEDS, policy, steps, setup=jump)
    assert_same(single, batched, atol=1e-9)
    assert batched[1][-1][2] and len(batched[1]) < 10  # the launched ant terminated early
    assert len(batched[0]) > 30  # the others ran on (they may end later, e.g. by jumping)


def test_reset_without_seeds_continues_each_generator():
    tasks = envs.sample_tasks("cheetah_vel", 2, seed=0)
    batch = envs.make_batched("cheetah_vel", 2, num_threads=0)
    batch.set_tasks(tasks)
    first = batch.reset([7, 8])
    second = batch.reset()
    env = envs.make("cheetah_vel", task=tasks[0])
    np.testing.assert_allclose(env.reset(seed=7)[0], first[0], atol=1e-12)
    np.testing.assert_allclose(env.reset()[0], second[0], atol=1e-12)


def test_two_batches_stepped_in_threads_match_sequential():
    """The sampler steps one half of its batch in a thread while it works on the other."""
    tasks = envs.sample_tasks("cheetah_vel", 8, seed=0)
    actions = np.random.default_rng(1).uniform(-1, 1, size=(20, 8, 6))

    def rollout(batch, half, results):
        batch.set_tasks(tasks[half])
        obs = [batch.reset(range(len(tasks))[half])]
        for action in actions[:, half]:
            obs.append(batch.step(action)[0])
        results[half.start] = np.stack(obs)

    sequential, threaded = {}, {}
    halves = [slice(0, 4), slice(4, 8)]
    for half in halves:
        rollout(envs.make_batched("cheetah_vel", 4, num_threads=2), half, sequential)
    batches = [envs.make_batched("cheetah_vel", 4, num_threads=2) for _ in halves]
    threads = [threading.Thread(target=rollout, args=(b, h, threaded))
               for b, h in zip(batches, halves)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for half in halves:
        np.testing.assert_array_equal(threaded[half.start], sequential[half.start])


def test_batched_attributes():
    batch = envs.make_batched("ant_dir", 5, num_threads=0)
    assert (batch.num_envs, batch.observation_size, batch.action_size, batch.horizon) == (
        5, 119, 8, 200)
    np.testing.assert_array_equal(batch.action_low, -np.ones(8))
    np.testing.assert_array_equal(batch.action_high, np.ones(8))
    assert isinstance(batch, envs.BatchedTaskEnv)
    with pytest.raises(ValueError, match=r"shape \(5, 8\)"):
        batch.set_tasks([{"direction": 1}] * 5)
        batch.reset(range(5))
        batch.step(np.zeros((5, 6)))
