"""HalfCheetah task families: ``cheetah_vel`` and ``cheetah_dir`` (docs/tasks.md).

Model: Gymnasium's ``half_cheetah.xml`` (v5), timestep 0.01, frame_skip 5, dt = 0.05 s by
default; the env options ``frame_skip``/``timestep`` or ``clock="paper"`` (frame_skip 1,
timestep 0.01: dt = 0.01 s, rllab's) change the clock (:mod:`metarl.envs.mujoco_batch`).
Its deprecated ``settotalmass="14"`` compiler attribute is applied after compiling
(``mj_setTotalmass`` + ``mj_setConst``), which gives a bit-identical model without the warning.

Per step, with ``a [N, 6]`` the action and ``v_x = (qpos_x' - qpos_x) / dt`` the root's
forward velocity over the control step:

- observation ``[N, 20]`` = ``qpos[1:] (8), qvel (9), torso subtree COM (3)``, at the new state;
- ``cheetah_vel``: ``r = -|v_x - v*| - 0.05 ||a||^2``, ``v* ~ U[0, 2]``;
- ``cheetah_dir``: ``r = d v_x - 0.05 ||a||^2``, ``d = +-1`` with p = 0.5;
- never terminates; horizon 200.

The control cost is charged on the action as given (MuJoCo clamps the control to
[-1, 1]), as in the MAML code.
"""

from __future__ import annotations

import functools

import mujoco
import numpy as np

from metarl.envs.kinematics import TreeKinematics
from metarl.envs.mujoco_batch import BatchedMujocoEnv, MujocoTaskEnv, gymnasium_asset
from metarl.envs.tasks import Choice, TaskSpace, Uniform

CTRL_COST_WEIGHT = 0.05


@functools.cache
def half_cheetah_model() -> mujoco.MjModel:
    """Gymnasium's HalfCheetah v5 model (compiled once per process; read-only)."""
    xml = gymnasium_asset("half_cheetah.xml").read_text()
    model = mujoco.MjSpec.from_string(xml.replace(' settotalmass="14"', "")).compile()
    mujoco.mj_setTotalmass(model, 14.0)
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model


def cheetah_observation(qpos: np.ndarray, qvel: np.ndarray, com: np.ndarray) -> np.ndarray:
    """``[N, 20]`` = qpos[:, 1:] ``[N, 8]``, qvel ``[N, 9]``, torso COM ``[N, 3]``."""
    return np.concatenate([qpos[:, 1:], qvel, com], axis=1)


class _BatchedHalfCheetah(BatchedMujocoEnv):
    horizon = 200
    paper_clock = (1, 0.01)  # rllab's half_cheetah.xml: timestep 0.01, no frame skip
    observation_size = 20

    def __init__(self, num_envs: int, **kwargs):
        super().__init__(num_envs, **kwargs)
        self.kinematics = TreeKinematics(self.physics.model, "torso")

    @classmethod
    def build_model(cls) -> mujoco.MjModel:
        return half_cheetah_model()

    def _observe_reset(self) -> np.ndarray:
        qpos, qvel = self.physics.qpos, self.physics.qvel
        com, _ = self.kinematics(qpos)
        return cheetah_observation(qpos, qvel, com)

    def _step_active(self, actions: np.ndarray, index):
        x_before = self.physics.qpos[index, 0].copy()
        _, diverged = self.physics.step(actions, index)
        qpos, qvel = self.physics.qpos[index], self.physics.qvel[index]
        com, _ = self.kinematics(qpos)
        x_velocity = (qpos[:, 0] - x_before) / self.dt
        ctrl_cost = CTRL_COST_WEIGHT * np.sum(actions**2, axis=1)
        reward = self._forward_reward(x_velocity, index) - ctrl_cost
        terminated = np.zeros(len(reward), dtype=bool)
        info = {"x_velocity": x_velocity, "ctrl_cost": ctrl_cost, "non_finite": diverged}
        return cheetah_observation(qpos, qvel, com), reward, terminated, info

    def _forward_reward(self, x_velocity: np.ndarray, index) -> np.ndarray:
        raise NotImplementedError


class BatchedHalfCheetahVel(_BatchedHalfCheetah):
    """N HalfCheetahs, each rewarded for running at its target velocity ``v*``."""

    family = "cheetah_vel"
    task_space = TaskSpace("cheetah_vel", {"velocity": Uniform(0.0, 2.0)})

    def _apply_tasks(self, tasks: list[dict]) -> None:
        self._velocity = np.array([task["velocity"] for task in tasks])

    def _forward_reward(self, x_velocity: np.ndarray, index) -> np.ndarray:
        return -np.abs(x_velocity - self._velocity[index])


class BatchedHalfCheetahDir(_BatchedHalfCheetah):
    """N HalfCheetahs, each rewarded for running in its direction ``d`` (+1 forward)."""

    family = "cheetah_dir"
    task_space = TaskSpace("cheetah_dir", {"direction": Choice((-1.0, 1.0))})

    def _apply_tasks(self, tasks: list[dict]) -> None:
        self._direction = np.array([task["direction"] for task in tasks])

    def _forward_reward(self, x_velocity: np.ndarray, index) -> np.ndarray:
        return self._direction[index] * x_velocity


class HalfCheetahVelEnv(MujocoTaskEnv):
    """Gymnasium env ``metarl/HalfCheetahVel-v0``: task ``{"velocity": v*}``, v* in [0, 2]."""

    batched_cls = BatchedHalfCheetahVel
    horizon = BatchedHalfCheetahVel.horizon


class HalfCheetahDirEnv(MujocoTaskEnv):
    """Gymnasium env ``metarl/HalfCheetahDir-v0``: task ``{"direction": d}``, d in {-1, 1}."""

    batched_cls = BatchedHalfCheetahDir
    horizon = BatchedHalfCheetahDir.horizon
