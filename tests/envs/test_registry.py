"""Names, Gymnasium registration, plug-in families and the loop fallback."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl import envs
from metarl.envs.fallback import LoopBatchedEnv

BUILTINS = {
    "navigation_2d": ("metarl/Navigation2D-v0", 100, 2),
    "cheetah_vel": ("metarl/HalfCheetahVel-v0", 200, 20),
    "cheetah_dir": ("metarl/HalfCheetahDir-v0", 200, 20),
    "ant_vel": ("metarl/AntVel-v0", 200, 119),
    "ant_dir": ("metarl/AntDir-v0", 200, 119),
    "ant_goal": ("metarl/AntGoal-v0", 200, 119),
}


@pytest.fixture
def plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))


def test_builtins_registered_with_ids_and_horizons():
    assert set(BUILTINS) <= set(envs.known_names())
    for name, (env_id, horizon, obs_size) in BUILTINS.items():
        family = envs.resolve(name)
        assert family.env_id == env_id and family.horizon == horizon
        assert envs.resolve(env_id) is family
        env = gym.make(env_id)
        assert env.spec.max_episode_steps == horizon
        assert env.unwrapped.horizon == horizon
        assert env.observation_space.shape == (obs_size,)
        assert env.observation_space.dtype == np.float64
        env.close()


@pytest.mark.filterwarnings("ignore:.*infinity")  # unbounded Box: as Gymnasium's MuJoCo envs
@pytest.mark.parametrize("name", list(BUILTINS))
def test_check_env_passes(name):
    env = gym.make(BUILTINS[name][0]).unwrapped
    check_env(env, skip_render_check=True)
    env.close()


def test_task_at_construction_and_in_reset_options():
    env = envs.make("cheetah_dir", task={"direction": -1})
    assert env.unwrapped.task == {"direction": -1.0}
    _, info = env.reset(seed=0, options={"task": {"direction": 1}})
    assert info["task"] == {"direction": 1.0}


def test_unknown_name_lists_known_names():
    with pytest.raises(envs.UnknownEnvError) as error:
        envs.make_batched("cheetah_velocity", 2)
    assert isinstance(error.value, ValueError)
    for name in BUILTINS:
        assert name in str(error.value)
    with pytest.raises(envs.UnknownEnvError, match="cannot import module"):
        envs.resolve("no_such_package.module:Env")
    with pytest.raises(envs.UnknownEnvError, match="has no class"):
        envs.resolve("metarl.envs.ant:NoSuchEnv")


def test_gym_env_without_task_methods_is_rejected():
    with pytest.raises(envs.NotATaskFamilyError, match="sample_tasks"):
        envs.resolve("CartPole-v1")


def test_builtin_by_module_class_uses_its_batched_form():
    batch = envs.make_batched("metarl.envs.half_cheetah:HalfCheetahVelEnv", 2, num_threads=0)
    assert type(batch).__name__ == "BatchedHalfCheetahVel" and batch.horizon == 200


def _run_line(batch_or_envs, tasks, seeds, steps=12):
    """Same controller on a batched env and on a list of single envs."""
    actions = np.full((steps, len(tasks), 1), 0.07)
    if isinstance(batch_or_envs, list):
        out = []
        for env, task, seed in zip(batch_or_envs, tasks, seeds):
            env.unwrapped.set_task(task)
            obs, _ = env.reset(seed=seed)
            rows = [obs]
            for action in actions[:, 0]:
                obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
                rows.append(np.r_[obs, reward, terminated])
                if terminated or truncated:
                    break
            out.append(rows)
        return out
    batch = batch_or_envs
    batch.set_tasks(tasks)
    first = batch.reset(seeds)
    out = [[first[i]] for i in range(len(tasks))]
    for action in actions:
        obs, reward, terminated, _, info = batch.step(action)
        for i in np.flatnonzero(info["active"]):
            out[i].append(np.r_[obs[i], reward[i], terminated[i]])
    return out


def test_plugin_by_module_class_runs_through_loop_fallback(plugin_path):
    family = envs.resolve("plugin_family:LineTargetEnv")
    assert family.horizon == 30 and family.batched is None
    tasks = family.sample_tasks(3, seed=4)
    assert tasks == family.sample_tasks(3, seed=4)
    tasks[0] = {"target": 0.3}  # reached after a few steps: a termination
    batch = envs.make_batched("plugin_family:LineTargetEnv", 3)
    assert isinstance(batch, LoopBatchedEnv) and batch.action_size == 1
    singles = [family.make() for _ in tasks]
    batched_rows = _run_line(batch, tasks, [1, 2, 3])
    single_rows = _run_line(singles, tasks, [1, 2, 3])
    for b, s in zip(batched_rows, single_rows):
        np.testing.assert_array_equal(np.concatenate(b), np.concatenate(s))
    assert len(batched_rows[0]) < 13  # terminated early, then masked


def test_register_family_short_name_and_gym_id(plugin_path):
    from plugin_family import LineTargetEnv

    family = envs.register_family("line_target", LineTargetEnv, overwrite=True)
    assert "line_target" in envs.known_names()
    assert family.env_id == "metarl/line_target-v0"
    env = gym.make("metarl/line_target-v0")
    assert env.spec.max_episode_steps == 30
    batch = envs.make_batched("line_target", 4, horizon=5)
    batch.set_tasks([{"target": 0.9}] * 4)
    batch.reset(seeds=range(4))
    for _ in range(5):
        *_, truncated, info = batch.step(np.zeros((4, 1)))
    assert truncated.all() and not info["non_finite"].any()
    with pytest.raises(ValueError, match="already registered"):
        envs.register_family("line_target", LineTargetEnv)
    with pytest.raises(ValueError, match="target"):
        batch.set_tasks([{"target": 3.0}] * 4)


def test_register_family_rejects_non_task_env():
    with pytest.raises(envs.NotATaskFamilyError, match="set_task"):
        envs.register_family("cartpole", gym.envs.classic_control.CartPoleEnv, horizon=10)


def test_plugin_registered_only_with_gymnasium(plugin_path):
    if "test/LineTarget-v0" not in gym.registry:
        gym.register(id="test/LineTarget-v0", entry_point="plugin_family:LineTargetEnv",
                     max_episode_steps=7)
    batch = envs.make_batched("test/LineTarget-v0", 2)
    assert isinstance(batch, LoopBatchedEnv) and batch.horizon == 7
    batch.set_tasks([{"target": 1.0}, {"target": -1.0}])
    batch.reset(seeds=[0, 1])
    for _ in range(7):
        _, reward, terminated, truncated, _ = batch.step(np.zeros((2, 1)))
    assert truncated.all() and not terminated.any() and (reward < 0).all()


def test_plugin_with_batched_form_matches_loop_fallback(plugin_path):
    from plugin_family import BatchedLineTarget, LineTargetFromBatch

    envs.register_family("line_target_batched", LineTargetFromBatch, overwrite=True)
    fast = envs.make_batched("line_target_batched", 3)
    assert isinstance(fast, BatchedLineTarget)
    slow = LoopBatchedEnv(lambda: envs.make("line_target_batched"), 3)
    tasks = [{"target": 0.3}, {"target": -0.5}, {"target": 0.9}]
    for rows_fast, rows_slow in zip(_run_line(fast, tasks, [1, 2, 3]),
                                    _run_line(slow, tasks, [1, 2, 3])):
        np.testing.assert_allclose(np.concatenate(rows_fast), np.concatenate(rows_slow),
                                   rtol=0, atol=1e-7)  # float32 actions in the single env


def test_loop_fallback_names_what_a_plugin_lacks(plugin_path):
    from plugin_family import LineTargetEnv

    class NoHorizon(LineTargetEnv):
        horizon = None

    class DiscreteActions(LineTargetEnv):
        def __init__(self, task=None):
            super().__init__(task)
            self.action_space = gym.spaces.Discrete(3)

    with pytest.raises(envs.NotATaskFamilyError, match="NoHorizon has no horizon"):
        LoopBatchedEnv(NoHorizon, 2)
    with pytest.raises(envs.NotATaskFamilyError, match="needs Box observation and action"):
        LoopBatchedEnv(DiscreteActions, 2)
