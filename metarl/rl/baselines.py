"""The policies a MAML-TRPO run is compared with by ``evaluate --baselines`` (docs/protocol.md).

* **pretrained**: a policy trained on all tasks jointly, without adaptation (multi-task TRPO:
  the same trainer with ``num_steps: 0``), or an existing such run (``--pretrained DIR``);
* **random init**: a fresh policy of the run's architecture;
* **oracle**: multi-task TRPO on the family's oracle (``ENV+oracle``, :mod:`metarl.envs.oracle`),
  whose policy observes the task's parameters, so it needs no adaptation and bounds what
  adaptation can reach (or an existing such run, ``--oracle DIR``).

A trained baseline is found, or trained, under the evaluation folder (``baseline_policy``) and
is built with its own run's policy (``ARCHITECTURE_KEYS``: hidden sizes, nonlinearity,
normalize_actions), so a relu 100-100 pretrained run next to a tanh 64-64 MAML run is compared
as each was trained. How they are fine-tuned and scored is ``metarl.rl.evaluate``'s protocol.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from metarl.config import from_mapping
from metarl.core.maml import Params
from metarl.envs.oracle import ORACLE_SUFFIX
from metarl.rl.config import ARCHITECTURE_KEYS, MAMLTRPOConfig
from metarl.rl.trainer import CHECKPOINT_SCHEMA, MetaRLTrainer, build_policy
from metarl.runs import (
    CHECKPOINT_NAME,
    CheckpointError,
    load_run_checkpoint,
    load_state_dict_strict,
    new_run_dir,
)
from metarl.training import train


@dataclass(frozen=True)
class Baseline:
    """A trained baseline policy and the config it is sampled and fine-tuned with: the evaluated
    run's, with the baseline run's own ``ARCHITECTURE_KEYS`` (env and policy)."""

    theta: Params
    config: MAMLTRPOConfig
    checkpoint: Path
    iteration: int

    def describe(self) -> dict[str, Any]:
        """What curve.json records of it."""
        return {"run": str(self.checkpoint.parent), "iteration": self.iteration,
                **{k: list(v) if isinstance(v, tuple) else v
                   for k, v in architecture_of(dataclasses.asdict(self.config)).items()}}


@dataclass(frozen=True)
class Start:
    """A policy that ``evaluate`` samples on the held-out tasks: θ, the config it is sampled
    and fine-tuned with, whether it is fine-tuned (the oracle is not: its curve is fresh
    episodes of θ at every step), and the trained run it comes from, if any (curve.json's
    ``baselines``)."""

    theta: Params
    config: MAMLTRPOConfig
    fine_tune: bool = True
    trained: Baseline | None = None


@dataclass(frozen=True)
class BaselineSetting:
    """What a baseline is made from: the evaluated run's ``config``, the evaluation folder
    that trained baselines are kept under, the runs given for them (``--pretrained``,
    ``--oracle``; None: find or train one), their training ``iterations``, the evaluation
    ``seed``, the sizes of the run's policy, and whether to show progress on stderr."""

    config: MAMLTRPOConfig
    out_dir: Path
    given: Mapping[str, Path | None]
    iterations: int
    seed: int
    obs_size: int
    act_size: int
    progress: bool


class RLBaseline(Protocol):
    """A policy compared with MAML under the same protocol (a plug-in of
    ``evaluate --baselines``, listed in ``BASELINES``)."""

    #: The method's name, its curve's label.
    name: str

    def start(self, setting: BaselineSetting) -> Start:
        """The policy to sample and fine-tune like MAML's."""


class TrainedBaseline:
    """Multi-task TRPO on the run's family (``"pretrained"``, fine-tuned like MAML) or on its
    oracle family (``"oracle"``, not fine-tuned): ``baseline_policy``."""

    def __init__(self, name: str, *, fine_tune: bool):
        self.name, self.fine_tune = name, fine_tune

    def start(self, setting: BaselineSetting) -> Start:
        trained = baseline_policy(setting.config, self.name, setting.out_dir,
                                  given=setting.given[self.name],
                                  iterations=setting.iterations, progress=setting.progress)
        return Start(trained.theta, trained.config, self.fine_tune, trained)


class RandomInit:
    """A fresh policy of the run's architecture (``random_init``, seed ``seed + 1``)."""

    name = "random init"

    def start(self, setting: BaselineSetting) -> Start:
        return Start(random_init(setting.config, setting.seed + 1, setting.obs_size,
                                 setting.act_size), setting.config)


#: The baselines of ``evaluate --baselines``, in the order they run and are drawn.
BASELINES: tuple[RLBaseline, ...] = (TrainedBaseline("pretrained", fine_tune=True),
                                     RandomInit(), TrainedBaseline("oracle", fine_tune=False))


def random_init(config: MAMLTRPOConfig, seed: int, obs_size: int, act_size: int) -> Params:
    """The parameters of a fresh policy of ``config``'s architecture, initialised from
    ``seed``: the random-init baseline."""
    policy = build_policy(dataclasses.replace(config, seed=seed), obs_size, act_size)
    return {k: v.detach() for k, v in policy.named_parameters()}


def baseline_policy(config: MAMLTRPOConfig, kind: str, out_dir: Path, *, given: Path | None,
                    iterations: int, progress: bool) -> Baseline:
    """A policy trained on all tasks jointly, without adaptation (multi-task TRPO).

    ``kind``: ``"pretrained"`` (on the run's family) or ``"oracle"`` (on its oracle family,
    observing the task). Uses the run directory ``given`` if there is one (it must be a
    ``num_steps: 0`` run on that family); otherwise the newest run under ``out_dir/KIND`` that
    training one now would give (the same env and policy, at least ``iterations``: the
    evaluation's ``baseline_iterations``), or trains one there (``progress``: its bar on
    stderr). The policy is built from the baseline run's own saved config
    (``Baseline.config``).
    """
    env = config.env + (ORACLE_SUFFIX if kind == "oracle" else "")
    if given is not None:
        checkpoint = Path(given) / CHECKPOINT_NAME
    else:
        pre_config = dataclasses.replace(config, env=env, num_steps=0, num_batches=iterations,
                                         output_dir=str(out_dir / kind))
        checkpoint = _trained_baseline(out_dir / kind, pre_config)
        if checkpoint is None:
            with MetaRLTrainer(pre_config) as pre:
                pre_dir = new_run_dir(pre_config.output_dir, "pretrain", pre_config.task,
                                      config.seed)
                train(pre, pre_dir, progress=progress)
            checkpoint = pre_dir / CHECKPOINT_NAME
    state = load_run_checkpoint(checkpoint, algo="maml_trpo", schema=CHECKPOINT_SCHEMA)
    saved = state["config"]
    if saved.get("env") != env:
        raise CheckpointError(f"--{kind} {checkpoint.parent}: a run on {saved.get('env')!r}; "
                              f"the {kind} baseline of this run must be trained on {env!r}")
    saved_options = architecture_of(saved)["env_options"]
    if saved_options != architecture_of(dataclasses.asdict(config))["env_options"]:
        raise CheckpointError(f"--{kind} {checkpoint.parent}: a run with env_options="
                              f"{dict(saved_options)!r}; the {kind} baseline of this run must "
                              f"be trained with env_options={config.env_options!r}")
    if saved.get("num_steps") != 0:
        raise CheckpointError(f"--{kind} {checkpoint.parent}: a run with num_steps="
                              f"{saved.get('num_steps')!r}; a baseline is multi-task TRPO "
                              "(num_steps: 0)")
    # Its own policy (keys it lacks, as in MetaRLTrainer.load: the evaluated run's).
    own = from_mapping(MAMLTRPOConfig, {k: saved[k] for k in ARCHITECTURE_KEYS if k in saved},
                       source=str(checkpoint), base=config)
    policy = build_policy(own, *_sizes(state["policy"], source=str(checkpoint)))
    load_state_dict_strict(policy, state["policy"], source=str(checkpoint))
    return Baseline({k: v.detach() for k, v in policy.named_parameters()}, own, checkpoint,
                    int(state["iteration"]))


def _trained_baseline(folder: Path, pre_config: MAMLTRPOConfig) -> Path | None:
    """The newest checkpoint under ``folder`` of a ``num_steps: 0`` run with ``pre_config``'s
    env and policy and at least its ``num_batches`` iterations (None if there is none)."""
    want = architecture_of(dataclasses.asdict(pre_config))
    for checkpoint in sorted(folder.glob("*/" + CHECKPOINT_NAME), reverse=True):
        state = load_run_checkpoint(checkpoint, algo="maml_trpo", schema=CHECKPOINT_SCHEMA)
        saved = state["config"]
        if (saved.get("num_steps") == 0 and architecture_of(saved) == want
                and int(state["iteration"]) >= pre_config.num_batches):
            return checkpoint
    return None


def architecture_of(config: dict[str, Any]) -> dict[str, Any]:
    """A config's ``ARCHITECTURE_KEYS``, hashable: lists as tuples (as a saved YAML or checkpoint
    may hold them), ``env_options`` as sorted ``(name, value)`` pairs (none in a checkpoint
    written before the option existed: the family's defaults)."""
    out = {k: tuple(v) if isinstance(v, list) else v
           for k, v in ((k, config.get(k)) for k in ARCHITECTURE_KEYS)}
    out["env_options"] = tuple(sorted((out["env_options"] or {}).items()))
    return out


def _sizes(policy_state: dict[str, torch.Tensor], *, source: str) -> tuple[int, int]:
    """Observation and action sizes of a saved policy: the input width of ``layers.0.weight``
    and the output width of the last layer's weight (each ``[out, in]``)."""
    layers = sorted(int(key.split(".")[1]) for key in policy_state
                    if re.fullmatch(r"layers\.\d+\.weight", key))
    weights = [policy_state[f"layers.{i}.weight"] for i in layers]
    if not layers or layers[0] != 0 or any(weight.dim() != 2 for weight in weights):
        raise CheckpointError(f"{source} holds no policy of weights layers.0.weight .. "
                              f"layers.N.weight [out, in]; its keys: {sorted(policy_state)}")
    return weights[0].shape[1], weights[-1].shape[0]
