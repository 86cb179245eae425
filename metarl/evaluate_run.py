"""Evaluating a saved run: the options of ``python -m metarl.run evaluate`` (and of
``metarl.experiment.evaluate``), and what each means for a supervised or a MAML-TRPO run.

Each option's range is declared once, on its field; ``None`` takes the run's own setting or the
paper's default for its kind of run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarl.catalog import check_plugin_named, supervised_tasks, use_torch_threads
from metarl.config import THREADS_MAX, ConfigError, flag_name, from_mapping, option, seed_option
from metarl.files import ensure_dir
from metarl.runs import CHECKPOINT_NAME, CheckpointError


@dataclass
class EvaluateOptions:
    """What ``evaluate`` measures (a flag each; None: the run's or the paper's default)."""

    num_tasks: int | None = option(None, "held-out tasks (default: 600 sine, 1000 Omniglot, 40 "
                                   "RL)", minimum=2, exclusive_minimum=False)
    steps: int | None = option(None, "adaptation steps K (default: 10 sine; Omniglot: the run's "
                               "eval_steps, 3 in the paper's setting; RL: 4 navigation, 3 "
                               "otherwise)", minimum=0, exclusive_minimum=False, metavar="K")
    shots: int | None = option(None, "supervised: support examples per task (default: the "
                               "run's)", minimum=1, exclusive_minimum=False, metavar="K")
    baselines: bool | None = option(None, "add the paper's baselines: a model pretrained on all "
                                    "tasks and fine-tuned the same way (Omniglot: a classifier "
                                    "of the training classes), an oracle given the task (sine, "
                                    "RL) and a random initialisation (RL) (default: on for "
                                    "supervised runs, off for RL)")
    baseline_iterations: int | None = option(None, "training iterations of the baselines: "
                                             "the pretrained model, the sine oracle, the "
                                             "Omniglot classifier, the RL oracle (default: "
                                             "supervised, as many as the run was trained, at "
                                             "most 10000; RL: the run's num_batches)",
                                             minimum=0, exclusive_minimum=False)
    episodes_per_task: int | None = option(None, "RL: episodes sampled per task and step "
                                           "(default: the run's fast_batch_size; the paper's "
                                           "test batches were 4000 env steps)", minimum=1,
                                           exclusive_minimum=False)
    env_steps_per_task: int | None = option(None, "RL: instead of a number of episodes, batches "
                                            "of N env steps per task drawn as the paper's rllab "
                                            "sampler drew them (N / horizon episodes side by "
                                            "side, back to back, completed ones kept; the "
                                            "paper's: 4000). Where episodes end early this holds "
                                            "more, and more of the short, episodes (default: "
                                            "off, --episodes-per-task)", minimum=1,
                                            exclusive_minimum=False)
    later_lr_scale: float | None = option(None, "step size of steps 2.. as a fraction of "
                                          "fast_lr (default: the paper's, 0.5 for RL and 1 for "
                                          "supervised runs)", minimum=0.0)
    pretrained: str | None = option(None, "RL: an existing multi-task TRPO run (num_steps: 0) "
                                    "as the pretrained baseline (default: --baselines trains "
                                    "one, kept in OUTPUT/pretrained)", metavar="DIR")
    oracle: str | None = option(None, "RL: an existing multi-task TRPO run on ENV+oracle (the "
                                "policy observes the task) as the oracle baseline (default: "
                                "--baselines trains one, kept in OUTPUT/oracle)", metavar="DIR")
    seed: int | None = seed_option(None, "evaluation seed; held-out tasks are drawn apart from "
                                   "training's (default: the run's)")
    torch_threads: int | None = option(None, "PyTorch threads (0: PyTorch's default, one per "
                                       "core) (default: the run's torch_threads)", minimum=0,
                                       exclusive_minimum=False, maximum=THREADS_MAX)
    output: str | None = option(None, "where to write results (default: RUN/evaluation)",
                                metavar="DIR")
    env: str | None = option(None, "RL: the plug-in env the run was trained on, named to allow "
                             "importing its module (a checkpoint never imports code by itself; "
                             "not needed for built-in families) (default: none)",
                             metavar="MODULE:CLASS")


def checkpoint_path(source: str | Path) -> Path:
    """The checkpoint of ``source``: a run directory's ``checkpoint.pt``, or a file itself."""
    path = Path(source)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def output_dir(checkpoint: Path, options: EvaluateOptions) -> Path:
    """Where results go: ``options.output``, else ``evaluation/`` beside the checkpoint."""
    return Path(options.output) if options.output else checkpoint.parent / "evaluation"


def evaluate_checkpoint(checkpoint: Path, options: EvaluateOptions, *,
                        progress: bool = False) -> dict[str, Any]:
    """The adaptation curves of the run saved in ``checkpoint`` (written to
    :func:`output_dir`); returns the result, ``result["table"]`` its printed summary."""
    from metarl.runs import load_run_checkpoint

    state = load_run_checkpoint(checkpoint)  # its kind's schema checked: every entry present
    saved = dict(state["config"])
    out_dir = output_dir(checkpoint, options)
    if state["algo"] == "maml_trpo":
        return _evaluate_rl(options, state, saved, checkpoint, out_dir, progress)
    return _evaluate_supervised(options, state, saved, checkpoint, out_dir, progress)


def _evaluate_supervised(options: EvaluateOptions, state, saved, checkpoint: Path,
                         out_dir: Path, progress: bool) -> dict[str, Any]:
    from metarl.config import validate

    rl_only = [flag_name(name) for name in ("episodes_per_task", "env_steps_per_task",
                                            "pretrained", "oracle", "env")
               if getattr(options, name) is not None]
    if rl_only:
        raise ConfigError(f"{', '.join(rl_only)}: only for MAML-TRPO runs; {checkpoint} is a "
                          f"supervised {saved.get('task')!r} run")
    task = saved.get("task")
    tasks = supervised_tasks()
    if task not in tasks:
        raise CheckpointError(f"checkpoint {checkpoint} is for task {task!r}; "
                              f"evaluate knows: {', '.join(tasks)}")
    config_cls, build_problem = tasks[task]
    config = from_mapping(config_cls, saved, source=str(checkpoint))
    validate(config)

    from metarl.supervised.evaluate import EvalOptions, evaluate_supervised
    from metarl.supervised.trainer import MetaLearner

    use_torch_threads(config.torch_threads if options.torch_threads is None
                      else options.torch_threads)
    learner = MetaLearner(build_problem(config), config)
    learner.load(state, source=str(checkpoint))
    default_tasks, default_steps = (1000, config.eval_steps) if task == "omniglot" else (600, 10)
    measured = EvalOptions(num_tasks=options.num_tasks or default_tasks,
                           steps=default_steps if options.steps is None else options.steps,
                           shots=options.shots,
                           baseline_iterations=options.baseline_iterations,
                           baselines=options.baselines is not False, seed=options.seed,
                           later_lr_scale=1.0 if options.later_lr_scale is None
                           else options.later_lr_scale, progress=progress)
    return evaluate_supervised(learner, ensure_dir(out_dir), measured, build_problem)


def _evaluate_rl(options: EvaluateOptions, state, saved, checkpoint: Path, out_dir: Path,
                 progress: bool) -> dict[str, Any]:
    from metarl.config import validate
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import RLEvalOptions, evaluate_rl

    if options.shots is not None:
        raise ConfigError(f"--shots: only for supervised runs; {checkpoint} is a MAML-TRPO run "
                          f"(use --episodes-per-task for the evaluation batch)")
    config = from_mapping(MAMLTRPOConfig, saved, source=str(checkpoint))
    validate(config)
    check_plugin_named(config.env, options.env, source=f"checkpoint {checkpoint}")
    if options.torch_threads is not None:  # the evaluation's trainers set it from the config
        config = dataclasses.replace(config, torch_threads=options.torch_threads)
    measured = RLEvalOptions(num_tasks=options.num_tasks or 40, steps=options.steps,
                             episodes_per_task=options.episodes_per_task,
                             env_steps_per_task=options.env_steps_per_task,
                             later_lr_scale=0.5 if options.later_lr_scale is None
                             else options.later_lr_scale,
                             baselines=bool(options.baselines),
                             pretrained=Path(options.pretrained) if options.pretrained else None,
                             oracle=Path(options.oracle) if options.oracle else None,
                             pretrain_iterations=options.baseline_iterations, seed=options.seed,
                             progress=progress)
    return evaluate_rl(config, state, ensure_dir(out_dir), measured, source=str(checkpoint))
