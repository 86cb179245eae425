"""RL² (Duan, Schulman, Chen, Bartlett, Sutskever & Abbeel, "RL²: Fast Reinforcement Learning via
Slow Reinforcement Learning", arXiv:1611.02779, 2016), its outer loop PPO (Schulman et al.,
"Proximal Policy Optimization Algorithms", arXiv:1707.06347, 2017).

One meta-iteration (:meth:`RL2Trainer.step`)::

    1. draw K tasks; sample M trials of J episodes of each (TrialSampler, GRU state carried
       across the episodes of a trial, reset between trials)
    2. V = μ + σ v̂ (the value head's outputs v̂, in returns); A = trial_gae(r, V, mask; γ, λ)
       over each whole trial; the value targets R = A + V
    3. with normalize_values, (μ, σ) <- the mean and std of this batch's R, the value head
       rescaled so that V is unchanged, and Adam's moments of that layer with it (PopArt,
       ``metarl.rl.value_scale``)
    4. for each of ppo_epochs passes, for each minibatch of whole trials (a random split):
           recompute the GRU over the trials (back-propagation through the whole trial),
           loss = -L_clip(ρ, Â) + c_V · ½ mean (v̂ - (R - μ)/σ)² - c_H · entropy;   an Adam step

The critic is the policy's value head on the GRU state, not ``metarl.rl.baseline``'s linear
baseline: that one fits a function of the observation and the time step within an episode, and
cannot see what the trial has taught the policy so far (which episode of the trial it is in,
what the earlier ones returned): the value of a state in the trial's second episode, where the
policy knows the task, is not its value in the first. The GRU state carries exactly that.

Advantages are standardised over all valid steps of the meta-iteration's batch (a common PPO
choice), and with ``normalize_values`` so are the value targets: the two losses share the GRU
and one clipped gradient norm, and raw discounted returns of a whole trial (tens in magnitude
on navigation_2d) give a value gradient a hundred times the policy's, which the clipping then
leaves almost no room beside (``metarl.rl.value_scale``). The trial's return is what RL² maximises, so the done flag of an inner episode does
not cut the bootstrap (``ppo.trial_gae``); γ = 0.99, λ = 0.95 are PPO's MuJoCo settings.

Randomness: the tasks, the trials' reset seeds and noise, and the minibatch order of iteration
``i`` come from ``derive_seed(seed, i, purpose)``, as in MAML-TRPO; Adam's moments and the value
scale are the rest of the state, saved with the policy, so a resumed run repeats the
uninterrupted one bit for bit.
Sampling runs on the CPU (in-process, over worker processes or Ray actors: ``build_sampler``),
with a copy of the policy that takes the learner's weights after each update; the update runs
on ``device`` (CUDA untested so far: no GPU where this was written).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from metarl.checkpoint_format import (
    CheckpointError,
    MayBeAbsent,
    RunSchema,
    check_run_state,
    optimizer_state,
    tensors,
)
from metarl.device import cpu_state, resolve_device
from metarl.envs.registry import TaskFamily
from metarl.nonfinite import NonFiniteError, finite_backward, require_finite
from metarl.rl.policy import gaussian_log_prob
from metarl.rl.ppo import clipped_surrogate, masked_mean, trial_gae
from metarl.rl.recurrent_policy import GRUGaussianPolicy
from metarl.rl.returns import normalize_advantages
from metarl.rl.rl2_config import ARCHITECTURE_KEYS, RL2Config, task_family
from metarl.rl.sampling_options import warn_unused_ray_settings
from metarl.rl.trainer import check_family_tasks, derive_seed, env_sizes
from metarl.rl.trial_sampler import Trials, TrialSampler
from metarl.rl.trial_shards import (
    ProcessTrialSampler,
    RayTrialSampler,
    make_trial_sampler,
    trial_plan,
)
from metarl.rl.value_scale import IDENTITY, ValueScale, batch_scale, rescale_head
from metarl.runs import check_compatible, load_optimizer_strict, load_state_dict_strict

log = logging.getLogger(__name__)

#: What a checkpoint of ``RL2Trainer.state()`` holds besides its algo, iteration and config.
#: ``value_scale`` (``ValueScale.state_dict``) may be absent from a checkpoint written before
#: value targets were standardised: evaluation needs only the policy, a resume refuses it.
CHECKPOINT_SCHEMA = RunSchema({"policy": tensors, "optimizer": optimizer_state,
                               "value_scale": MayBeAbsent(tensors)})


@dataclasses.dataclass
class PPOBatch:
    """What the PPO loss needs of some trials, rows flattened: ``[T, N, ...]`` (N trials)."""

    inputs: Tensor
    actions: Tensor
    log_probs: Tensor
    advantages: Tensor
    value_targets: Tensor
    mask: Tensor

    def rows(self, index: Tensor) -> PPOBatch:
        """The trials ``index`` (a minibatch)."""
        return PPOBatch(*(getattr(self, f.name)[:, index] for f in dataclasses.fields(self)))


def ppo_batch(trials: Trials, gamma: float, lam: float, scale: ValueScale = IDENTITY,
              normalize_values: bool = False) -> tuple[PPOBatch, ValueScale]:
    """The PPO batch of ``trials`` and the value scale its targets are in::

        V = scale.returns(v̂)                 (the sampler's raw value-head outputs v̂, in returns)
        A = trial_gae(r, V, mask; γ, λ),   R = A + V
        scale' = batch_scale(R, mask) if normalize_values else scale
        targets = scale'.standardise(R)

    Advantages are standardised over every valid step; rows ``[T, K, M] -> [T, K·M]``. The
    caller rescales the value head from ``scale`` to ``scale'`` (``value_scale.rescale_head``).
    """
    values = scale.returns(trials.values)
    adv = trial_gae(trials.rewards, values, trials.mask, gamma, lam)
    targets = adv + values
    new_scale = batch_scale(targets, trials.mask) if normalize_values else scale
    normalised = normalize_advantages(adv, trials.mask, dims=(0, 1, 2))

    def flat(x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1, *x.shape[3:])

    batch = PPOBatch(flat(trials.inputs), flat(trials.actions), flat(trials.log_probs),
                     flat(normalised), flat(new_scale.standardise(targets)), flat(trials.mask))
    return batch, new_scale


def ppo_loss(policy: GRUGaussianPolicy, batch: PPOBatch, *, clip_eps: float, value_coef: float,
             entropy_coef: float) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO loss of whole trials, the GRU recomputed over each from its zero state::

        loss = -L_clip + value_coef · ½ mean_t m (v̂_t - R_t)² - entropy_coef · H[π]

    ``v̂`` is the value head's output and ``R`` the batch's value targets, both in the units
    of ``ppo_batch``'s value scale (standardised returns with ``normalize_values``).

    Returns the loss and its parts (detached): ``policy``, ``value``, ``entropy``,
    ``clip_fraction``, ``approx_kl`` (``mean(ρ - 1 - log ρ)``, Schulman's unbiased estimator).
    """
    alive = batch.mask != 0
    h = policy.unroll(batch.inputs, alive)
    mean, log_std, value = policy.heads(h)
    log_prob = gaussian_log_prob(mean, log_std, batch.actions)
    surrogate, clip_fraction = clipped_surrogate(log_prob, batch.log_probs, batch.advantages,
                                                 batch.mask, clip_eps)
    value_loss = 0.5 * masked_mean((value - batch.value_targets).square(), batch.mask)
    entropy = policy.entropy()
    loss = -surrogate + value_coef * value_loss - entropy_coef * entropy
    log_ratio = torch.where(alive, log_prob - batch.log_probs, 0.0).detach()
    approx_kl = masked_mean(log_ratio.exp() - 1.0 - log_ratio, batch.mask)
    return loss, {"policy": -surrogate.detach(), "value": value_loss.detach(),
                  "entropy": entropy.detach(), "clip_fraction": clip_fraction,
                  "approx_kl": approx_kl}


def build_policy(config: RL2Config, obs_size: int, act_size: int) -> GRUGaussianPolicy:
    """The run's policy, initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    return GRUGaussianPolicy(obs_size, act_size, config.hidden_size,
                             init_log_std=math.log(config.init_std),
                             init_output_scale=config.init_mean_scale)


def build_sampler(config: RL2Config, family: TaskFamily, *, num_tasks: int | None = None,
                  trials_per_task: int | None = None
                  ) -> TrialSampler | ProcessTrialSampler | RayTrialSampler:
    """The trial sampler ``config`` asks for (``sampler``, ``num_workers``, ``ray_*``, as for
    MAML-TRPO): in-process, over worker processes or over Ray actors, the same trials from
    each. ``num_tasks``, ``trials_per_task``: other sizes, for evaluation."""
    sizes = {"num_tasks": num_tasks or config.meta_batch_size,
             "trials_per_task": trials_per_task or config.trials_per_task,
             "episodes_per_trial": config.episodes_per_trial,
             "normalize_actions": config.normalize_actions}
    warn_unused_ray_settings(config, log)  # the other sampler's settings, if given
    if config.sampler == "ray":
        num_tasks = sizes.pop("num_tasks")
        plan, _ = trial_plan(family, hidden_size=config.hidden_size, **sizes)
        return RayTrialSampler(family, plan, num_tasks=num_tasks,
                               address=config.ray_address or None,
                               num_actors=config.ray_actors or None,
                               cpus_per_actor=config.ray_cpus_per_actor,
                               max_retries=config.ray_retries)
    return make_trial_sampler(family, hidden_size=config.hidden_size,
                              num_workers=config.num_workers or None, **sizes)


class RL2Trainer:
    """An RL² run: the policy, Adam, the trial sampler and the iteration counter (a
    ``metarl.training.Trainer``)."""

    def __init__(self, config: RL2Config):
        self.config = config
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.family = task_family(config)
        obs_size, act_size = env_sizes(self.family)
        check_family_tasks(self.family, config)
        self.device = resolve_device(config.device)
        # The learner's policy on its device, and a CPU copy the sampler steps (one path for
        # every device: the copy takes the learner's weights after each update).
        self.policy = build_policy(config, obs_size, act_size).to(self.device)
        self.sampling_policy = copy.deepcopy(self.policy).cpu()
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr)
        self.sampler = build_sampler(config, self.family)
        # V = μ + σ v̂: the return the value head's output v̂ stands for (metarl.rl.value_scale)
        self.value_scale = IDENTITY
        self.iteration = 0

    def close(self) -> None:
        self.sampler.close()

    def __enter__(self) -> RL2Trainer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def name(self) -> str:
        """The progress bar's label."""
        return f"rl2 {self.config.env}"

    @property
    def layout(self) -> dict[str, list[str]]:
        """The return of each episode of the trial on one chart (adaptation within the trial),
        and the time of an iteration's parts."""
        return {"returns within the trial (mean episode return)":
                [f"returns/episode_{k}" for k in range(self.config.episodes_per_trial)],
                "time (s)": ["time/sampling_s", "time/optimisation_s"]}

    def sample(self, tasks: list[dict], seed: int) -> Trials:
        """Trials of ``tasks`` with the current policy (on the CPU); ``NonFiniteError`` where it
        acted non-finitely."""
        trials = self.sampler.sample(tasks, self.sampling_policy, seed)
        bad = ~torch.isfinite(trials.actions).all(-1).all(0)
        if bool(bad.any()):
            raise NonFiniteError(f"the policy's actions are non-finite in {int(bad.sum())} of "
                                 f"{bad.numel()} trials")
        return trials

    def step(self) -> dict[str, float]:
        """One meta-iteration (the module docstring); returns the values to log."""
        config, it = self.config, self.iteration
        start = time.perf_counter()
        tasks = self.family.sample_tasks(config.meta_batch_size,
                                         seed=derive_seed(config.seed, it, "tasks"))
        trials = self.sample(tasks, derive_seed(config.seed, it, "train"))
        sampled = time.perf_counter()
        batch, scale = ppo_batch(trials.to(self.device), config.gamma, config.gae_lambda,
                                 self.value_scale, config.normalize_values)
        rescale_head(self.policy.value, self.value_scale, scale, self.optimizer)
        self.value_scale = scale
        require_finite({"advantages": batch.advantages, "value targets": batch.value_targets},
                       "the PPO batch")
        generator = torch.Generator().manual_seed(derive_seed(config.seed, it, "subsample"))
        parts = self.update(batch, generator)
        self.sampling_policy.load_state_dict(cpu_state(self.policy.state_dict()))
        done = time.perf_counter()
        self.iteration += 1
        returns = trials.returns_per_episode()  # [J, K]
        values = {f"returns/episode_{k}": returns[k].mean().item()
                  for k in range(config.episodes_per_trial)}
        values.update({
            "returns/trial": returns.sum(0).mean().item(),
            **{f"losses/{name}": value for name, value in parts.items()
               if name in ("policy", "value", "entropy")},
            "ppo/clip_fraction": parts["clip_fraction"], "ppo/approx_kl": parts["approx_kl"],
            "ppo/grad_norm": parts["grad_norm"],
            "values/return_mean": scale.mean, "values/return_std": scale.std,
            "episodes/length": trials.lengths.float().mean().item(),
            "episodes/non_finite": float(trials.non_finite.sum()),
            "time/sampling_s": sampled - start,
            "time/optimisation_s": done - sampled,
            "time/iteration_s": done - start,
            "time/env_steps_per_s": trials.num_steps / max(sampled - start, 1e-9),
        })
        return values

    def update(self, batch: PPOBatch, generator: torch.Generator) -> dict[str, float]:
        """``ppo_epochs`` passes of Adam over ``batch``, ``num_minibatches`` minibatches of whole
        trials each, in the order ``generator`` draws; the mean of each loss part over the last
        pass (and of the gradient's norm before clipping, ``grad_norm``). ``NonFiniteError``
        before a step whose loss or gradient is non-finite."""
        config = self.config
        rows = batch.mask.shape[1]
        params = list(self.policy.parameters())
        last: dict[str, list[float]] = {}
        for _ in range(config.ppo_epochs):
            last = {}
            for index in torch.randperm(rows, generator=generator).chunk(config.num_minibatches):
                loss, parts = ppo_loss(self.policy, batch.rows(index.to(self.device)),
                                       clip_eps=config.clip_eps, value_coef=config.value_coef,
                                       entropy_coef=config.entropy_coef)
                finite_backward(loss, self.optimizer, self.policy, loss_name="the PPO loss",
                                gradient_name="the PPO gradient")
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    params, config.max_grad_norm or math.inf)  # the norm before clipping
                self.optimizer.step()
                parts["grad_norm"] = grad_norm
                for name, value in parts.items():
                    last.setdefault(name, []).append(float(value))
        require_finite(dict(self.policy.named_parameters()), "the policy after the PPO update")
        return {name: sum(v) / len(v) for name, v in last.items()}

    def summary(self, values: Mapping[str, float]) -> str:
        """The progress bar's text: the returns of the first and last episode of the trial, and
        the sampling speed."""
        last = self.config.episodes_per_trial - 1
        return (f"return episode 0 {values['returns/episode_0']:.1f} episode {last} "
                f"{values[f'returns/episode_{last}']:.1f} | "
                f"{values['time/env_steps_per_s'] / 1000:.0f}k steps/s")

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: the policy, Adam's state and the value scale (CPU tensors),
        the iteration and the config (the seeds of every iteration derive from them)."""
        return {"algo": "rl2", "policy": cpu_state(self.policy.state_dict()),
                "optimizer": cpu_state(self.optimizer.state_dict()),
                "value_scale": self.value_scale.state_dict(),
                "iteration": self.iteration, "config": dataclasses.asdict(self.config)}

    def load(self, state: dict[str, Any], *, source: str) -> None:
        """Restore a checkpoint of ``state()``, checked against the schema and this run's env and
        policy (``ARCHITECTURE_KEYS``) first."""
        check_run_state(state, source=source, algo="rl2", schema=CHECKPOINT_SCHEMA)
        if state.get("value_scale") is None:
            raise CheckpointError(f"{source} was written before RL2 kept a value scale (its value "
                                  "head predicts raw returns); it can be evaluated but not "
                                  "resumed: train a new run")
        check_compatible(state["config"], dataclasses.asdict(self.config), ARCHITECTURE_KEYS,
                         source=source)
        load_state_dict_strict(self.policy, state["policy"], source=source)
        load_optimizer_strict(self.optimizer, state["optimizer"], source=source)
        self.sampling_policy.load_state_dict(cpu_state(self.policy.state_dict()))
        self.value_scale = value_scale_of(state["value_scale"], source=source)
        self.iteration = state["iteration"]


def value_scale_of(state: Mapping[str, Tensor], *, source: str) -> ValueScale:
    """The ``ValueScale`` of a checkpoint's ``value_scale`` entry; a CheckpointError where it
    lacks ``mean`` or ``std`` or holds an invalid one."""
    if set(state) != {"mean", "std"} or any(v.numel() != 1 for v in state.values()):
        shapes = {name: tuple(value.shape) for name, value in state.items()}
        raise CheckpointError(f"{source}: value_scale must hold one number each under 'mean' "
                              f"and 'std', got shapes {shapes}")
    try:
        return ValueScale.from_state_dict(state)
    except ValueError as error:
        raise CheckpointError(f"{source}: value_scale is invalid ({error})") from None
