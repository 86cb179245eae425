"""The algorithms a run can train, one :class:`Algorithm` entry each in :data:`ALGORITHMS`.

An entry says what ``metarl.experiment`` needs to build a run: which config key names the task
family (``--task``, ``--env``), the config class for a family, the settings a resumed run may
change, and the trainer (a ``metarl.training.Trainer``, driven by the one training loop).
Everything is imported when used, so reading this table loads no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metarl.catalog import supervised_tasks
from metarl.config import ConfigError


@dataclass(frozen=True)
class Algorithm:
    """What a run of one algorithm is built from."""

    #: The config key that names the task family; it picks the config class and the shipped
    #: defaults ``experiments/{algo}/{family}.yaml``.
    selector: str
    #: The family trained when none is named.
    default: str
    #: The settings a resumed run may change: none may alter what the run computes, since a
    #: resume continues exactly like the uninterrupted run (and a restored optimiser state
    #: would ignore, say, a new learning rate).
    resume_may_change: tuple[str, ...]
    #: The config class for a family (a ConfigError for a family it does not know).
    config_class: Callable[[str], type]
    #: The class every config of this algorithm is an instance of.
    config_base: Callable[[], type]
    #: The trainer of a validated config.
    build_trainer: Callable[[Any], Any]
    #: The name of a family's shipped defaults (by default, the family's own).
    shipped_task: Callable[[str], str] = lambda family: family


def _maml_config(task: str) -> type:
    tasks = supervised_tasks()
    if task not in tasks:
        raise ConfigError(f"task={task!r} is not valid; choose from: {', '.join(tasks)}")
    return tasks[task][0]


def _maml_base() -> type:
    from metarl.supervised.trainer import MAMLConfig

    return MAMLConfig


def _maml_trainer(config: Any) -> Any:
    from metarl.supervised.trainer import MetaLearner

    _, build_problem = supervised_tasks()[config.task]
    return MetaLearner(build_problem(config), config)


def _maml_trpo_config(env: str) -> type:
    """Every env (a built-in family, a plug-in, a Gymnasium id) has the same options."""
    return _maml_trpo_base()


def _maml_trpo_base() -> type:
    from metarl.rl.config import MAMLTRPOConfig

    return MAMLTRPOConfig


def _maml_trpo_trainer(config: Any) -> Any:
    from metarl.rl.trainer import MetaRLTrainer

    return MetaRLTrainer(config)


def _without_oracle(env: str) -> str:
    """ENV+oracle (the policy also observes the task) starts from ENV's shipped defaults."""
    from metarl.envs.oracle import ORACLE_SUFFIX

    return env.removesuffix(ORACLE_SUFFIX)


ALGORITHMS: dict[str, Algorithm] = {
    # Supervised MAML (sine regression, Omniglot). The held-out curves draw from their own
    # generator and the data folders hold the same data, so neither changes what is computed.
    "maml": Algorithm(
        selector="task", default="sine",
        resume_may_change=("num_batches", "checkpoint_every", "eval_every", "eval_tasks",
                           "eval_steps", "torch_threads", "output_dir", "data_dir", "cache_dir",
                           "download"),
        config_class=_maml_config, config_base=_maml_base, build_trainer=_maml_trainer),
    # MAML-TRPO on an RL task family. Episodes are identical for any number of workers.
    "maml_trpo": Algorithm(
        selector="env", default="navigation_2d",
        resume_may_change=("num_batches", "checkpoint_every", "num_workers", "torch_threads",
                           "output_dir"),
        config_class=_maml_trpo_config, config_base=_maml_trpo_base,
        build_trainer=_maml_trpo_trainer, shipped_task=_without_oracle),
}


def algorithm(name: str) -> Algorithm:
    """The entry of ``name``; a ConfigError naming the known ones for any other."""
    if name not in ALGORITHMS:
        raise ConfigError(f"algo={name!r} is not valid; choose from: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
