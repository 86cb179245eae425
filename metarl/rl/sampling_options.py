"""Where a meta-RL run samples (``--sampler``, ``--num-workers``, ``--ray-*``): the options,
declared once for every meta-RL config (MAML-TRPO's and ProMP's ``MetaRLConfig``, RL²'s
``RL2Config``), and their rules.

The samplers draw the same episodes whichever samples (in-process, worker processes, Ray actors:
the feed-forward sampler's bit for bit, RL²'s to the float32 rounding of its GRU over fewer
rows), so a resumed run may change every one of these (``RESUME_MAY_CHANGE``).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

from metarl.config import THREADS_MAX, ConfigError, option
from metarl.ray_runtime import RAY_EXTRA

#: Where episodes are sampled (``sampler``): this machine's processes, or Ray actors.
SAMPLERS = ("local", "ray")

#: Each option's default, help and range, by field name.
_OPTIONS: dict[str, tuple[Any, str, dict[str, Any]]] = {
    "sampler": ("local", "where episodes are sampled: local (this machine: in-process or "
                "--num-workers processes) or ray (Ray actors on a local Ray runtime, or on the "
                "cluster at --ray-address; needs the [ray] extra); the episodes are identical",
                {"choices": SAMPLERS}),
    "num_workers": (0, "local sampler worker processes (0: choose for this machine)",
                    {"minimum": 0, "exclusive_minimum": False, "maximum": THREADS_MAX}),
    "ray_address": ("", "with --sampler ray: the Ray cluster to join: auto (the one this "
                    "machine is part of), host:port or ray://host:port; empty: start a local "
                    "Ray runtime for the run", {"metavar": "ADDRESS"}),
    "ray_actors": (0, "with --sampler ray: sampler actors (0: one per --ray-cpus-per-actor "
                   "CPUs free in the cluster, at most --meta-batch-size)",
                   {"minimum": 0, "exclusive_minimum": False, "maximum": 4096}),
    "ray_cpus_per_actor": (1.0, "with --sampler ray: CPUs each sampler actor reserves (its "
                           "physics threads: this, at least 2)",
                           {"minimum": 0.0, "maximum": 256}),
    "ray_retries": (3, "with --sampler ray: times an actor's share of a meta-batch is sampled "
                    "again, with the same seeds, when its actor dies (process killed, node "
                    "lost)", {"minimum": 0, "exclusive_minimum": False, "maximum": 100}),
}

#: The settings of the Ray sampler, with their defaults.
RAY_DEFAULTS = {name: default for name, (default, _, _) in _OPTIONS.items()
                if name.startswith("ray_")}
#: The sampling settings a resumed run may change (its output does not depend on them).
RESUME_MAY_CHANGE = tuple(_OPTIONS)


def sampling_option(name: str) -> Any:
    """The config field ``name`` (one of ``RESUME_MAY_CHANGE``), as every meta-RL config
    declares it."""
    default, help_text, rules = _OPTIONS[name]
    return option(default, help_text, **rules)


def check_sampler(config: Any) -> None:
    """A ConfigError where ``config.sampler`` is ``ray`` and Ray is not installed."""
    if config.sampler == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError(f"sampler='ray' needs Ray, which is not installed; install it "
                          f"with: {RAY_EXTRA}")


def unused_ray_settings(config: Any) -> list[str]:
    """The Ray sampler's settings given away from their defaults while the local sampler
    samples (ignored, with a warning: a run resumed with ``--sampler local`` keeps them)."""
    if config.sampler == "ray":
        return []
    return [f"{name}={getattr(config, name)!r}" for name, default in RAY_DEFAULTS.items()
            if getattr(config, name) != default]


def warn_unused_ray_settings(config: Any, log: logging.Logger) -> None:
    """Log one warning naming the Ray settings ``config`` gives while the local sampler samples
    (``unused_ray_settings``), or the local workers it asks for while Ray actors sample."""
    unused = unused_ray_settings(config)
    if unused:
        log.warning("warning: %s ignored: the local sampler samples (add --sampler ray to use "
                    "Ray)", ", ".join(unused))
    elif config.sampler == "ray" and config.num_workers:
        log.warning("warning: num_workers=%d ignored: Ray actors sample (--ray-actors sets how "
                    "many)", config.num_workers)
