"""Task-distribution Gymnasium environments for meta-reinforcement learning.

Importing this package registers the six families of docs/tasks.md:

============== ============================ ===================== ======= =====
short name     Gymnasium id                 task                  horizon obs
============== ============================ ===================== ======= =====
navigation_2d  metarl/Navigation2D-v0       {"goal": [x, y]}      100     2
cheetah_vel    metarl/HalfCheetahVel-v0     {"velocity": v}       200     20
cheetah_dir    metarl/HalfCheetahDir-v0     {"direction": +-1}    200     20
ant_vel        metarl/AntVel-v0             {"velocity": v}       200     119
ant_dir        metarl/AntDir-v0             {"direction": +-1}    200     119
ant_goal       metarl/AntGoal-v0            {"goal": [x, y]}      200     119
============== ============================ ===================== ======= =====

Single env (Gymnasium API plus ``sample_tasks(n)`` / ``set_task(task)``)::

    env = envs.make("cheetah_vel")                 # or gymnasium.make("metarl/HalfCheetahVel-v0")
    env.reset(seed=0)
    env.unwrapped.set_task(env.unwrapped.sample_tasks(1)[0])

Batched form (N instances, one task each, one call per step)::

    batch = envs.make_batched("cheetah_vel", num_envs=800)
    batch.set_tasks(tasks)                          # len(tasks) == 800
    obs = batch.reset(seeds=range(800))             # [800, 20]
    obs, reward, terminated, truncated, info = batch.step(actions)   # actions [800, 6]

Bring your own family: see :mod:`metarl.envs.protocol` (a Gymnasium env with ``sample_tasks`` and
``set_task`` is enough; select it with ``--env package.module:ClassName`` or
:func:`register_family`).

Modules: ``registry`` (names, resolution, registration), ``protocol`` (the plug-in
protocol), ``tasks`` (task spaces and validation), ``base`` (batched base class and the
batch-of-one Gymnasium env), ``mujoco_batch`` (batched MuJoCo stepping with
``mujoco.rollout``), ``kinematics`` (batched forward kinematics), ``fallback`` (loop
batching for plug-ins), ``oracle`` (``NAME+oracle``: the family with each observation
followed by its task's parameters, for the oracle baseline), ``navigation``, ``half_cheetah``,
``ant`` (the families).
"""

from metarl.envs.protocol import BatchedTaskEnv, TaskEnv
from metarl.envs.registry import (
    EnvOptionError,
    NotATaskFamilyError,
    TaskFamily,
    UnknownEnvError,
    known_names,
    make,
    make_batched,
    register_builtins,
    register_family,
    resolve,
    sample_tasks,
)
from metarl.envs.tasks import TaskError

register_builtins()

__all__ = [
    "BatchedTaskEnv",
    "EnvOptionError",
    "NotATaskFamilyError",
    "TaskEnv",
    "TaskError",
    "TaskFamily",
    "UnknownEnvError",
    "known_names",
    "make",
    "make_batched",
    "register_family",
    "resolve",
    "sample_tasks",
]
