"""``evaluate`` for MAML-TRPO runs: the adaptation curve on held-out tasks (docs/protocol.md).

For k = 0..K: sample ``episodes_per_task`` episodes (default: the run's ``fast_batch_size``) of
every held-out task with the policy after k vanilla policy-gradient steps, record the mean
undiscounted return, then take the next step on those episodes (α = fast_lr for the first step,
α·later_lr_scale after; the paper's scale was 0.5 and its test batches 4000 env steps, i.e. 40
navigation episodes of 100 or 20 MuJoCo episodes of 200). With ``env_steps_per_task`` the batches
are drawn as the paper's sampler drew them instead: a fixed number of env steps per task, which
holds more episodes, and more of the short ones, where episodes end early
(:mod:`metarl.rl.step_budget`).
Held-out tasks come from ``seed + EVALUATION_SEED_OFFSET``, disjoint from training's seeds.

Baselines (``--baselines``, :mod:`metarl.rl.baselines`: pretrained, random init, oracle) are
fine-tuned the same way, each sampled and fine-tuned with its own policy; the evaluation
protocol (tasks, episodes, seeds, step sizes, γ, λ) is the evaluated run's.

The oracle is not adapted, as in the paper (its curve is flat: at each k, fresh episodes of the
same policy on the same held-out tasks and seeds). Fine-tuning it would mislead: a multi-task
policy that knows the task is nearly deterministic, and a policy-gradient step of size α on it
(the gradient grows as 1/σ²) throws it far off (docs/results.md, navigation_2d, "Later step
size and the oracle").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from metarl.config import ConfigError
from metarl.core.maml import Params, adapt, stack_params
from metarl.evaluation import EVALUATION_SEED_OFFSET, evaluation_step_sizes, report
from metarl.evaluation_options import EvalDefaults, EvaluateOptions, with_defaults
from metarl.nonfinite import NonFiniteError, require_finite
from metarl.rl.baselines import BASELINES, Baseline, BaselineSetting, Start, architecture_of
from metarl.rl.config import ARCHITECTURE_KEYS, MAMLTRPOConfig, task_family
from metarl.rl.published import PUBLISHED_MAML, PUBLISHED_ORACLE, published_curves
from metarl.rl.step_budget import sample_env_steps, slots_for
from metarl.rl.trainer import MetaRLTrainer, check_actions, derive_seed
from metarl.runs import Logger


def eval_defaults(config: MAMLTRPOConfig) -> EvalDefaults:
    """``evaluate``'s defaults for a MAML-TRPO run: the paper's 40 held-out tasks, 4 steps on
    navigation_2d and 3 elsewhere, the later steps of half the step size, no baselines."""
    steps = 4 if config.env == "navigation_2d" else 3
    return EvalDefaults(num_tasks=40, steps=steps, later_lr_scale=0.5, baselines=False)


def adaptation_returns(trainer: MetaRLTrainer, theta: Params, tasks: list[dict], *,
                       sizes: list[float], seed: int, env_steps: int | None = None,
                       progress: bool = False, desc: str = "adaptation curve") -> np.ndarray:
    """Mean return of each task after 0..len(sizes) policy-gradient steps: ``[tasks, K + 1]``.

    Each step samples the trainer's ``fast_batch_size`` episodes per task, or with
    ``env_steps`` a batch of that many env steps per task (``sample_env_steps``). A step of
    size 0 is not taken (the oracle's curve: the same policy on fresh episodes).

    A policy that is non-finite, or acts non-finitely, after some step is a ``NonFiniteError``:
    its episodes would end at once with reward 0 and score better than any real policy. So is
    an episode that ended at a non-finite state the env flagged (a diverged physics step): its
    return stops there, which can read better than an episode run to the end, so no score is
    given. ``progress``: a bar of the steps sampled, headed ``desc``, on stderr."""
    learner = trainer.learner
    # θ may come from a checkpoint (CPU); it adapts on the trainer's device.
    params = {k: v.detach().to(trainer.device)
              for k, v in stack_params(theta, len(tasks)).items()}
    returns = []
    with tqdm(total=len(sizes) + 1, desc=desc, unit="step", disable=not progress,
              dynamic_ncols=True) as bar:
        for k in range(len(sizes) + 1):
            after = f"after {k} adaptation step{'' if k == 1 else 's'}"
            require_finite(params, f"the policy {after}")
            step_seed = derive_seed(seed, k, "valid")
            episodes = (trainer.sampler.sample(tasks, params, seed=step_seed)
                        if env_steps is None else
                        sample_env_steps(trainer.sampler, tasks, params, step_seed, env_steps))
            check_actions(episodes, after)
            check_env_states(episodes, after)
            returns.append(episodes.returns_per_task().cpu().numpy())
            if k < len(sizes) and sizes[k] != 0:
                start = {name: v.clone().requires_grad_(True) for name, v in params.items()}
                adapted = adapt(learner.inner_loss, start, learner.process(episodes),
                                step_size=sizes[k], first_order=True)
                params = {name: v.detach() for name, v in adapted.items()}
            bar.update(1)
    return np.stack(returns, axis=1)


def check_env_states(episodes, after: str) -> None:
    """``NonFiniteError`` when an episode ended at a non-finite state the env flagged, naming
    how many and on which of the held-out tasks (``after``: which policy sampled them)."""
    flagged = episodes.non_finite  # [K tasks, E episodes]
    if bool(flagged.any()):
        tasks = flagged.any(dim=1).nonzero().flatten().tolist()
        raise NonFiniteError(
            f"{int(flagged.sum())} of {flagged.numel()} episodes of the policy {after} ended at "
            f"a state the env flagged non-finite (held-out task(s) "
            f"{', '.join(map(str, tasks[:5]))}{', ...' if len(tasks) > 5 else ''}); their "
            f"returns stop there and could read better than complete episodes, so no score "
            f"is given")


@dataclass(frozen=True)
class EvalProtocol:
    """What every curve of one evaluation shares: the held-out tasks, ``episodes`` sampled per
    task at each step (with ``env_steps``, the episodes run side by side in batches of that
    many env steps), the ``step_sizes`` of the K = ``steps`` adaptation steps, the seed; and
    the training iterations of the baselines trained here."""

    tasks: list[dict]
    steps: int
    step_sizes: list[float]
    episodes: int
    seed: int
    env_steps: int | None = None
    baseline_iterations: int = 0


def eval_protocol(config: MAMLTRPOConfig, options: EvaluateOptions) -> EvalProtocol:
    """The evaluation protocol of ``options`` (validated, their defaults filled in:
    ``eval_defaults``) for the run ``config``; a ConfigError for an option this run cannot
    take (before anything is built or written)."""
    sizes = evaluation_step_sizes(config.fast_lr, options.steps, options.later_lr_scale)
    seed = config.seed if options.seed is None else options.seed
    family = task_family(config)
    tasks = family.sample_tasks(options.num_tasks, seed=seed + EVALUATION_SEED_OFFSET)
    episodes = (config.fast_batch_size if options.episodes_per_task is None
                else options.episodes_per_task)
    env_steps = options.env_steps_per_task
    if env_steps is not None:
        horizon = family.horizon
        if options.episodes_per_task is not None:
            raise ConfigError(f"give episodes_per_task={options.episodes_per_task} or "
                              f"env_steps_per_task={env_steps}, not both: one sizes the "
                              "evaluation batch by episodes, the other by env steps")
        if env_steps < horizon:
            raise ConfigError(f"env_steps_per_task={env_steps} must be >= the horizon of "
                              f"{config.env} ({horizon}): a batch holds at least one episode")
        episodes = slots_for(env_steps, horizon)
    return EvalProtocol(tasks, options.steps, sizes, episodes, seed, env_steps,
                        baseline_iterations(config, options))


def baseline_iterations(config: MAMLTRPOConfig, options: EvaluateOptions) -> int:
    """The training iterations of the pretrained and oracle baselines trained here:
    ``--baseline-iterations``, else the run's ``num_batches``; a ConfigError where that is
    below 1 (a baseline would be left untrained). (``with_defaults`` refuses the baselines'
    options without ``--baselines``.)"""
    given = options.baseline_iterations
    if given is not None and given < 1:
        raise ConfigError(f"--baseline-iterations={given} must be >= 1 for MAML-TRPO runs: it "
                          "trains the pretrained and oracle baselines (0 would leave them "
                          "untrained; the random-init curve shows that)")
    trains = options.baselines and (options.pretrained is None or options.oracle is None)
    if given is None and trains and config.num_batches < 1:
        raise ConfigError(f"the baselines would train for {config.num_batches} iterations (the "
                          "run's num_batches); give --baseline-iterations N >= 1")
    return config.num_batches if given is None else given


def evaluate_rl(config: MAMLTRPOConfig, state: dict[str, Any], out_dir: Path,
                options: EvaluateOptions, *, source: str, progress: bool = False,
                label: str = "maml") -> dict[str, Any]:
    """Adaptation curves of the meta-trained policy of checkpoint ``state`` of the run
    ``config`` (and baselines); writes curve.json/.csv/.png and TensorBoard events into
    ``out_dir``; returns the JSON. Options left unset take ``eval_defaults``; ``progress``:
    bars of the baselines' training and of each curve's steps on stderr; ``label`` names the
    run's curve (``maml`` for MAML-TRPO, ``promp`` for ProMP)."""
    options = with_defaults(options, eval_defaults(config))
    protocol = eval_protocol(config, options)
    curves, baselines = rl_curves(config, state, protocol, out_dir, options, source=source,
                                  progress=progress, label=label)
    log_curves(out_dir, curves)
    meta = rl_meta(config, protocol, int(state["iteration"]), baselines)
    references = published_curves(config.env, protocol.steps, with_oracle=options.baselines)
    return report(out_dir, curves, metric="mean return", table_metric="return", meta=meta,
                  title=f"{config.env}: held-out adaptation ({options.num_tasks} tasks, 95% CI)",
                  iterations=int(state["iteration"]), references=references,
                  tasks=protocol.tasks)


def rl_curves(config: MAMLTRPOConfig, state: dict[str, Any], protocol: EvalProtocol,
              out_dir: Path, options: EvaluateOptions, *, source: str, progress: bool,
              label: str = "maml") -> tuple[dict[str, np.ndarray], dict[str, Baseline]]:
    """Held-out returns ``[tasks, K + 1]`` of the run's policy (checkpoint ``state``) and, with
    ``options.baselines``, of each of ``baselines.BASELINES`` (pretrained, random init, oracle:
    the oracle not fine-tuned); also the trained baselines used (loaded, or trained under
    ``out_dir``). A non-finite policy or env state is a ``NonFiniteError`` naming the curve."""
    trained: dict[str, Baseline] = {}

    def curve(label: str, start: Start) -> np.ndarray:
        try:
            return evaluators.curve(start.theta, start.config, fine_tune=start.fine_tune,
                                    desc=f"{label}: adaptation curve")
        except NonFiniteError as error:
            raise NonFiniteError(f"evaluating {label} on {config.env}: {error}") from error

    with Evaluators(config, protocol, progress=progress) as evaluators:
        maml = evaluators.trainer(config)
        maml.load(state, source=source)
        curves = {label: curve(label, Start(maml.theta(), config))}
        given = {kind: Path(getattr(options, kind)) if getattr(options, kind) else None
                 for kind in ("pretrained", "oracle")}
        setting = BaselineSetting(config, out_dir, given, protocol.baseline_iterations,
                                  protocol.seed, maml.spec.obs_size, maml.spec.act_size,
                                  progress)
        for baseline in BASELINES if options.baselines else ():
            start = baseline.start(setting)
            curves[baseline.name] = curve(baseline.name, start)
            if start.trained is not None:
                trained[baseline.name] = start.trained
    return curves, trained


class Evaluators:
    """A ``MetaRLTrainer`` (policy, MAML-TRPO learner, sampler) sized for the evaluation
    (``len(tasks)`` tasks x ``episodes`` per task) for each env and policy
    (``ARCHITECTURE_KEYS``) evaluated: the run's own and each baseline's where it differs.
    Each is built on first use; all close together. ``progress``: a bar of each curve's steps
    on stderr."""

    def __init__(self, config: MAMLTRPOConfig, protocol: EvalProtocol, *,
                 progress: bool = False):
        self.config, self.protocol, self.progress = config, protocol, progress
        self._trainers: dict[tuple, MetaRLTrainer] = {}

    def trainer(self, run: MAMLTRPOConfig) -> MetaRLTrainer:
        """The evaluated run's config with ``run``'s env and policy, sized for the evaluation."""
        key = tuple(architecture_of(dataclasses.asdict(run)).values())
        if key not in self._trainers:
            architecture = dict(zip(ARCHITECTURE_KEYS, key))
            architecture["env_options"] = dict(architecture["env_options"])  # items -> dict
            self._trainers[key] = MetaRLTrainer(dataclasses.replace(
                self.config, **architecture,
                meta_batch_size=len(self.protocol.tasks), fast_batch_size=self.protocol.episodes))
        return self._trainers[key]

    def curve(self, theta: Params, run: MAMLTRPOConfig, *, fine_tune: bool = True,
              desc: str = "adaptation curve") -> np.ndarray:
        """Held-out returns of θ, sampled and fine-tuned with ``run``'s env and policy (with
        ``fine_tune=False``, steps of size 0: fresh episodes of θ itself); ``desc``: the bar's
        heading."""
        protocol = self.protocol
        sizes = protocol.step_sizes if fine_tune else [0.0] * protocol.steps
        return adaptation_returns(self.trainer(run), theta, protocol.tasks, sizes=sizes,
                                  seed=protocol.seed + EVALUATION_SEED_OFFSET,
                                  env_steps=protocol.env_steps, progress=self.progress, desc=desc)

    def close(self) -> None:
        for trainer in self._trainers.values():
            trainer.close()

    def __enter__(self) -> Evaluators:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def log_curves(out_dir: Path, curves: dict[str, np.ndarray]) -> None:
    """Each method's mean curve as TensorBoard scalars ``evaluation/{method}_return`` (spaces
    as underscores), the step being the number of adaptation steps."""
    logger = Logger(out_dir)
    for label, values in curves.items():
        for k, value in enumerate(values.mean(axis=0)):
            logger.scalars({f"evaluation/{label.replace(' ', '_')}_return": value}, k)
    logger.close()


def rl_meta(config: MAMLTRPOConfig, protocol: EvalProtocol, iteration: int,
            baselines: dict[str, Baseline]) -> dict[str, Any]:
    """What curve.json records besides the curves: the protocol, the evaluated run's
    iteration and policy, the baselines used and the published numbers."""
    return {"env": config.env, "num_tasks": len(protocol.tasks), "steps": protocol.steps,
            "episodes_per_task": protocol.episodes, "env_steps_per_task": protocol.env_steps,
            "step_sizes": protocol.step_sizes,
            "seed": protocol.seed, "run_seed": config.seed, "iteration": iteration,
            "hidden_sizes": list(config.hidden_sizes), "nonlinearity": config.nonlinearity,
            "normalize_actions": config.normalize_actions,
            "baselines": {kind: b.describe() for kind, b in baselines.items()},
            "published_maml": PUBLISHED_MAML.get(config.env),
            "published_oracle": PUBLISHED_ORACLE.get(config.env)}
