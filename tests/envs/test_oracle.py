"""Oracle families (``NAME+oracle``): the family's episodes, observations followed by the task."""

from pathlib import Path

import numpy as np
import pytest

from metarl import envs
from metarl.envs.base import NotATaskFamilyError
from metarl.envs.oracle import OracleFamily, task_features


def test_task_features_flatten_the_values_in_key_order():
    np.testing.assert_array_equal(task_features({"velocity": 1.5}), [1.5])
    np.testing.assert_array_equal(task_features({"goal": [0.2, -0.4], "scale": 2.0}),
                                  [0.2, -0.4, 2.0])
    with pytest.raises(NotATaskFamilyError, match="non-empty task dict"):
        task_features({})
    with pytest.raises(NotATaskFamilyError, match=r"^compass\+oracle: an oracle observes numeric"):
        task_features({"goal": "north"}, "compass")


@pytest.mark.parametrize("name, features", [("navigation_2d", 2), ("cheetah_vel", 1),
                                            ("ant_goal", 2)])
def test_oracle_name_resolves_to_the_family_with_task_features(name, features):
    family = envs.resolve(name + "+oracle")
    assert isinstance(family, OracleFamily) and family.inner is envs.resolve(name)
    assert family.horizon == envs.resolve(name).horizon and family.feature_size == features
    assert envs.sample_tasks(name + "+oracle", 5, seed=3) == envs.sample_tasks(name, 5, seed=3)


def test_batched_oracle_steps_exactly_like_its_family():
    tasks = envs.sample_tasks("cheetah_vel", 3, seed=0)
    oracle = envs.make_batched("cheetah_vel+oracle", 3, num_threads=1)
    plain = envs.make_batched("cheetah_vel", 3, num_threads=1)
    assert oracle.observation_size == plain.observation_size + 1
    assert oracle.action_size == plain.action_size and oracle.horizon == plain.horizon
    velocities = np.array([[t["velocity"]] for t in tasks])
    for env in (oracle, plain):
        env.set_tasks(tasks)
    obs_o, obs_p = oracle.reset([1, 2, 3]), plain.reset([1, 2, 3])
    np.testing.assert_array_equal(obs_o, np.hstack([obs_p, velocities]))
    actions = np.random.default_rng(0).uniform(-1, 1, (3, plain.action_size))
    (obs_o, *rest_o), (obs_p, *rest_p) = oracle.step(actions), plain.step(actions)
    np.testing.assert_array_equal(obs_o, np.hstack([obs_p, velocities]))
    for a, b in zip(rest_o[:3], rest_p[:3]):
        np.testing.assert_array_equal(a, b)
    assert hasattr(oracle, "physics")  # the sampler sees MuJoCo through the wrapper
    assert oracle.parallel_step and plain.parallel_step  # and samples it over processes
    oracle.close()
    plain.close()


def test_single_oracle_env_observes_its_current_task():
    env = envs.make("navigation_2d+oracle")
    assert env.observation_space.shape == (4,)
    obs, _ = env.reset(seed=0, options={"task": {"goal": [0.3, -0.2]}})
    np.testing.assert_allclose(obs[2:], [0.3, -0.2])
    env.unwrapped.set_task({"goal": [-0.1, 0.4]})
    obs, reward, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
    np.testing.assert_allclose(obs[2:], [-0.1, 0.4])
    assert env.unwrapped.sample_tasks(2)[0].keys() == {"goal"}
    with pytest.raises(ValueError, match="goal"):
        env.unwrapped.set_task({"goal": [9.0, 9.0]})  # outside the distribution
    env.close()


def test_an_oracle_of_an_oracle_or_of_an_unknown_family_is_refused():
    with pytest.raises(envs.UnknownEnvError, match="already an oracle"):
        envs.resolve("cheetah_vel+oracle+oracle")
    with pytest.raises(envs.UnknownEnvError, match="known task families"):
        envs.resolve("cheetah_speed+oracle")


def test_a_plug_in_family_gets_an_oracle_too(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    family = envs.resolve("plugin_family:LineTargetEnv+oracle")
    batch = family.make_batched(2)
    tasks = family.sample_tasks(2, seed=0)
    batch.set_tasks(tasks)
    obs = batch.reset([0, 1])
    assert obs.shape == (2, batch.observation_size)
    np.testing.assert_array_equal(obs[:, -family.feature_size:],
                                  np.stack([task_features(t) for t in tasks]))
    batch.close()


@pytest.mark.parametrize("name, heavy", [("navigation_2d", False), ("cheetah_vel", True),
                                         ("plugin_family:LineTargetEnv", True),
                                         ("plugin_family:LineTargetFromBatch", False)])
def test_an_oracle_declares_the_parallel_step_of_its_family(monkeypatch, name, heavy):
    """MuJoCo physics and the loop fallback's Python steps are heavy; array maths is not."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    for family in (envs.resolve(name), envs.resolve(name + "+oracle")):
        batch = family.make_batched(1, num_threads=1)
        assert batch.parallel_step is heavy, family.name
        batch.close()
