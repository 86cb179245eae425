"""2D navigation: a point agent moves to a goal (``navigation_2d``, docs/tasks.md).

State: position ``p [N, 2]``, starting at (0, 0). Task ``{"goal": [x, y]}``, goal ~
U[-0.5, 0.5]^2. Per step, with action ``a [N, 2]``::

    p' = p + clip(a, -0.1, 0.1)
    r  = -||p' - goal||_2                                  (Euclidean, not squared)
    terminated = |p'_x - goal_x| < 0.01 and |p'_y - goal_y| < 0.01

The observation is ``p'``; horizon 100. No physics: the batched form is plain array maths.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metarl.envs.base import BatchedEnvBase, BatchOfOneEnv
from metarl.envs.tasks import TaskSpace, Uniform

MAX_STEP = 0.1
GOAL_TOLERANCE = 0.01


class BatchedNavigation2D(BatchedEnvBase):
    """N point agents, each with its own goal."""

    family = "navigation_2d"
    task_space = TaskSpace("navigation_2d", {"goal": Uniform(-0.5, 0.5, size=2)})
    horizon = 100
    observation_size = 2
    action_size = 2
    action_low = np.full(2, -MAX_STEP)
    action_high = np.full(2, MAX_STEP)
    env_options = {}  # its clock is the unit step: nothing to choose

    def __init__(self, num_envs: int, *, num_threads: int | None = None,
                 horizon: int | None = None, truncate: bool = True, mask_done: bool = True):
        del num_threads  # no physics to parallelise
        super().__init__(num_envs, horizon=horizon, truncate=truncate, mask_done=mask_done)
        self._position = np.zeros((self.num_envs, 2))

    def _apply_tasks(self, tasks: list[dict]) -> None:
        self._goal = np.array([task["goal"] for task in tasks])

    def _reset_instances(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        self._position = np.zeros((self.num_envs, 2))
        return self._position.copy()

    def _step_active(self, actions: np.ndarray, index):
        # np.clip, np.linalg.norm(axis=1) and np.all(axis=1) spelt out for the two coordinates:
        # the same numbers, without the wrappers' and the short-axis reductions' overhead,
        # which is most of a step's cost here
        step = np.minimum(np.maximum(actions, -MAX_STEP), MAX_STEP)
        position = self._position[index] + step
        self._position[index] = position
        delta = position - self._goal[index]
        dx, dy = delta[:, 0], delta[:, 1]
        distance = np.sqrt(dx * dx + dy * dy)
        terminated = (np.abs(dx) < GOAL_TOLERANCE) & (np.abs(dy) < GOAL_TOLERANCE)
        return position.copy(), -distance, terminated, {"distance": distance}


class Navigation2DEnv(BatchOfOneEnv):
    """Gymnasium env ``metarl/Navigation2D-v0``: task ``{"goal": [x, y]}`` in [-0.5, 0.5]^2."""

    batched_cls = BatchedNavigation2D
    horizon = BatchedNavigation2D.horizon
