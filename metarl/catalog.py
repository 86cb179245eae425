"""What runs are built on, for ``metarl.experiment`` (building, training) and
``metarl.evaluate_run`` (evaluating) alike: the supervised tasks, the rule that a run's plug-in
env is imported only when named, and the learner's thread count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from metarl.config import ConfigError


def supervised_tasks() -> dict[str, tuple[type, Callable[[Any], Any]]]:
    """Task name -> (config class, problem builder). Imported lazily: torch loads on use."""
    from metarl.supervised.omniglot import problem as omniglot
    from metarl.supervised.sine import problem as sine

    return {"sine": (sine.SineConfig, sine.build_problem),
            "omniglot": (omniglot.OmniglotConfig, omniglot.build_problem)}


def check_plugin_named(env: str, given: str | None, *, source: str) -> None:
    """Refuse ``env``, read from a run or a checkpoint, where resolving it would import a module
    (``package.module:Class``) that the caller did not name with ``--env`` (``given``): loading
    a run must not run code it names. Short names and Gymnasium ids import nothing."""
    from metarl.envs.oracle import ORACLE_SUFFIX

    if given is not None and given != env:
        raise ConfigError(f"--env {given!r} does not match the env of {source}, {env!r}; "
                          "--env names the env the run was trained on")
    if ":" in env.removesuffix(ORACLE_SUFFIX) and given is None:
        raise ConfigError(f"{source} was trained on the plug-in env {env!r}, which would be "
                          f"imported to load it; name it on the command line to allow that: "
                          f"--env {env}")


def use_torch_threads(threads: int) -> None:
    """PyTorch's thread count for this process (0: leave PyTorch's own, one per core)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
