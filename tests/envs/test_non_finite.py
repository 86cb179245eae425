"""A diverging instance is flagged and terminated without touching the others."""

import numpy as np
import pytest

from metarl import envs


@pytest.fixture(autouse=True)
def _mujoco_log_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the cwd on warnings


def start(name, num_envs=4):
    batch = envs.make_batched(name, num_envs, num_threads=2)
    batch.set_tasks(envs.sample_tasks(name, num_envs, seed=0))
    batch.reset(seeds=range(num_envs))
    return batch


@pytest.mark.parametrize(("name", "bad_value"), [
    ("cheetah_vel", 1e12), ("cheetah_dir", np.nan), ("ant_vel", np.inf), ("ant_goal", 1e12)])
def test_diverged_instance_is_flagged_and_isolated(name, bad_value):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(6, 4, 8 if "ant" in name else 6))
    reference, broken = start(name), start(name)
    for t, action in enumerate(actions):
        if t == 2:
            qvel = broken.qvel
            qvel[2, 0] = bad_value
            broken.set_state(broken.qpos, qvel)
        ref = reference.step(action)
        obs, reward, terminated, truncated, info = broken.step(action)
        others = [0, 1, 3]
        np.testing.assert_allclose(obs[others], ref[0][others], rtol=0, atol=1e-12)
        np.testing.assert_allclose(reward[others], ref[1][others], rtol=0, atol=1e-12)
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
        if t < 2:
            assert not info["non_finite"].any()
        if t == 2:
            assert info["non_finite"].tolist() == [False, False, True, False]
            assert terminated[2] and not truncated[2]
            assert (obs[2] == 0).all() and reward[2] == 0
        if t > 2:  # masked until the next reset
            assert info["active"].tolist() == [True, True, False, True]
            assert not info["non_finite"].any() and reward[2] == 0
    obs = broken.reset(seeds=range(4))
    np.testing.assert_array_equal(obs, reference.reset(seeds=range(4)))


def test_nan_action_is_flagged():
    batch = start("ant_dir", 3)
    actions = np.zeros((3, 8))
    actions[1, 3] = np.nan
    obs, reward, terminated, _, info = batch.step(actions)
    assert info["non_finite"].tolist() == [False, True, False]
    assert terminated[1] and np.isfinite(obs).all() and np.isfinite(reward).all()


def test_single_env_reports_non_finite():
    env = envs.make("cheetah_vel")
    env.reset(seed=0)
    env.unwrapped.set_state(env.unwrapped.qpos, np.full(9, np.nan))
    obs, reward, terminated, truncated, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["non_finite"] and terminated and not truncated
    assert reward == 0.0 and np.all(obs == 0)


def test_navigation_non_finite_action():
    batch = start("navigation_2d", 2)
    obs, reward, terminated, _, info = batch.step(np.array([[np.nan, 0.0], [0.05, 0.05]]))
    assert info["non_finite"].tolist() == [True, False] and terminated.tolist() == [True, False]
    np.testing.assert_array_equal(obs, [[0.0, 0.0], [0.05, 0.05]])
