"""Forward kinematics of a MuJoCo body tree for a batch of joint positions.

``mujoco.rollout`` returns states (qpos, qvel) but the observations also need quantities
MuJoCo derives from qpos: a body's orientation ``xmat`` and its subtree centre of mass.
:class:`TreeKinematics` computes them at the *post-step* qpos with array maths over the
batch (one pass over the bodies, each a handful of numpy ops on ``[N, ...]`` arrays), so
no Python loop runs over instances.

Per body ``b`` with parent ``p`` (``R`` rotation matrices ``[N, 3, 3]``, ``x`` positions
``[N, 3]``), exactly as ``mj_kinematics``::

    R_b = R_p @ R(body_quat_b)            x_b = x_p + R_p @ body_pos_b
    then for each joint j of b, in order (q = qpos[j] - qpos0[j]):
      free:   x_b = qpos[0:3],  R_b = R(normalise(qpos[3:7]))
      slide:  x_b += (R_b @ axis_j) * q
      hinge:  a = x_b + R_b @ pos_j;  R_b = R_b @ Rodrigues(axis_j, q);  x_b = a - R_b @ pos_j
      ball:   as hinge with R(normalise(qpos[j:j+4]))

    subtree_com(b) = sum_{c in subtree(b)} m_c (x_c + R_c @ ipos_c) / sum_c m_c

For a batch of one (the single Gymnasium env), MuJoCo's own ``mj_kinematics`` +
``mj_comPos`` on a private ``MjData`` is faster than numpy's per-call overhead; both
paths agree to ~1e-15 (tested), so single and batched transitions match.
"""

from __future__ import annotations

import mujoco
import numpy as np

_FREE, _BALL, _SLIDE, _HINGE = (
    mujoco.mjtJoint.mjJNT_FREE,
    mujoco.mjtJoint.mjJNT_BALL,
    mujoco.mjtJoint.mjJNT_SLIDE,
    mujoco.mjtJoint.mjJNT_HINGE,
)


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` of quaternions ``[..., 4]`` (w, x, y, z), normalised first."""
    q = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


class TreeKinematics:
    """Orientation and subtree centre of mass of one body for ``qpos [N, nq]``.

    Args:
        model: the compiled model (read-only here).
        body: name of the body (e.g. ``"torso"``).
        c_batch_limit: batches up to this size use MuJoCo's C kinematics, one instance at
            a time (faster than numpy's per-call overhead for the single env); larger
            batches use the numpy tree pass.
    """

    def __init__(self, model: mujoco.MjModel, body: str, c_batch_limit: int = 1):
        self.model = model
        self.body_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        if self.body_id < 0:
            raise ValueError(f"model has no body named {body!r}")
        self.c_batch_limit = c_batch_limit
        self._data = mujoco.MjData(model)
        self._parent = model.body_parentid.copy()
        self._body_rot = [quat_to_mat(q) for q in model.body_quat]
        self._joints = [
            [j for j in range(model.njnt) if model.jnt_bodyid[j] == b] for b in range(model.nbody)
        ]
        subtree = [b for b in range(model.nbody) if self._in_subtree(b)]
        ancestors = []
        body_id = self.body_id
        while body_id > 0:
            ancestors.append(body_id)
            body_id = model.body_parentid[body_id]
        self._bodies = sorted(set(ancestors) | set(subtree))  # MuJoCo orders parents first
        self._com_bodies = [b for b in subtree if model.body_mass[b] > 0]
        self._com_weights = model.body_mass[self._com_bodies] / model.body_mass[subtree].sum()

    def _in_subtree(self, body: int) -> bool:
        while body > self.body_id:
            body = self.model.body_parentid[body]
        return body == self.body_id

    def __call__(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(subtree_com [N, 3], xmat [N, 9])`` of the body at joint positions ``qpos``."""
        if len(qpos) <= self.c_batch_limit:
            return self._with_mujoco(qpos)
        return self._with_numpy(qpos)

    def _with_mujoco(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        com = np.empty((len(qpos), 3))
        xmat = np.empty((len(qpos), 9))
        for i, q in enumerate(qpos):  # only ever a handful: see c_batch_limit
            self._data.qpos[:] = q
            mujoco.mj_kinematics(self.model, self._data)
            mujoco.mj_comPos(self.model, self._data)
            com[i] = self._data.subtree_com[self.body_id]
            xmat[i] = self._data.xmat[self.body_id]
        return com, xmat

    def _with_numpy(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.model
        n = len(qpos)
        pos = {0: np.zeros((n, 3))}
        rot = {0: np.broadcast_to(np.eye(3), (n, 3, 3))}
        for b in self._bodies:
            r = rot[self._parent[b]]
            x = pos[self._parent[b]] + _rotate(r, m.body_pos[b])
            if not np.array_equal(m.body_quat[b], [1.0, 0.0, 0.0, 0.0]):
                r = _compose(r, self._body_rot[b])
            for j in self._joints[b]:
                adr = m.jnt_qposadr[j]
                kind = m.jnt_type[j]
                if kind == _FREE:
                    x = qpos[:, adr : adr + 3].copy()
                    r = quat_to_mat(qpos[:, adr + 3 : adr + 7])
                elif kind == _SLIDE:
                    x = x + _rotate(r, m.jnt_axis[j]) * (qpos[:, adr] - m.qpos0[adr])[:, None]
                else:
                    anchor = x + _rotate(r, m.jnt_pos[j])
                    if kind == _HINGE:
                        r = _rotate_about(r, m.jnt_axis[j], qpos[:, adr] - m.qpos0[adr])
                    else:
                        r = r @ quat_to_mat(qpos[:, adr : adr + 4])
                    x = anchor - _rotate(r, m.jnt_pos[j])
            pos[b], rot[b] = x, r
        com = sum(
            w * (pos[b] + _rotate(rot[b], m.body_ipos[b]))
            for w, b in zip(self._com_weights, self._com_bodies)
        )
        return com, rot[self.body_id].reshape(n, 9).copy()


# Products of a batch of rotations [N, 3, 3] with one constant matrix or vector are written
# as a single [3N, 3] matrix product (one BLAS call) instead of N small matmuls.


def _rotate(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``r @ v`` for rotations ``[N, 3, 3]`` and one vector ``[3]`` -> ``[N, 3]``."""
    if not v.any():
        return np.zeros((len(r), 3))
    return (r.reshape(-1, 3) @ v).reshape(-1, 3)


def _compose(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``r @ c`` for rotations ``[N, 3, 3]`` and one matrix ``[3, 3]``."""
    return (r.reshape(-1, 3) @ c).reshape(-1, 3, 3)


def _rotate_about(r: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """``r @ Rodrigues(axis, angle)`` = r + sin(angle) r K + (1 - cos(angle)) r K^2, K = [axis]x."""
    k = np.array(
        [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]]
    )
    s = np.sin(angle)[:, None, None]
    c = (1.0 - np.cos(angle))[:, None, None]
    return r + s * _compose(r, k) + c * _compose(r, k @ k)
