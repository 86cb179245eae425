"""The MAML-TRPO trainer: sample, adapt, sample again, step (``metarl.training.train`` drives it).

Randomness: every draw of meta-iteration ``i`` (its tasks, the seeds of its episodes, the
curvature subsample) comes from ``derive_seed(seed, i, purpose)``. A run is therefore fully
determined by its config and its iteration counter, and resuming from a checkpoint at
iteration ``i`` continues exactly as the uninterrupted run would have. The linear baseline is
refitted from scratch for every task batch and TRPO keeps no optimiser state, so the policy's
parameters and the iteration counter are the whole training state.

Non-finite values: a meta-iteration whose policy acts non-finitely, whose adapted parameters,
surrogate or meta-gradient are non-finite, or whose step leaves θ non-finite stops training with
a ``DivergenceError`` before anything of it is saved. Episodes that end at a non-finite env state
(a diverged physics step, flagged by the env) are counted in ``episodes/non_finite``, and a TRPO
step rejected because its KL or surrogate was non-finite in ``trpo/rejected_nonfinite`` (the
number of such rejections in a row), with a warning after ``REJECTED_IN_A_ROW_WARNING``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from metarl.checkpoint_format import RunSchema, check_run_state, tensors
from metarl.core.maml import Params, parameters_of
from metarl.device import cpu_state, resolve_device
from metarl.envs.base import NotATaskFamilyError
from metarl.envs.family import TaskFamily
from metarl.nonfinite import NonFiniteError, require_finite
from metarl.rl.config import ARCHITECTURE_KEYS, MetaRLConfig, task_family
from metarl.rl.device_sampler import on_device
from metarl.rl.episodes import Episodes
from metarl.rl.maml_trpo import MAMLTRPO, TaskData
from metarl.rl.policy import GaussianMLPPolicy
from metarl.rl.sampler import PolicySpec
from metarl.rl.sampling_options import warn_unused_ray_settings
from metarl.rl.workers import make_sampler
from metarl.runs import check_compatible, load_state_dict_strict

PURPOSES = {"tasks": 0, "train": 1, "valid": 2, "subsample": 3}

#: Warn when this many TRPO steps in a row were rejected for a non-finite KL or surrogate. Each
#: leaves θ unchanged, so a streak means the policy has stopped learning; one or two can pass
#: (the next iteration samples fresh episodes), but five fresh batches failing alike point at
#: θ or the settings (a step size that overflows), not at one unlucky batch.
REJECTED_IN_A_ROW_WARNING = 5
#: What a checkpoint of ``MetaRLTrainer.state()`` holds besides its algo, iteration and config:
#: the policy's weights.
CHECKPOINT_SCHEMA = RunSchema({"policy": tensors})

log = logging.getLogger(__name__)


def derive_seed(seed: int, iteration: int, purpose: str) -> int:
    """A 32-bit seed for one purpose of one meta-iteration (independent streams)."""
    sequence = np.random.SeedSequence([seed, iteration, PURPOSES[purpose]])
    return int(sequence.generate_state(1)[0])


def env_sizes(family: TaskFamily) -> tuple[int, int]:
    """Observation and action sizes of a task family (built with its env options)."""
    probe = family.make()
    try:
        spaces = [getattr(probe, name, None) for name in ("observation_space", "action_space")]
        for name, space in zip(("observation_space", "action_space"), spaces):
            if not isinstance(space, gym.spaces.Space):
                raise NotATaskFamilyError(f"{family.name}: the env's {name} is {space!r}, not a "
                                          "gymnasium space (set a gymnasium.spaces.Box in its "
                                          "__init__)")
        return int(np.prod(spaces[0].shape)), int(np.prod(spaces[1].shape))
    finally:
        probe.close()


def check_family_tasks(family: TaskFamily, config: MetaRLConfig) -> None:
    """Draw the first meta-iteration's tasks once, so that a family whose ``sample_tasks`` breaks
    the protocol fails (``NotATaskFamilyError``) before anything is built or written."""
    family.sample_tasks(config.meta_batch_size, seed=derive_seed(config.seed, 0, "tasks"))


def build_policy(config: MetaRLConfig, obs_size: int, act_size: int) -> GaussianMLPPolicy:
    torch.manual_seed(config.seed)
    return GaussianMLPPolicy(obs_size, act_size, hidden_sizes=config.hidden_sizes,
                             nonlinearity=config.nonlinearity,
                             init_log_std=math.log(config.init_std),
                             init_output_scale=config.init_mean_scale)


def build_sampler(config: MetaRLConfig, family: TaskFamily, spec: PolicySpec):
    """The sampler ``config`` asks for, for ``family`` (with its env options bound): this
    machine's (``make_sampler``) or Ray actors'."""
    warn_unused_ray_settings(config, log)  # the other sampler's settings, if given
    if config.sampler == "ray":
        from metarl.rl.ray_sampler import RaySampler  # Ray is an optional extra

        return RaySampler(family, spec, num_tasks=config.meta_batch_size,
                          episodes_per_task=config.fast_batch_size,
                          address=config.ray_address or None,
                          num_actors=config.ray_actors or None,
                          cpus_per_actor=config.ray_cpus_per_actor,
                          max_retries=config.ray_retries)
    return make_sampler(family, spec, num_tasks=config.meta_batch_size,
                        episodes_per_task=config.fast_batch_size,
                        num_workers=config.num_workers or None)


@dataclass(frozen=True)
class MetaBatch:
    """One meta-iteration's processed pre- and post-update episodes (the same with
    ``num_steps: 0``), θ'_i with its graph to θ (None without adaptation), and when each part
    was done (``time.perf_counter``)."""

    train_data: TaskData
    valid_data: TaskData
    adapted: Params | None
    start: float
    sampled_train: float
    adapted_at: float
    sampled_valid: float

    @property
    def train(self) -> Episodes:
        return self.train_data.episodes

    @property
    def valid(self) -> Episodes:
        return self.valid_data.episodes


class MetaRLTrainer:
    """A MAML-TRPO run: the policy, the learner, the sampler and the iteration counter (a
    ``metarl.training.Trainer``). Another meta-RL algorithm subclasses it with its own
    ``algo``, ``schema``, ``make_learner`` and ``outer_step`` (``metarl.rl.promp_trainer``)."""

    #: The algorithm's name: its checkpoints' ``algo``, the progress bar's label.
    algo = "maml_trpo"
    #: What its checkpoints hold besides algo, iteration and config.
    schema = CHECKPOINT_SCHEMA
    #: The outer step, as a non-finite policy after it is reported.
    outer_name = "TRPO step"

    def __init__(self, config: MetaRLConfig):
        self.config = config
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.family = task_family(config)  # the env with its options: every env is built from it
        obs_size, act_size = env_sizes(self.family)
        check_family_tasks(self.family, config)
        self.device = resolve_device(config.device)
        self.policy = build_policy(config, obs_size, act_size).to(self.device)
        self.learner = self.make_learner()
        self.spec = PolicySpec(obs_size, act_size, hidden_sizes=config.hidden_sizes,
                               nonlinearity=config.nonlinearity,
                               normalize_actions=config.normalize_actions)
        self.sampler = build_sampler(config, self.family, self.spec)
        self.iteration = 0
        self.rejected_non_finite = 0  # TRPO steps rejected for non-finite values, in a row
        self._warned_non_finite = False
        # Sampling stays on the CPU; off it, parameters go there and episodes come back.
        self.sampler = on_device(self.sampler, self.device)

    def make_learner(self) -> MAMLTRPO:
        """The learner of ``self.policy`` (its ``process``, ``adapt`` and outer step)."""
        return MAMLTRPO(self.policy, self.config)

    def close(self) -> None:
        self.sampler.close()

    def __enter__(self) -> MetaRLTrainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def name(self) -> str:
        """The progress bar's label."""
        return f"{self.algo} {self.config.env}"

    @property
    def layout(self) -> dict[str, list[str]]:
        """The adaptation curve (mean return before and after adaptation) and the time of an
        iteration's parts, each on one TensorBoard chart."""
        steps = self.config.num_steps
        curve = ["returns/step_0", f"returns/step_{steps}"] if steps else ["returns/step_0"]
        return {"adaptation curve (mean return)": curve,
                "time (s)": ["time/sampling_s", "time/adaptation_s", "time/optimisation_s"]}

    def theta(self) -> Params:
        return {k: v.detach().clone() for k, v in parameters_of(self.policy).items()}

    def step(self) -> dict[str, float]:
        """One meta-iteration (docs/protocol.md, steps 1-5); returns the values to log."""
        config = self.config
        batch = self.sample_batch()
        outer = self.outer_step(batch)
        done = time.perf_counter()
        require_finite(parameters_of(self.policy), f"the policy after the {self.outer_name}")
        self.iteration += 1
        train, valid = batch.train, batch.valid
        non_finite = int(train.non_finite.sum()) + (int(valid.non_finite.sum())
                                                    if config.num_steps else 0)
        self._note_non_finite(non_finite)

        sampling = (batch.sampled_train - batch.start) + (batch.sampled_valid - batch.adapted_at)
        env_steps = int(train.num_steps) + (int(valid.num_steps) if config.num_steps else 0)
        return {
            "returns/step_0": train.returns_per_task().mean().item(),
            f"returns/step_{config.num_steps}": valid.returns_per_task().mean().item(),
            # Early termination (the ant falling or jumping out of its healthy height) shows
            # here before it shows in the returns.
            "episodes/length_step_0": train.lengths.float().mean().item(),
            f"episodes/length_step_{config.num_steps}": valid.lengths.float().mean().item(),
            "policy/std": self.policy.log_std.detach().exp().mean().item(),
            **outer,
            "episodes/non_finite": non_finite,
            "time/sampling_s": sampling,
            "time/adaptation_s": batch.adapted_at - batch.sampled_train,
            "time/optimisation_s": done - batch.sampled_valid,
            "time/iteration_s": done - batch.start,
            "time/env_steps_per_s": env_steps / max(sampling, 1e-9),
        }

    def sample_batch(self) -> MetaBatch:
        """Steps 1-4 of a meta-iteration: this iteration's tasks, their pre-update episodes
        with θ, θ'_i (with its graph to θ) and the post-update episodes with θ'_i, processed."""
        config, learner, it = self.config, self.learner, self.iteration
        tasks = self.family.sample_tasks(config.meta_batch_size,
                                         seed=derive_seed(config.seed, it, "tasks"))
        start = time.perf_counter()
        theta = self.theta()
        train = self.sampler.sample(tasks, theta, seed=derive_seed(config.seed, it, "train"))
        sampled_train = time.perf_counter()
        check_actions(train, "before adaptation")
        train_data = learner.process(train)
        if config.num_steps == 0:  # the outer step alone: the pre-update episodes are all
            return MetaBatch(train_data, train_data, None, start, sampled_train, sampled_train,
                             sampled_train)
        # θ'_i with its graph to θ: sampled with here, differentiated in the outer step.
        adapted = learner.adapt(parameters_of(self.policy), train_data)
        adapted_at = time.perf_counter()
        require_finite(adapted, f"the adapted policy (inner step size {config.fast_lr:g})")
        valid = self.sampler.sample(tasks, {k: v.detach() for k, v in adapted.items()},
                                    seed=derive_seed(config.seed, it, "valid"))
        sampled_valid = time.perf_counter()
        check_actions(valid, "after adaptation")
        return MetaBatch(train_data, learner.process(valid), adapted, start, sampled_train,
                         adapted_at, sampled_valid)

    def outer_step(self, batch: MetaBatch) -> dict[str, float]:
        """Step 5, TRPO's: one trust-region step on θ; returns its values to log (``trpo/``)."""
        # On the CPU whatever the device, so that the subsample is the same on every device.
        generator = torch.Generator().manual_seed(derive_seed(self.config.seed, self.iteration,
                                                              "subsample"))
        info = self.learner.step(batch.train_data, batch.valid_data, generator,
                                 adapted=batch.adapted)
        self._note_rejected(info.rejected_non_finite)
        return {
            "trpo/kl": info.kl,
            "trpo/surrogate_improvement": info.surrogate_improvement,
            "trpo/line_search_steps": info.line_search_steps,
            "trpo/step_fraction": info.step_fraction,
            "trpo/accepted": float(info.accepted),
            "trpo/gradient_norm": info.gradient_norm,
            "trpo/rejected_nonfinite": self.rejected_non_finite,
        }

    def _note_rejected(self, rejected: bool) -> None:
        """Count this iteration's rejection in the streak; warn after
        ``REJECTED_IN_A_ROW_WARNING`` rejections in a row."""
        self.rejected_non_finite = self.rejected_non_finite + 1 if rejected else 0
        streak, done = self.rejected_non_finite, self.iteration + 1
        if streak and streak % REJECTED_IN_A_ROW_WARNING == 0:
            log.warning("warning: iteration %d: the TRPO step was rejected for a non-finite KL "
                        "or surrogate in %d iterations in a row, so the policy has not changed "
                        "since iteration %d (trpo/rejected_nonfinite)", done, streak,
                        done - streak)

    def _note_non_finite(self, episodes: int) -> None:
        """Warn at the first episodes that ended non-finite."""
        if episodes and not self._warned_non_finite:
            self._warned_non_finite = True
            log.warning("warning: iteration %d: %d episodes of %s ended at a non-finite state "
                        "the env flagged (they end there as terminated; counted per iteration "
                        "in episodes/non_finite)", self.iteration, episodes, self.config.env)

    def summary(self, values: Mapping[str, float]) -> str:
        """The progress bar's text: the returns before and after adaptation, the sampling
        speed, and any non-finite episodes or rejections."""
        after = values.get(f"returns/step_{self.config.num_steps}", float("nan"))
        text = (f"return before {values['returns/step_0']:.1f} after {after:.1f} | "
                f"{values['time/env_steps_per_s'] / 1000:.0f}k steps/s")
        if values["episodes/non_finite"]:
            text += f" | {values['episodes/non_finite']:.0f} non-finite episodes"
        if values.get("trpo/rejected_nonfinite"):
            text += f" | {values['trpo/rejected_nonfinite']:.0f} non-finite rejections in a row"
        return text

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: the policy (CPU tensors, whatever the device), the
        iteration and the config (the seeds of every iteration derive from them)."""
        return {"algo": self.algo, "policy": cpu_state(self.policy.state_dict()),
                "iteration": self.iteration, "config": dataclasses.asdict(self.config)}

    def load(self, state: dict[str, Any], *, source: str) -> None:
        """Restore a checkpoint of ``state()``, checked first against the schema of this
        algorithm's checkpoints (a CheckpointError names what is missing or wrong) and this
        run's env and policy (``ARCHITECTURE_KEYS``)."""
        check_run_state(state, source=source, algo=self.algo, schema=self.schema)
        check_compatible(state["config"], dataclasses.asdict(self.config),
                         ARCHITECTURE_KEYS, source=source)
        load_state_dict_strict(self.policy, state["policy"], source=source)
        self.iteration = state["iteration"]


def check_actions(episodes: Episodes, when: str) -> None:
    """``NonFiniteError`` if the policy took a non-finite action in any episode (``when``:
    which batch, for the message)."""
    bad = episodes.non_finite_actions()
    if bool(bad.any()):
        raise NonFiniteError(f"the policy's actions {when} are non-finite in {int(bad.sum())} of "
                             f"{bad.numel()} episodes")
