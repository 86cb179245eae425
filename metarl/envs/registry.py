"""Task-family registry: short names, Gymnasium ids, ``module:Class``, batched forms.

A name given to ``--env`` (or to :func:`make` / :func:`make_batched`) is resolved, in order:

1. a registered short name (``cheetah_vel``, or one added with :func:`register_family`);
2. the Gymnasium id of a registered family (``metarl/HalfCheetahVel-v0``);
3. ``package.module:ClassName`` -- a task env class, imported on demand (a class attribute
   ``batched_cls`` names its optional batched form, ``horizon`` its episode length); or
   ``package.module:Some/Id-v0``, a Gymnasium id registered by importing that module;
4. any other Gymnasium id whose env follows the protocol (``max_episode_steps`` = horizon);
5. any of these followed by ``+oracle`` (``ORACLE_SUFFIX``): that family's oracle, whose
   observations end with the task's parameters (:mod:`metarl.envs.oracle`; the oracle baseline of ``evaluate --baselines``).

Anything else raises :class:`UnknownEnvError` listing the known short names. A resolved family
binds env options with ``TaskFamily.with_options`` (:class:`EnvOptionError` for one it does
not take). The protocol
a family follows is described in :mod:`metarl.envs.protocol`.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs.base import EnvOptionError as EnvOptionError  # re-exported
from metarl.envs.base import NotATaskFamilyError
from metarl.envs.family import TaskFamily, UnknownEnvError
from metarl.envs.oracle import ORACLE_SUFFIX, oracle_family
from metarl.envs.protocol import BatchedTaskEnv, TaskEnv

_FAMILIES: dict[str, TaskFamily] = {}
_RESOLVED: dict[str, TaskFamily] = {}
_SHORT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
#: The forms a name can take: a short name or Gymnasium id (``ns/Name-v0``), or
#: ``package.module:ClassName`` (or ``package.module:Some/Id-v0``).
_NAME_OR_ID = re.compile(r"[A-Za-z0-9_][\w./-]*")
_IMPORT_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_][\w./-]*")


def register_family(name: str, env_cls: type | str, *, batched: type | str | None = None,
                    env_id: str | None = None, horizon: int | None = None,
                    overwrite: bool = False) -> TaskFamily:
    """Register a task family under a short name (and a Gymnasium id).

    Args:
        name: the short name users pass to ``--env``.
        env_cls: the single env class (or ``"module:Class"``), following :class:`TaskEnv`.
        batched: optional batched class (or ``"module:Class"``), following
            :class:`BatchedTaskEnv`; default: ``env_cls.batched_cls`` if present.
        env_id: Gymnasium id to register; default ``metarl/{name}-v0``.
        horizon: episode length; default ``env_cls.horizon``.
        overwrite: replace an existing family of that name instead of raising.
    """
    if not _SHORT_NAME.fullmatch(name):
        raise ValueError(f"family name {name!r} must be letters, digits, '_', '.', '-' "
                         "(starting with a letter)")
    if name in _FAMILIES and not overwrite:
        raise ValueError(f"task family {name!r} is already registered "
                         f"({_FAMILIES[name].env_cls}); pass overwrite=True to replace it")
    if not isinstance(env_cls, str):
        _check_protocol(env_cls, name)
        batched = batched if batched is not None else getattr(env_cls, "batched_cls", None)
        horizon = horizon if horizon is not None else getattr(env_cls, "horizon", None)
    horizon = _checked_horizon(horizon, name)
    if horizon is None:
        raise ValueError(f"task family {name!r} needs a horizon: pass horizon= or give the env "
                         "class a `horizon` attribute")
    env_id = env_id or f"metarl/{name}-v0"
    if env_id in gym.registry:
        if not overwrite and gym.registry[env_id].entry_point != env_cls:
            raise ValueError(f"Gymnasium id {env_id!r} is already registered to "
                             f"{gym.registry[env_id].entry_point}; pass env_id= or overwrite=True")
        del gym.registry[env_id]
    gym.register(id=env_id, entry_point=env_cls, max_episode_steps=horizon)
    family = TaskFamily(name, env_id, env_cls, batched, horizon)  # an int: checked above
    _FAMILIES[name] = family
    _RESOLVED.clear()
    return family


def known_names() -> list[str]:
    """Short names of the registered families, in registration order."""
    return list(_FAMILIES)


def resolve(name: str) -> TaskFamily:
    """The family a short name, Gymnasium id or ``module:Class`` refers to (see module doc)."""
    if not isinstance(name, str):
        raise UnknownEnvError(f"env name must be a string, got {name!r}; {_known_hint()}")
    if name in _FAMILIES:
        return _FAMILIES[name]
    if name.endswith(ORACLE_SUFFIX) and name not in _RESOLVED:
        _RESOLVED[name] = oracle_family(resolve(name[:-len(ORACLE_SUFFIX)]))
    for family in _FAMILIES.values():
        if family.env_id == name:
            return family
    if name not in _RESOLVED:
        if not (_IMPORT_SPEC if ":" in name else _NAME_OR_ID).fullmatch(name):
            raise UnknownEnvError(f"invalid env {name!r}; {_known_hint()}")
        if ":" in name:
            _RESOLVED[name] = _resolve_import(name)
        elif name in gym.registry:
            _RESOLVED[name] = _family_from_gym_id(name, name)
        else:
            module, dot, attr = name.rpartition(".")
            colon = (f" (a class in a module is named module:Class: did you mean "
                     f"'{module}:{attr}'?)" if dot and module and attr[:1].isupper() else "")
            raise UnknownEnvError(f"unknown env {name!r}{colon}; {_known_hint()}")
    return _RESOLVED[name]


def make(name: str, **kwargs: Any) -> gym.Env:
    """One Gymnasium env of the family ``name``; e.g. ``make("cheetah_vel", task={...})``."""
    return resolve(name).make(**kwargs)


def make_batched(name: str, num_envs: int, *, num_threads: int | None = None,
                 horizon: int | None = None, **kwargs: Any) -> BatchedTaskEnv:
    """``num_envs`` instances of the family ``name`` stepped together.

    ``num_threads``: physics threads (default: the CPUs available; ignored without physics).
    ``horizon``: override the family's episode length.
    """
    return resolve(name).make_batched(num_envs, num_threads=num_threads, horizon=horizon,
                                      **kwargs)


def sample_tasks(name: str, n: int, seed: int) -> list[dict]:
    """``n`` tasks of family ``name``, reproducible from ``seed``."""
    return resolve(name).sample_tasks(n, seed)


# -- helpers ---------------------------------------------------------------------------
def _known_hint() -> str:
    return ("known task families: " + ", ".join(known_names())
            + " (valid forms: a known name, a Gymnasium id of a task env such as "
            "metarl/Navigation2D-v0, or package.module:ClassName of a task env; NAME"
            f"{ORACLE_SUFFIX} for the family's oracle)")


def _check_protocol(env_cls: Any, name: str) -> None:
    missing = [m for m in ("sample_tasks", "set_task") if not callable(getattr(env_cls, m, None))]
    if missing or not (isinstance(env_cls, type) and issubclass(env_cls, gym.Env)):
        lacks = f"it lacks {missing}" if missing else "it is not a subclass of gymnasium.Env"
        raise NotATaskFamilyError(
            f"{name!r} ({env_cls!r}) is not a task family: {lacks}. A task family "
            "is a Gymnasium env with sample_tasks(n) -> list[dict] and set_task(task); "
            "see metarl.envs.protocol")


def _checked_horizon(horizon: Any, name: str) -> int | None:
    """The family's episode length as an int (None stays None: the batched form says so when
    it needs one); ``NotATaskFamilyError`` for anything but an int >= 1."""
    if horizon is None:
        return None
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise NotATaskFamilyError(f"{name!r}: horizon = {horizon!r} is not an episode length "
                                  "(the steps of one episode: an int >= 1)")
    return int(horizon)


def _resolve_import(name: str) -> TaskFamily:
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        where = ("; is its folder the current directory or on PYTHONPATH?"
                 if isinstance(error, ModuleNotFoundError) and error.name == module_name else "")
        raise UnknownEnvError(f"unknown env {name!r}: cannot import module {module_name!r} "
                              f"({error}{where}); {_known_hint()}") from error
    target = getattr(module, attr, None)
    if isinstance(target, type):
        _check_protocol(target, name)
        horizon = _checked_horizon(getattr(target, "horizon", None), name)
        return TaskFamily(name, None, target, getattr(target, "batched_cls", None), horizon)
    if attr in gym.registry:  # gymnasium's own "module:Id-v0" convention
        return _family_from_gym_id(name, attr)
    if target is not None:
        raise UnknownEnvError(f"unknown env {name!r}: {module_name}.{attr} is a "
                              f"{type(target).__name__}, not a class; name the task env class "
                              f"(module:ClassName); {_known_hint()}")
    raise UnknownEnvError(f"unknown env {name!r}: module {module_name!r} has no class "
                          f"{attr!r}; {_known_hint()}")


def _family_from_gym_id(name: str, env_id: str) -> TaskFamily:
    env = gym.make(env_id)
    try:
        if not isinstance(env.unwrapped, TaskEnv):
            _check_protocol(type(env.unwrapped), name)
        horizon = _checked_horizon(
            env.spec.max_episode_steps or getattr(env.unwrapped, "horizon", None), name)
        batched = getattr(env.unwrapped, "batched_cls", None)
    finally:
        env.close()
    return TaskFamily(name, env_id, None, batched, horizon)


_BUILTINS = [  # short name, Gymnasium id, single env, batched form, horizon (docs/tasks.md)
    ("navigation_2d", "metarl/Navigation2D-v0", "metarl.envs.navigation:Navigation2DEnv",
     "metarl.envs.navigation:BatchedNavigation2D", 100),
    ("cheetah_vel", "metarl/HalfCheetahVel-v0", "metarl.envs.half_cheetah:HalfCheetahVelEnv",
     "metarl.envs.half_cheetah:BatchedHalfCheetahVel", 200),
    ("cheetah_dir", "metarl/HalfCheetahDir-v0", "metarl.envs.half_cheetah:HalfCheetahDirEnv",
     "metarl.envs.half_cheetah:BatchedHalfCheetahDir", 200),
    ("ant_vel", "metarl/AntVel-v0", "metarl.envs.ant:AntVelEnv", "metarl.envs.ant:BatchedAntVel", 200),
    ("ant_dir", "metarl/AntDir-v0", "metarl.envs.ant:AntDirEnv", "metarl.envs.ant:BatchedAntDir", 200),
    ("ant_goal", "metarl/AntGoal-v0", "metarl.envs.ant:AntGoalEnv", "metarl.envs.ant:BatchedAntGoal", 200),
]


def register_builtins() -> None:
    """Register the six families of docs/tasks.md (idempotent)."""
    for name, env_id, env_cls, batched, horizon in _BUILTINS:
        if name not in _FAMILIES:
            register_family(name, env_cls, batched=batched, env_id=env_id, horizon=horizon)
