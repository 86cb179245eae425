"""A resolved task family: how to make its single and batched envs and draw its tasks.

:mod:`metarl.envs.registry` resolves names to a :class:`TaskFamily`; :mod:`metarl.envs.oracle`
derives the oracle of one. Both import this module, which imports neither.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils import seeding

from metarl.envs.base import NotATaskFamilyError, env_option_error, family_code, short_repr
from metarl.envs.fallback import LoopBatchedEnv
from metarl.envs.protocol import BatchedTaskEnv


class UnknownEnvError(ValueError):
    """The name matches no task family; the message lists the known names."""


@dataclass(frozen=True)
class TaskFamily:
    """A resolved task family.

    Attributes:
        name: short name (``--env``), or the name it was resolved from.
        env_id: its Gymnasium id, if registered there (then :meth:`make` uses ``gym.make``).
        env_cls: the single env class, or ``"module:Class"``; None for a foreign gym id.
        batched: the batched class, ``"module:Class"``, or None (loop fallback).
        horizon: episode length (``max_episode_steps``); None if the env defines none.
        options: the env options bound by :meth:`with_options`, as sorted ``(name, value)``
            pairs (hashable); every env this family makes gets them as constructor keywords.
    """

    name: str
    env_id: str | None
    env_cls: type | str | None
    batched: type | str | None
    horizon: int | None
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def env_options(self) -> dict[str, Any]:
        """The bound env options, ``{name: value}`` (empty: the family's defaults)."""
        return dict(self.options)

    def with_options(self, **options: Any) -> TaskFamily:
        """This family with ``options`` bound (overlaid on any already bound): its ``make``,
        ``make_batched`` and ``sample_tasks`` pass them to the env constructors, so every
        consumer of the family (samplers in this or another process, the oracle, evaluation)
        builds the same envs; it pickles with them. ``EnvOptionError`` for a name the family
        does not take (:meth:`option_rules`); bad values are refused by the constructors."""
        rules = self.option_rules()
        for name in options:
            if rules is not None and name not in rules:
                raise env_option_error(self.name, f"unknown env option {name!r}", rules)
        return dataclasses.replace(self, options=tuple(sorted({**self.env_options,
                                                               **options}.items())))

    def option_rules(self) -> dict[str, str] | None:
        """The env options the family's constructors take, name -> what it takes: the
        ``env_options`` its batched (else single) class declares, else the keyword parameters
        of its constructors; None where a constructor takes ``**kwargs`` and declares none
        (then the constructor alone decides, and ``family_code`` reports what it refuses)."""
        forms = [(self.batched, _BATCHED_KEYWORDS), (self._single_entry(), _SINGLE_KEYWORDS)]
        classes = [(_load(target), reserved) for target, reserved in forms if target is not None]
        for cls, _ in classes:
            declared = getattr(cls, "env_options", None)
            if declared is not None:
                return dict(declared)
        known = [_keywords(cls, reserved) for cls, reserved in classes]
        known = [names for names in known if names is not None]
        if not known:
            return None
        return {name: "" for name in sorted(set.intersection(*known))}

    def _single_entry(self) -> type | str | None:
        if self.env_cls is not None:
            return self.env_cls
        return gym.spec(self.env_id).entry_point if self.env_id is not None else None

    def make(self, *, max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
        """One Gymnasium env, ``TimeLimit``-wrapped at ``max_episode_steps`` (default: the
        horizon); other kwargs go to the env after the bound env options, e.g. ``task=``."""
        kwargs = {**self.env_options, **kwargs}
        if self.env_id is not None:
            with family_code(self.name, "__init__"):
                return gym.make(self.env_id, max_episode_steps=max_episode_steps, **kwargs)
        env_cls = _load(self.env_cls)
        with family_code(self.name, "__init__"):
            env = env_cls(**kwargs)
        limit = max_episode_steps or self.horizon
        return env if limit is None else gym.wrappers.TimeLimit(env, max_episode_steps=limit)

    def make_batched(self, num_envs: int, *, num_threads: int | None = None,
                     horizon: int | None = None, **kwargs: Any) -> BatchedTaskEnv:
        """``num_envs`` instances behind the batched API (loop fallback if no batched form),
        built with the bound env options."""
        if self.batched is not None:
            batched_cls = _load(self.batched)
            if not self.options:
                return batched_cls(num_envs, num_threads=num_threads, horizon=horizon, **kwargs)
            with family_code(self.name, "__init__"):  # a constructor may refuse an option
                return batched_cls(num_envs, num_threads=num_threads, horizon=horizon,
                                   **{**self.env_options, **kwargs})
        return LoopBatchedEnv(lambda: self.make(max_episode_steps=horizon, **kwargs), num_envs,
                              horizon=horizon or self.horizon, family=self.name)

    def sample_tasks(self, n: int, seed: int) -> list[dict]:
        """``n`` tasks: the env's ``sample_tasks(n)`` with ``np_random`` seeded by ``seed``;
        ``NotATaskFamilyError`` unless they are a list of ``n`` dicts that its ``set_task``
        accepts."""
        env = self.make()
        try:
            env.unwrapped.np_random = seeding.np_random(seed)[0]
            with family_code(self.name, f"sample_tasks({n})"):
                tasks = env.unwrapped.sample_tasks(n)
            check_sampled_tasks(self.name, n, tasks, env.unwrapped.set_task)
            return tasks
        finally:
            env.close()


def check_sampled_tasks(name: str, n: int, tasks: Any, set_task: Any) -> None:
    """``NotATaskFamilyError`` unless ``tasks``, what family ``name``'s ``sample_tasks(n)``
    returned, is a list of exactly ``n`` dicts, each accepted by the family's ``set_task``."""
    call = f"{name}: sample_tasks({n})"
    rule = f"it must return a list of exactly {n} task dicts"
    if not isinstance(tasks, list):
        raise NotATaskFamilyError(f"{call} returned {short_repr(tasks)}, not a list; {rule}")
    if len(tasks) != n:
        raise NotATaskFamilyError(f"{call} returned {len(tasks)} task"
                                  f"{'' if len(tasks) == 1 else 's'}; {rule}")
    checked: set[int] = set()
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            raise NotATaskFamilyError(f"{call} returned {short_repr(task)} as task {i}, not a "
                                      f"dict; {rule}")
        if id(task) in checked:  # a family may repeat one dict object
            continue
        try:
            with family_code(name, "set_task"):
                set_task(task)
        except NotATaskFamilyError as error:
            cause = error.__cause__
            why = (error if cause is None else cause if isinstance(cause, ValueError)
                   else f"{type(cause).__name__}: {cause}")  # KeyError('goal') says just 'goal'
            raise NotATaskFamilyError(f"{call} returned task {i} = {short_repr(task)}, which "
                                      f"its own set_task refuses: {why}") from error
        checked.add(id(task))


#: Constructor keywords that are not env options: the single env's and the batched form's own.
_SINGLE_KEYWORDS = frozenset({"task", "render_mode"})
_BATCHED_KEYWORDS = frozenset({"num_envs", "num_threads", "horizon", "truncate", "mask_done"})


def _keywords(target: Any, reserved: frozenset[str]) -> set[str] | None:
    """The keyword parameters of ``target``'s constructor (or of a factory function) other than
    ``reserved``; None when it also takes ``**kwargs`` or has no readable signature."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.name not in reserved
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _load(target: type | str) -> Any:
    return load_env_creator(target) if isinstance(target, str) else target


