"""Ant task families: ``ant_vel``, ``ant_dir``, ``ant_goal`` (docs/tasks.md).

Model: Gymnasium's ``ant.xml`` (v5; RK4, timestep 0.01), frame_skip 5, dt = 0.05 s by
default (the env options ``frame_skip``/``timestep`` or ``clock="paper"``, frame_skip 1 and
timestep 0.02 as rllab's, change it; ``contacts="rllab"`` gives every geom rllab's softer
``solimp`` (0.8, 0.8, 0.01): :mod:`metarl.envs.mujoco_batch`), plus sensors that give the
contact forces without a Python loop over instances (below).

Per step, with ``a [N, 8]`` the action, ``u = a / half_range`` the action scaled to
[-1, 1] (half_range = 1 for this model), ``c`` the torso subtree centre of mass (the
whole ant's COM) and ``v_x = (c_x' - c_x) / dt``:

- observation ``[N, 119]`` = ``qpos (15), qvel (14), clip(cfrc_ext[1:], -1, 1) (13 x 6),
  torso xmat (9), c (3)`` (rllab's layout; the world body's always-zero row is left out,
  as Gymnasium's Ant-v5 does);
- costs: ``ctrl = 0.005 ||u||^2``, ``contact = 0.0005 ||clip(cfrc_ext, -1, 1)||^2``;
- ``ant_vel``:  ``r = -|v_x - v*| + 1 - ctrl - contact + 0.05``, ``v* ~ U[0, 3]``;
- ``ant_dir``:  ``r = d v_x - ctrl - contact + 0.05``, ``d = +-1`` with p = 0.5;
- ``ant_goal``: ``r = -||c_xy - g||_1 + 4 - ctrl - contact + 0.05``, ``g ~ U[-3, 3]^2``;
- terminates when the torso height ``qpos[2]`` leaves [0.2, 1.0] or the state diverges
  (``info["non_finite"]``); horizon 200.

qpos, qvel, xmat and c are those of the state after the control step (xmat and c by
:mod:`metarl.envs.kinematics`). ``cfrc_ext`` (the external contact wrench on each body, about the
COM, ``[torque, force]``) is not part of MuJoCo's state and no sensor reports it directly.
It is rebuilt exactly from MuJoCo's own sensors, evaluated in C inside ``mujoco.rollout``:
per body b one ``contact`` sensor (``reduce="netforce"``: net force ``F_b``, torque ``T_b``
and their point ``p_b``, world frame) and one ``subtreecom`` sensor ``c`` give::

    cfrc_ext[b] = -[T_b + (p_b - c) x F_b,  F_b]

(equal to ``mj_rnePostConstraint``'s ``cfrc_ext`` to 1e-14, tested). Like every sensor it
is evaluated at the start of the last physics substep, i.e. it is the contact wrench that
acted during that substep; this is also what Gymnasium's Ant-v5 observes after
``mj_step``. rllab instead ran an extra ``mj_forward`` after the step, which here would
cost a sixth physics substep per control step. At reset the ant is in the air, so the
contact part of the first observation is zero.
"""

from __future__ import annotations

import functools

import mujoco
import numpy as np

from metarl.envs.kinematics import TreeKinematics
from metarl.envs.mujoco_batch import BatchedMujocoEnv, MujocoTaskEnv, gymnasium_asset
from metarl.envs.tasks import Choice, TaskSpace, Uniform

CTRL_COST_WEIGHT = 0.005
CONTACT_COST_WEIGHT = 0.0005
SURVIVE_REWARD = 0.05
HEALTHY_Z_RANGE = (0.2, 1.0)
_CONTACT_DATA = sum(1 << int(field) for field in (  # contact sensor data="force torque pos"
    mujoco.mjtConDataField.mjCONDATA_FORCE,
    mujoco.mjtConDataField.mjCONDATA_TORQUE,
    mujoco.mjtConDataField.mjCONDATA_POS))
_REDUCE_NETFORCE = 3  # contact sensor reduce="netforce"
_NUM_SLOTS = 1


@functools.cache
def ant_model() -> mujoco.MjModel:
    """Gymnasium's Ant v5 model with contact sensors per body (compiled once; read-only).

    Sensor data: 13 x [F (3), T (3), p (3)] for bodies 1..13, then the torso subtree COM (3).
    """
    spec = mujoco.MjSpec.from_file(str(gymnasium_asset("ant.xml")))
    for i, body in enumerate(spec.bodies[1:], start=1):
        body.name = body.name or f"body_{i}"  # the feet are unnamed in ant.xml
        spec.add_sensor(type=mujoco.mjtSensor.mjSENS_CONTACT, objtype=mujoco.mjtObj.mjOBJ_BODY,
                        objname=body.name, intprm=[_CONTACT_DATA, _REDUCE_NETFORCE, _NUM_SLOTS])
    spec.add_sensor(type=mujoco.mjtSensor.mjSENS_SUBTREECOM, objtype=mujoco.mjtObj.mjOBJ_BODY,
                    objname="torso")
    return spec.compile()


def contact_wrenches(sensordata: np.ndarray, num_bodies: int) -> np.ndarray:
    """``cfrc_ext[1:]`` as ``[N, num_bodies, 6]`` (torque, force) from the sensor block.

    ``sensordata [N, 9 num_bodies + 3]``: per body net contact force F, torque T at point p
    (world frame), then the subtree COM c. ``cfrc_ext = -[T + (p - c) x F, F]``.
    """
    blocks = sensordata[:, : 9 * num_bodies].reshape(-1, num_bodies, 9)
    force, torque, point = blocks[..., 0:3], blocks[..., 3:6], blocks[..., 6:9]
    com = sensordata[:, None, 9 * num_bodies : 9 * num_bodies + 3]
    r = point - com
    moment = torque + np.stack([  # r x F, written out: np.cross is slow on small arrays
        r[..., 1] * force[..., 2] - r[..., 2] * force[..., 1],
        r[..., 2] * force[..., 0] - r[..., 0] * force[..., 2],
        r[..., 0] * force[..., 1] - r[..., 1] * force[..., 0]], axis=-1)
    return -np.concatenate([moment, force], axis=2)


def ant_observation(qpos, qvel, cfrc_clipped, xmat, com) -> np.ndarray:
    """``[N, 119]`` = qpos (15), qvel (14), clipped cfrc_ext (78), xmat (9), COM (3)."""
    return np.concatenate([qpos, qvel, cfrc_clipped.reshape(len(qpos), -1), xmat, com], axis=1)


class _BatchedAnt(BatchedMujocoEnv):
    horizon = 200
    paper_clock = (1, 0.02)  # rllab's ant.xml: timestep 0.02, no frame skip
    # rllab's ant.xml's default geom: softer contacts than MuJoCo's default (0.9, 0.95, 0.001),
    # which v5's ant.xml keeps
    rllab_solimp = (0.8, 0.8, 0.01)
    observation_size = 119

    def __init__(self, num_envs: int, **kwargs):
        super().__init__(num_envs, **kwargs)
        self.kinematics = TreeKinematics(self.physics.model, "torso")
        self._num_bodies = self.physics.model.nbody - 1
        self._half_range = (self.action_high - self.action_low) / 2.0
        self._com = np.zeros((self.num_envs, 3))

    @classmethod
    def build_model(cls) -> mujoco.MjModel:
        return ant_model()

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        super().set_state(qpos, qvel)
        self._com, _ = self.kinematics(self.physics.qpos)  # v_x is measured from here

    def _observe_reset(self) -> np.ndarray:
        qpos, qvel = self.physics.qpos, self.physics.qvel
        self._com, xmat = self.kinematics(qpos)
        no_contact = np.zeros((self.num_envs, self._num_bodies, 6))
        return ant_observation(qpos, qvel, no_contact, xmat, self._com)

    def _step_active(self, actions: np.ndarray, index):
        x_before = self._com[index, 0].copy()
        sensordata, diverged = self.physics.step(actions, index)
        qpos, qvel = self.physics.qpos[index], self.physics.qvel[index]
        com, xmat = self.kinematics(qpos)
        self._com[index] = com
        cfrc = np.clip(contact_wrenches(sensordata, self._num_bodies), -1.0, 1.0)
        x_velocity = (com[:, 0] - x_before) / self.dt
        ctrl_cost = CTRL_COST_WEIGHT * np.sum((actions / self._half_range) ** 2, axis=1)
        contact_cost = CONTACT_COST_WEIGHT * np.sum(cfrc**2, axis=(1, 2))
        reward = (self._task_reward(x_velocity, com, index)
                  - ctrl_cost - contact_cost + SURVIVE_REWARD)
        z = qpos[:, 2]
        terminated = (z < HEALTHY_Z_RANGE[0]) | (z > HEALTHY_Z_RANGE[1])
        info = {"x_velocity": x_velocity, "ctrl_cost": ctrl_cost, "contact_cost": contact_cost,
                "non_finite": diverged}
        return ant_observation(qpos, qvel, cfrc, xmat, com), reward, terminated, info

    def _task_reward(self, x_velocity: np.ndarray, com: np.ndarray, index) -> np.ndarray:
        raise NotImplementedError


class BatchedAntVel(_BatchedAnt):
    """N ants, each rewarded for moving forward at its target velocity ``v*``."""

    family = "ant_vel"
    task_space = TaskSpace("ant_vel", {"velocity": Uniform(0.0, 3.0)})

    def _apply_tasks(self, tasks: list[dict]) -> None:
        self._velocity = np.array([task["velocity"] for task in tasks])

    def _task_reward(self, x_velocity, com, index) -> np.ndarray:
        return -np.abs(x_velocity - self._velocity[index]) + 1.0


class BatchedAntDir(_BatchedAnt):
    """N ants, each rewarded for moving in its direction ``d`` along x."""

    family = "ant_dir"
    task_space = TaskSpace("ant_dir", {"direction": Choice((-1.0, 1.0))})

    def _apply_tasks(self, tasks: list[dict]) -> None:
        self._direction = np.array([task["direction"] for task in tasks])

    def _task_reward(self, x_velocity, com, index) -> np.ndarray:
        return self._direction[index] * x_velocity


class BatchedAntGoal(_BatchedAnt):
    """N ants, each rewarded for bringing its COM to its goal position ``g`` (x, y)."""

    family = "ant_goal"
    task_space = TaskSpace("ant_goal", {"goal": Uniform(-3.0, 3.0, size=2)})

    def _apply_tasks(self, tasks: list[dict]) -> None:
        self._goal = np.array([task["goal"] for task in tasks])

    def _task_reward(self, x_velocity, com, index) -> np.ndarray:
        return -np.sum(np.abs(com[:, :2] - self._goal[index]), axis=1) + 4.0


class AntVelEnv(MujocoTaskEnv):
    """Gymnasium env ``metarl/AntVel-v0``: task ``{"velocity": v*}``, v* in [0, 3]."""

    batched_cls = BatchedAntVel
    horizon = BatchedAntVel.horizon


class AntDirEnv(MujocoTaskEnv):
    """Gymnasium env ``metarl/AntDir-v0``: task ``{"direction": d}``, d in {-1, 1}."""

    batched_cls = BatchedAntDir
    horizon = BatchedAntDir.horizon


class AntGoalEnv(MujocoTaskEnv):
    """Gymnasium env ``metarl/AntGoal-v0``: task ``{"goal": [x, y]}`` in [-3, 3]^2."""

    batched_cls = BatchedAntGoal
    horizon = BatchedAntGoal.horizon
