"""``evaluate`` for MAML-TRPO runs: the adaptation curve on held-out tasks (spec.md section 3).

For k = 0..K: sample ``episodes_per_task`` episodes (default: the run's ``fast_batch_size``) of
every held-out task with the policy after k vanilla policy-gradient steps, record the mean
undiscounted return, then take the next step on those episodes (α = fast_lr for the first step,
α·later_lr_scale after; the paper's scale was 0.5 and its test batches 4000 env steps, i.e. 40
navigation episodes of 100 or 20 MuJoCo episodes of 200).
Held-out tasks come from ``seed + EVALUATION_SEED_OFFSET``, disjoint from training's seeds.

Baselines (``--baselines``), fine-tuned the same way: a policy pretrained on all tasks jointly
(multi-task TRPO: the same trainer with ``num_steps: 0``, or an existing such run given with
``--pretrained DIR``), a random initialisation, and the oracle: multi-task TRPO on the family's
oracle (``ENV+oracle``, :mod:`envs.oracle`), whose policy observes the task's parameters, so it
needs no adaptation and bounds what adaptation can reach (or an existing such run, ``--oracle
DIR``). The oracle is not adapted, as in the paper (its curve is flat: at each k, fresh episodes
of the same policy on the same held-out tasks and seeds). Fine-tuning it would mislead: a
multi-task policy that knows the task is nearly deterministic, and a policy-gradient step of
size α on it (the gradient grows as 1/σ²) throws it far off (measured on navigation_2d: -0.5 at
step 0, -297 after one step).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch

from envs.oracle import ORACLE_SUFFIX
from metarl.core.maml import Params, adapt, stack_params, step_sizes
from metarl.evaluation import format_table, plot_curves, write_curves
from metarl.rl.config import MAMLTRPOConfig
from metarl.rl.trainer import MetaRLTrainer, build_policy, derive_seed, train
from metarl.runs import (
    CHECKPOINT_NAME,
    CheckpointError,
    Logger,
    load_checkpoint,
    load_state_dict_strict,
    new_run_dir,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

EVALUATION_SEED_OFFSET = 2_000_029

#: MAML's published mean returns after 0..3 steps (spec.md section 3; navigation also step 4).
PUBLISHED_MAML = {
    "navigation_2d": [-40.4, -11.7, -3.3, -3.2, -3.35],
    "cheetah_vel": [-129.5, -78.6, -66.6, -60.8],
    "cheetah_dir": [-50.7, 293.2, 313.5, 315.7],
    "ant_vel": [30.6, 96.7, 100.1, 101.4],
    "ant_dir": [8.7, 499.2, 500.7, 499.1],
}
#: The oracle's published mean return (spec.md section 3).
PUBLISHED_ORACLE = {"navigation_2d": -2.29, "cheetah_vel": -54.5, "cheetah_dir": 442.7,
                    "ant_vel": 107.9, "ant_dir": 524.8}


@dataclass
class RLEvalOptions:
    """What ``evaluate`` measures for a MAML-TRPO run."""

    num_tasks: int = 40
    steps: int | None = None  # default: 4 for navigation_2d, 3 otherwise
    later_lr_scale: float = 0.5
    episodes_per_task: int | None = None  # default: the run's fast_batch_size
    baselines: bool = False
    pretrained: Path | None = None
    oracle: Path | None = None
    pretrain_iterations: int | None = None  # pretrained and oracle; default: the run's num_batches
    seed: int | None = None
    progress: bool = True


def default_steps(env: str) -> int:
    return 4 if env == "navigation_2d" else 3


def adaptation_returns(trainer: MetaRLTrainer, theta: Params, tasks: list[dict], *,
                       sizes: list[float], seed: int) -> np.ndarray:
    """Mean return of each task after 0..len(sizes) policy-gradient steps: ``[tasks, K + 1]``.

    A step of size 0 is not taken (the oracle's curve: the same policy on fresh episodes)."""
    learner = trainer.learner
    params = {k: v.detach() for k, v in stack_params(theta, len(tasks)).items()}
    returns = []
    for k in range(len(sizes) + 1):
        episodes = trainer.sampler.sample(tasks, params, seed=derive_seed(seed, k, "valid"))
        returns.append(episodes.returns_per_task().numpy())
        if k < len(sizes) and sizes[k] != 0:
            start = {name: v.clone().requires_grad_(True) for name, v in params.items()}
            adapted = adapt(learner.inner_loss, start, learner.process(episodes),
                            step_size=sizes[k], first_order=True)
            params = {name: v.detach() for name, v in adapted.items()}
    return np.stack(returns, axis=1)


def evaluate_rl(trainer: MetaRLTrainer, out_dir: Path, options: RLEvalOptions) -> dict[str, Any]:
    """Adaptation curves of the meta-trained policy (and baselines); writes curve.json/.csv/
    .png and TensorBoard events into ``out_dir``; returns the JSON."""
    import envs.registry

    config = trainer.config
    steps = default_steps(config.env) if options.steps is None else options.steps
    sizes = step_sizes([config.fast_lr] + [config.fast_lr * options.later_lr_scale] * (steps - 1),
                       steps) if steps else []
    seed = config.seed if options.seed is None else options.seed
    tasks = envs.registry.sample_tasks(config.env, options.num_tasks,
                                       seed=seed + EVALUATION_SEED_OFFSET)
    episodes = (config.fast_batch_size if options.episodes_per_task is None
                else options.episodes_per_task)
    if episodes < 1 or not options.later_lr_scale > 0:
        raise ValueError(f"episodes_per_task={episodes} must be >= 1 and later_lr_scale="
                         f"{options.later_lr_scale} > 0")
    evaluators: dict[str, MetaRLTrainer] = {}  # by env: the run's family and its oracle

    def curve(theta: Params, env: str = config.env, adapt: bool = True) -> np.ndarray:
        if env not in evaluators:
            same = (env, options.num_tasks, episodes) == (
                config.env, config.meta_batch_size, config.fast_batch_size)
            evaluators[env] = trainer if same else MetaRLTrainer(dataclasses.replace(
                config, env=env, meta_batch_size=options.num_tasks, fast_batch_size=episodes))
        return adaptation_returns(evaluators[env], theta, tasks,
                                  sizes=sizes if adapt else [0.0] * steps,
                                  seed=seed + EVALUATION_SEED_OFFSET)

    try:
        curves = {"maml": curve(trainer.theta())}
        if options.baselines:
            curves["pretrained"] = curve(baseline_policy(config, "pretrained", out_dir, options))
            random_policy = build_policy(dataclasses.replace(config, seed=seed + 1),
                                         trainer.spec.obs_size, trainer.spec.act_size)
            curves["random init"] = curve({k: v.detach() for k, v in
                                           random_policy.named_parameters()})
            curves["oracle"] = curve(baseline_policy(config, "oracle", out_dir, options),
                                     env=config.env + ORACLE_SUFFIX, adapt=False)
    finally:
        for evaluator in evaluators.values():
            if evaluator is not trainer:
                evaluator.close()

    meta = {"env": config.env, "num_tasks": options.num_tasks, "steps": steps,
            "episodes_per_task": episodes, "step_sizes": sizes, "seed": seed,
            "iteration": trainer.iteration, "hidden_sizes": list(config.hidden_sizes),
            "nonlinearity": config.nonlinearity,
            "published_maml": PUBLISHED_MAML.get(config.env),
            "published_oracle": PUBLISHED_ORACLE.get(config.env)}
    result = write_curves(out_dir, curves, metric="mean return", meta=meta)
    result["table"] = format_table(curves, metric="return")

    logger = Logger(out_dir)
    for label, values in curves.items():
        for k, value in enumerate(values.mean(axis=0)):
            logger.scalars({f"evaluation/{label.replace(' ', '_')}_return": value}, k)
    logger.close()

    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    references = {}
    if config.env in PUBLISHED_MAML:
        references["MAML (paper)"] = PUBLISHED_MAML[config.env][:steps + 1]
    if options.baselines and config.env in PUBLISHED_ORACLE:
        references["oracle (paper)"] = [PUBLISHED_ORACLE[config.env]] * (steps + 1)
    plot_curves(ax, curves, metric="mean return", references=references)
    ax.set_title(f"{config.env}: held-out adaptation ({options.num_tasks} tasks, 95% CI)")
    figure.tight_layout()
    figure.savefig(out_dir / "curve.png", dpi=120)
    plt.close(figure)
    return result


def baseline_policy(config: MAMLTRPOConfig, kind: str, out_dir: Path,
                    options: RLEvalOptions) -> Params:
    """θ of a policy trained on all tasks jointly, without adaptation (multi-task TRPO).

    ``kind``: ``"pretrained"`` (on the run's family) or ``"oracle"`` (on its oracle family,
    observing the task). Uses the run directory ``options.pretrained`` / ``options.oracle`` if
    given (it must be a run on that family); otherwise trains one for ``pretrain_iterations``
    into ``out_dir/KIND`` and reuses it next time.
    """
    env = config.env + (ORACLE_SUFFIX if kind == "oracle" else "")
    given = getattr(options, kind)
    if given is not None:
        checkpoint = Path(given) / CHECKPOINT_NAME
    else:
        iterations = options.pretrain_iterations or config.num_batches
        pre_config = dataclasses.replace(config, env=env, num_steps=0, num_batches=iterations,
                                         output_dir=str(out_dir / kind))
        existing = sorted((out_dir / kind).glob("*/" + CHECKPOINT_NAME))
        if existing and int(load_checkpoint(existing[-1])["iteration"]) >= iterations:
            checkpoint = existing[-1]
        else:
            with MetaRLTrainer(pre_config) as pre:
                pre_dir = new_run_dir(pre_config.output_dir, "pretrain", pre_config.task,
                                      config.seed)
                train(pre, pre_dir, progress=options.progress)
            checkpoint = pre_dir / CHECKPOINT_NAME
    state = load_checkpoint(checkpoint)
    trained_on = (state.get("config") or {}).get("env")
    if trained_on != env:
        raise CheckpointError(f"--{kind} {checkpoint.parent}: a run on {trained_on!r}; the "
                              f"{kind} baseline of this run must be trained on {env!r}")
    policy = build_policy(config, *_sizes(state["policy"]))
    load_state_dict_strict(policy, state["policy"], source=str(checkpoint))
    return {k: v.detach() for k, v in policy.named_parameters()}


def _sizes(policy_state: dict[str, torch.Tensor]) -> tuple[int, int]:
    weights = sorted(k for k in policy_state if k.endswith(".weight"))
    first = policy_state["layers.0.weight"]
    last = policy_state[max(weights, key=lambda k: int(k.split(".")[1]))]
    return first.shape[1], last.shape[0]
