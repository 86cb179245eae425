"""Batched MuJoCo stepping shared by the HalfCheetah and Ant families.

:class:`MujocoPhysics` holds the full physics state of N instances of one model,
``state [N, nstate]`` in MuJoCo's ``mjSTATE_FULLPHYSICS`` layout (time, qpos, qvel, ...),
and advances them ``frame_skip`` substeps per control step with one call of MuJoCo's
multithreaded ``mujoco.rollout`` (its own persistent thread pool, GIL released during
the physics). It returns the sensor data of the last substep, shape ``[N, nsensordata]``.

Conventions (the single env uses the same code with N = 1, so it behaves identically):

- The control is held for the ``frame_skip`` substeps; MuJoCo clamps it to ``ctrlrange``.
- Each control step starts with a zero constraint-solver warm start (``rollout`` does not
  return ``qacc_warmstart``); the solver converges from there, so only the iteration count
  differs from a continuously stepped ``MjData``.
- Sensors are evaluated by MuJoCo at the *start* of each substep, so the sensor data of the
  last substep describe the state before its integration (for the Ant's contact forces,
  this is also what Gymnasium's Ant-v5 reports after ``mj_step``).
- Divergence: when MuJoCo meets a NaN/huge qpos, qvel or qacc it warns, resets that
  instance's data (time = 0) and ``rollout`` stops stepping it. An instance whose time did
  not advance by ``frame_skip`` substeps, or whose state is non-finite, is reported as
  diverged; nothing of it reaches the other instances (separate rows, separate MjData per
  thread).

The control clock, ``dt = frame_skip x timestep`` seconds per action, is Gymnasium v5's by
default (frame_skip 5, the model's timestep 0.01: 0.05 s). The env options ``frame_skip`` and
``timestep``, or ``clock="paper"`` (the MAML paper's rllab clock, ``paper_clock`` of each
robot: one substep of 0.01 s for the half-cheetah, of 0.02 s for the ant), change it. The env
option ``contacts="rllab"`` gives the geoms the contact softness (``solimp``) of the robot's
rllab model where it differs from v5's (``rllab_solimp``: the ant's). A changed timestep or
contact setting steps a copy of the compiled model.

Two :class:`MujocoPhysics` objects share nothing mutable (each has its own ``Rollout``
pool, MjData and buffers; the compiled ``MjModel`` is read-only), so one can be stepped in
a background thread while Python works on the other.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import mujoco
import mujoco.rollout
import numpy as np

from metarl.envs.base import (
    BatchedEnvBase,
    BatchOfOneEnv,
    env_option_error,
    storable,
    usable_cores,
)

_FULLPHYSICS = mujoco.mjtState.mjSTATE_FULLPHYSICS
_CTRL = int(mujoco.mjtState.mjSTATE_CTRL)
#: Named control clocks (env option ``clock``): Gymnasium v5's and the MAML paper's (rllab's).
CLOCKS = ("v5", "paper")
#: Contact settings (env option ``contacts``): the v5 model's and the robot's rllab model's.
CONTACTS = ("v5", "rllab")
#: The most physics substeps per action an env option may ask for (the physics buffers hold
#: every substep of a control step).
FRAME_SKIP_MAX = 1000


def gymnasium_asset(name: str) -> Path:
    """Path of an MJCF file shipped with Gymnasium's MuJoCo v5 environments."""
    return Path(gymnasium.__file__).parent / "envs" / "mujoco" / "assets" / name


class MujocoPhysics:
    """N instances of ``model`` stepped with ``mujoco.rollout``; see the module docstring."""

    def __init__(self, model: mujoco.MjModel, num_envs: int, frame_skip: int,
                 num_threads: int | None = None):
        if num_threads is None:
            num_threads = usable_cores() if num_envs > 1 else 0  # one physics thread per core
        if num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {num_threads}")
        self.model = model
        self.num_envs = num_envs
        self.frame_skip = frame_skip
        self.num_threads = num_threads
        self.nq, self.nv, self.nu = model.nq, model.nv, model.nu
        self._rollout = mujoco.rollout.Rollout(nthread=num_threads if num_threads > 1 else 0)
        self._datas = [mujoco.MjData(model) for _ in range(max(1, num_threads))]
        self._models = [model] * num_envs
        template = np.empty(mujoco.mj_stateSize(model, _FULLPHYSICS))
        mujoco.mj_getState(model, self._datas[0], template, _FULLPHYSICS)
        self.state = np.tile(template, (num_envs, 1))  # [N, nstate]: time, qpos, qvel, ...
        self._out_state = np.empty((num_envs, frame_skip, template.size))
        self._out_sensor = np.empty((num_envs, frame_skip, model.nsensordata))

    @property
    def qpos(self) -> np.ndarray:
        """``[N, nq]`` view of the joint positions."""
        return self.state[:, 1 : 1 + self.nq]

    @property
    def qvel(self) -> np.ndarray:
        """``[N, nv]`` view of the joint velocities."""
        return self.state[:, 1 + self.nq : 1 + self.nq + self.nv]

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray,
                  index: slice | np.ndarray = slice(None)) -> None:
        """Set qpos ``[k, nq]`` and qvel ``[k, nv]`` of instances ``index``; time restarts at 0."""
        self.state[index, 0] = 0.0
        self.state[index, 1 : 1 + self.nq] = qpos
        self.state[index, 1 + self.nq : 1 + self.nq + self.nv] = qvel

    def step(self, ctrl: np.ndarray, index: slice | np.ndarray = slice(None)
             ) -> tuple[np.ndarray, np.ndarray]:
        """Hold ``ctrl [k, nu]`` for ``frame_skip`` substeps on instances ``index``.

        Returns ``(sensordata [k, nsensordata]`` of the last substep, ``diverged [k])``.
        """
        state0 = self.state[index]
        k = len(state0)
        if k == 0:  # mujoco.rollout must not be called with an empty batch
            return np.empty((0, self.model.nsensordata)), np.empty(0, dtype=bool)
        control = np.ascontiguousarray(
            np.broadcast_to(ctrl[:, None, :], (k, self.frame_skip, self.nu)))
        out_state, out_sensor = self._out_state[:k], self._out_sensor[:k]
        self._rollout.rollout(
            self._models[:k], self._datas, np.ascontiguousarray(state0), control,
            control_spec=_CTRL, skip_checks=True, nstep=self.frame_skip,
            initial_warmstart=None, state=out_state,
            sensordata=out_sensor if self.model.nsensordata else None, chunk_size=None)
        new_state = out_state[:, -1]
        expected_time = state0[:, 0] + (self.frame_skip - 0.5) * self.model.opt.timestep
        diverged = (new_state[:, 0] < expected_time) | ~storable(new_state).all(axis=1)
        self.state[index] = new_state
        return out_sensor[:, -1].copy(), diverged

    def close(self) -> None:
        if self._rollout.rollout_ is not None:
            self._rollout.close()


@functools.cache
def model_variant(build_model: Callable[[], mujoco.MjModel], timestep: float,
                  solimp: tuple[float, ...] | None = None) -> mujoco.MjModel:
    """A copy of ``build_model()`` whose ``opt.timestep`` is ``timestep`` and, unless
    ``solimp`` is None, whose geoms all have the leading ``solimp`` parameters (impedance at
    zero and at full penetration, width) ``solimp`` (compiled once per process and variant;
    read-only)."""
    model = copy.copy(build_model())
    model.opt.timestep = timestep
    if solimp is not None:
        model.geom_solimp[:, :len(solimp)] = solimp
    return model


class BatchedMujocoEnv(BatchedEnvBase):
    """Base of the batched MuJoCo families: model, reset noise, physics, control clock.

    Subclasses set ``horizon``, ``observation_size``, ``task_space``, ``family``,
    ``paper_clock``, implement ``build_model()`` (cached), ``_apply_tasks``,
    ``_observe_reset()`` and ``_step_active``.

    Env options (keywords of the constructor and of the single env): ``frame_skip`` (substeps
    per action, default 5), ``timestep`` (seconds per substep, default the model's) or
    ``clock`` (``"v5"``: the defaults; ``"paper"``: ``paper_clock``). ``dt = frame_skip x
    timestep``; rewards that are velocities divide by it. ``contacts`` (``"v5"``: the model's;
    ``"rllab"``: every geom's ``solimp`` set to ``rllab_solimp``, unchanged where that is None).

    Reset (as Gymnasium's v5 envs, from each instance's generator ``rng``)::

        qpos = qpos0 + U(-s, s)^nq,   qvel = s * N(0, 1)^nv,   s = reset_noise_scale = 0.1
    """

    frame_skip = 5  # Gymnasium v5's; an instance's own is set from the env options
    #: ``(frame_skip, timestep)`` of the robot's rllab model, the MAML paper's clock.
    paper_clock: ClassVar[tuple[int, float]]
    #: The leading ``solimp`` of the robot's rllab model's geoms; None: the same as v5's.
    rllab_solimp: ClassVar[tuple[float, float, float] | None] = None
    reset_noise_scale = 0.1
    parallel_step = True  # mujoco.rollout releases the GIL and threads the physics
    env_options = {  # name -> what it takes (error messages; docs/tasks.md has the meaning)
        "frame_skip": f"int in [1, {FRAME_SKIP_MAX}], default 5",
        "timestep": "float > 0, default 0.01",
        "clock": "v5 or paper",
        "contacts": "v5 or rllab"}

    def __init__(self, num_envs: int, *, num_threads: int | None = None,
                 horizon: int | None = None, truncate: bool = True, mask_done: bool = True,
                 frame_skip: Any = None, timestep: Any = None, clock: Any = None,
                 contacts: Any = None):
        super().__init__(num_envs, horizon=horizon, truncate=truncate, mask_done=mask_done)
        model = self.build_model()
        self.frame_skip, step = self._control_clock(frame_skip, timestep, clock,
                                                    model.opt.timestep)
        solimp = self._contact_solimp(contacts)
        if step != model.opt.timestep or solimp is not None:
            model = model_variant(type(self).build_model, step, solimp)
        self.physics = MujocoPhysics(model, self.num_envs, self.frame_skip, num_threads)
        self.dt = self.frame_skip * model.opt.timestep
        self.action_size = model.nu
        self.action_low = model.actuator_ctrlrange[:, 0].copy()
        self.action_high = model.actuator_ctrlrange[:, 1].copy()

    @classmethod
    def build_model(cls) -> mujoco.MjModel:
        raise NotImplementedError

    def _control_clock(self, frame_skip: Any, timestep: Any, clock: Any,
                       model_timestep: float) -> tuple[int, float]:
        """``(frame_skip, timestep)`` from the env options (see the class docstring);
        ``EnvOptionError`` naming a bad one, the family and the valid options."""
        def bad(message: str):
            return env_option_error(self.family, message, self.env_options)

        if clock is not None:
            if not isinstance(clock, str) or clock not in CLOCKS:
                raise bad(f"env option clock={clock!r} is not valid (choose {' or '.join(CLOCKS)})")
            if frame_skip is not None or timestep is not None:
                raise bad(f"env option clock={clock} sets frame_skip and timestep: give clock "
                          "or them, not both")
            frame_skip, timestep = self.paper_clock if clock == "paper" else (None, None)
        if frame_skip is None:
            frame_skip = type(self).frame_skip
        if (isinstance(frame_skip, bool) or not isinstance(frame_skip, int | np.integer)
                or not 1 <= frame_skip <= FRAME_SKIP_MAX):
            raise bad(f"env option frame_skip={frame_skip!r} is not valid "
                      f"(an int in [1, {FRAME_SKIP_MAX}])")
        if timestep is None:
            timestep = model_timestep
        if (isinstance(timestep, bool) or not isinstance(timestep, int | float | np.number)
                or not math.isfinite(timestep) or timestep <= 0):
            raise bad(f"env option timestep={timestep!r} is not valid (a finite float > 0)")
        return int(frame_skip), float(timestep)

    def _contact_solimp(self, contacts: Any) -> tuple[float, ...] | None:
        """The geoms' ``solimp`` the env option ``contacts`` asks for (None: the model's);
        ``EnvOptionError`` naming a bad value."""
        if contacts is not None and (not isinstance(contacts, str) or contacts not in CONTACTS):
            raise env_option_error(self.family, f"env option contacts={contacts!r} is not valid "
                                   f"(choose {' or '.join(CONTACTS)})", self.env_options)
        return self.rllab_solimp if contacts == "rllab" else None

    @property
    def qpos(self) -> np.ndarray:
        """``[N, nq]`` joint positions (read-only copy)."""
        return self.physics.qpos.copy()

    @property
    def qvel(self) -> np.ndarray:
        """``[N, nv]`` joint velocities (read-only copy)."""
        return self.physics.qvel.copy()

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Overwrite the physics state of all instances (``[N, nq]``, ``[N, nv]``).

        For tests and diagnostics; derived observations refresh at the next step.
        """
        self.physics.state[:, 1 : 1 + self.physics.nq] = qpos
        self.physics.state[:, 1 + self.physics.nq : 1 + self.physics.nq + self.physics.nv] = qvel

    def _reset_instances(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        model = self.physics.model
        s = self.reset_noise_scale
        qpos = np.empty((self.num_envs, model.nq))
        qvel = np.empty((self.num_envs, model.nv))
        for i, rng in enumerate(rngs):  # once per episode: one generator per instance
            qpos[i] = model.qpos0 + rng.uniform(low=-s, high=s, size=model.nq)
            qvel[i] = s * rng.standard_normal(model.nv)
        self.physics.set_state(qpos, qvel)
        return self._observe_reset()

    def _observe_reset(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        self.physics.close()


class MujocoTaskEnv(BatchOfOneEnv):
    """Gymnasium env of a MuJoCo family (its batched class with N = 1), with state access."""

    batched_cls: type[BatchedMujocoEnv]

    @property
    def dt(self) -> float:
        """Seconds per control step (frame_skip x timestep)."""
        return self._batch.dt

    @property
    def qpos(self) -> np.ndarray:
        return self._batch.qpos[0]

    @property
    def qvel(self) -> np.ndarray:
        return self._batch.qvel[0]

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Overwrite the physics state (as Gymnasium's ``MujocoEnv.set_state``)."""
        self._batch.set_state(np.asarray(qpos)[None], np.asarray(qvel)[None])
