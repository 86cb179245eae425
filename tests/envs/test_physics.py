"""Physics, observations and rewards against MuJoCo, Gymnasium v5 and hand computation."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from metarl import envs
from metarl.envs.ant import ant_model, contact_wrenches
from metarl.envs.half_cheetah import half_cheetah_model
from metarl.envs.kinematics import TreeKinematics


@pytest.mark.parametrize("build", [half_cheetah_model, ant_model])
def test_numpy_kinematics_matches_mujoco(build):
    model = build()
    qpos = model.qpos0 + np.random.default_rng(0).uniform(-1.5, 1.5, size=(64, model.nq))
    kinematics = TreeKinematics(model, "torso")
    com, xmat = kinematics(qpos)  # numpy path (batch > 1)
    data = mujoco.MjData(model)
    for i in range(len(qpos)):
        data.qpos[:] = qpos[i]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        np.testing.assert_allclose(com[i], data.subtree_com[1], atol=1e-12)
        np.testing.assert_allclose(xmat[i], data.xmat[1], atol=1e-12)


def test_contact_sensors_reproduce_cfrc_ext():
    model = ant_model()
    data = mujoco.MjData(model)
    rng = np.random.default_rng(1)
    compared = 0
    for t in range(150):
        if t % 10 == 0:
            data.ctrl[:] = rng.uniform(-1, 1, model.nu)
        mujoco.mj_step(model, data)
        mujoco.mj_forward(model, data)  # sensors and contact forces at the same state
        mujoco.mj_rnePostConstraint(model, data)
        wrench = contact_wrenches(data.sensordata[None], model.nbody - 1)[0]
        np.testing.assert_allclose(wrench, data.cfrc_ext[1:], atol=1e-10)
        compared += data.ncon > 0
    assert compared > 30  # many of these states had contacts


@pytest.mark.parametrize(("name", "native"), [("cheetah_vel", "HalfCheetah-v5"),
                                              ("ant_dir", "Ant-v5")])
def test_reset_and_dynamics_match_gymnasium_v5(name, native, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo logs the deprecation warning of half_cheetah.xml here
    ours, theirs = envs.make(name), gym.make(native)
    ours.reset(seed=3)
    theirs.reset(seed=3)
    data = theirs.unwrapped.data
    np.testing.assert_array_equal(ours.unwrapped.qpos, data.qpos)  # same reset noise
    np.testing.assert_array_equal(ours.unwrapped.qvel, data.qvel)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, ours.action_space.shape[0]))
    for action in actions.astype(np.float32):
        ours.step(action)
        theirs.step(action)
    np.testing.assert_allclose(ours.unwrapped.qpos, data.qpos, atol=1e-9)
    np.testing.assert_allclose(ours.unwrapped.qvel, data.qvel, atol=1e-9)


def test_cheetah_observation_and_reward():
    env = envs.make("cheetah_vel", task={"velocity": 1.5}).unwrapped
    obs, _ = env.reset(seed=0)
    action = np.array([0.5, -1.0, 0.2, 0.0, 1.0, -0.3])
    x_before = env.qpos[0]
    obs, reward, terminated, _, info = env.step(action)
    np.testing.assert_array_equal(obs[:8], env.qpos[1:])
    np.testing.assert_array_equal(obs[8:17], env.qvel)
    x_velocity = (env.qpos[0] - x_before) / 0.05
    assert env.dt == pytest.approx(0.05)
    assert info["x_velocity"] == pytest.approx(x_velocity)
    assert reward == pytest.approx(-abs(x_velocity - 1.5) - 0.05 * np.sum(action**2.0))
    assert not terminated
    backward = envs.make("cheetah_dir", task={"direction": -1}).unwrapped
    backward.reset(seed=0)
    _, reward, *_ = backward.step(action)
    assert reward == pytest.approx(-x_velocity - 0.05 * np.sum(action**2.0))


@pytest.mark.parametrize("name", ["ant_vel", "ant_dir", "ant_goal"])
def test_ant_observation_and_reward(name):
    task = {"ant_vel": {"velocity": 0.7}, "ant_dir": {"direction": -1},
            "ant_goal": {"goal": [1.0, -2.0]}}[name]
    env = envs.make(name, task=task).unwrapped
    obs, _ = env.reset(seed=0)
    assert (obs[29:107] == 0).all()  # in the air at reset: no contact wrench
    actions = np.random.default_rng(0).uniform(-1, 1, size=(40, 8)).astype(np.float32)
    contact_costs = []
    for action in actions:
        com_before = obs[-3:]
        obs, reward, terminated, _, info = env.step(action)
        np.testing.assert_array_equal(obs[:15], env.qpos)
        np.testing.assert_array_equal(obs[15:29], env.qvel)
        cfrc, xmat, com = obs[29:107], obs[107:116], obs[116:119]
        assert np.abs(cfrc).max() <= 1.0
        np.testing.assert_allclose(xmat.reshape(3, 3) @ xmat.reshape(3, 3).T, np.eye(3),
                                   atol=1e-12)
        x_velocity = (com[0] - com_before[0]) / 0.05
        costs = 0.005 * np.sum(action.astype(np.float64) ** 2) + 0.0005 * np.sum(cfrc**2)
        expected = {"ant_vel": -abs(x_velocity - 0.7) + 1.0, "ant_dir": -x_velocity,
                    "ant_goal": -np.sum(np.abs(com[:2] - [1.0, -2.0])) + 4.0}[name]
        assert reward == pytest.approx(expected - costs + 0.05, abs=1e-12)
        assert terminated == (not 0.2 <= env.qpos[2] <= 1.0)
        contact_costs.append(info["contact_cost"])
        if terminated:
            break
    assert max(contact_costs) > 0  # the feet touched the floor


def test_navigation_by_hand():
    env = envs.make("navigation_2d", task={"goal": [0.25, -0.05]})
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    steps = [([0.3, 0.0], [0.1, 0.0]), ([0.1, -0.05], [0.2, -0.05]),
             ([0.045, 0.0], [0.245, -0.05])]
    for action, position in steps:
        obs, reward, terminated, truncated, _ = env.step(np.array(action, dtype=np.float32))
        np.testing.assert_allclose(obs, position, atol=1e-7)
        assert reward == pytest.approx(-np.hypot(*(obs - [0.25, -0.05])))
        assert not truncated
    assert terminated  # |dx| = 0.005 < 0.01 and |dy| = 0
    env.reset(seed=0)
    flags = [env.step(np.zeros(2, dtype=np.float32))[2:4] for _ in range(100)]
    assert flags == [(False, False)] * 99 + [(False, True)]  # truncated at the horizon, 100
