"""Evaluating a saved run (``python -m metarl.run evaluate``, ``metarl.experiment.evaluate``):
its checkpoint loaded, its learner rebuilt, and its kind's evaluation called with the options
(``metarl.evaluation_options``), which fills in that kind's defaults.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from metarl.catalog import check_plugin_named, supervised_tasks, use_torch_threads
from metarl.config import from_mapping
from metarl.evaluation_options import EvaluateOptions, refuse_other_kinds
from metarl.files import ensure_dir
from metarl.runs import CHECKPOINT_NAME, CheckpointError


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
    return EVALUATIONS[state["algo"]](options, state, saved, checkpoint, out_dir, progress)


def _evaluate_supervised(options: EvaluateOptions, state, saved, checkpoint: Path,
                         out_dir: Path, progress: bool) -> dict[str, Any]:
    from metarl.config import validate

    refuse_other_kinds(options, "supervised",
                       f"{checkpoint} is a supervised {saved.get('task')!r} run")
    task = saved.get("task")
    tasks = supervised_tasks()
    if task not in tasks:
        raise CheckpointError(f"checkpoint {checkpoint} is for task {task!r}; "
                              f"evaluate knows: {', '.join(tasks)}")
    config_cls, build_problem = tasks[task]
    algo = state["algo"]
    if algo != "maml":  # another gradient-based method: its own config class and trainer
        from metarl.supervised.optimization import CONFIGS, TRAINERS

        config_cls, trainer_cls = CONFIGS[algo][task], TRAINERS[algo]
    else:
        from metarl.supervised.trainer import MetaLearner as trainer_cls
    # evaluate's own device, whatever the run trained on (its checkpoint holds CPU tensors)
    config = dataclasses.replace(from_mapping(config_cls, saved, source=str(checkpoint)),
                                 device=options.device)
    validate(config)

    from metarl.supervised.evaluate import evaluate_supervised

    use_torch_threads(config.torch_threads if options.torch_threads is None
                      else options.torch_threads)
    learner = trainer_cls(build_problem(config), config)
    learner.load(state, source=str(checkpoint))
    return evaluate_supervised(learner, ensure_dir(out_dir), options, build_problem,
                               progress=progress)


def _evaluate_rl(options: EvaluateOptions, state, saved, checkpoint: Path, out_dir: Path,
                 progress: bool, *, name: str = "MAML-TRPO", label: str = "maml"
                 ) -> dict[str, Any]:
    from metarl.config import validate
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.evaluate import evaluate_rl
    from metarl.rl.sampling_options import RAY_DEFAULTS

    refuse_other_kinds(options, "meta-RL", f"{checkpoint} is a {name} run (use "
                       f"--episodes-per-task for the evaluation batch)")
    # evaluate's own device, as above; it samples on this machine (a run trained on a Ray
    # cluster evaluates anywhere, and the baselines' trainers need no actors of their own)
    config = dataclasses.replace(from_mapping(MAMLTRPOConfig, saved, source=str(checkpoint)),
                                 device=options.device, sampler="local", **RAY_DEFAULTS)
    validate(config)
    check_plugin_named(config.env, options.env, source=f"checkpoint {checkpoint}")
    if options.torch_threads is not None:  # the evaluation's trainers set it from the config
        config = dataclasses.replace(config, torch_threads=options.torch_threads)
    return evaluate_rl(config, state, ensure_dir(out_dir), options, source=str(checkpoint),
                       progress=progress, label=label)


def _evaluate_episodic(options: EvaluateOptions, state, saved, checkpoint: Path,
                       out_dir: Path, progress: bool) -> dict[str, Any]:
    from metarl.algorithms import algorithm
    from metarl.config import validate
    from metarl.supervised.episodic.evaluate import evaluate_episodic, refuse_adaptation_options
    from metarl.supervised.episodic.trainer import build_learner

    algo = state["algo"]
    refuse_other_kinds(options, "supervised", f"{checkpoint} is a {algo} run")
    refuse_adaptation_options(options, algo)  # before the data is loaded
    config_cls = algorithm(algo).config_class(saved.get("task", "omniglot"))
    config = dataclasses.replace(from_mapping(config_cls, saved, source=str(checkpoint)),
                                 device=options.device)
    validate(config)
    use_torch_threads(config.torch_threads if options.torch_threads is None
                      else options.torch_threads)
    learner = build_learner(config)
    learner.load(state, source=str(checkpoint))
    return evaluate_episodic(learner, ensure_dir(out_dir), options, progress=progress)


def _evaluate_promp(options: EvaluateOptions, state, saved, checkpoint: Path, out_dir: Path,
                    progress: bool) -> dict[str, Any]:
    """A ProMP run is evaluated as the MAML-TRPO run of its policy (``as_maml_trpo_state``)."""
    from metarl.rl.promp_trainer import as_maml_trpo_state

    state = as_maml_trpo_state(state)
    return _evaluate_rl(options, state, dict(state["config"]), checkpoint, out_dir, progress,
                        name="ProMP", label="promp")


def _evaluate_rl2(options: EvaluateOptions, state, saved, checkpoint: Path, out_dir: Path,
                  progress: bool) -> dict[str, Any]:
    from metarl.config import validate
    from metarl.rl.rl2_config import RL2Config
    from metarl.rl.rl2_evaluate import evaluate_rl2
    from metarl.rl.sampling_options import RAY_DEFAULTS

    refuse_other_kinds(options, "meta-RL", f"{checkpoint} is an RL2 run")
    # evaluate's own device; it samples on this machine, as a MAML-TRPO run's evaluation does
    config = dataclasses.replace(from_mapping(RL2Config, saved, source=str(checkpoint)),
                                 device=options.device, sampler="local", **RAY_DEFAULTS)
    validate(config)
    check_plugin_named(config.env, options.env, source=f"checkpoint {checkpoint}")
    use_torch_threads(config.torch_threads if options.torch_threads is None
                      else options.torch_threads)
    return evaluate_rl2(config, state, ensure_dir(out_dir), options, source=str(checkpoint))


#: Each algorithm's evaluation (``options``, the checkpoint's state and saved config, the
#: checkpoint, the output folder, ``progress``) -> the result: it rebuilds the run's learner and
#: hands it to its kind's evaluation, which reports through ``metarl.evaluation``.
EVALUATIONS = {"maml": _evaluate_supervised, "maml_trpo": _evaluate_rl,
               **{method: _evaluate_supervised for method in ("fomaml", "reptile", "anil")},
               "promp": _evaluate_promp, "rl2": _evaluate_rl2,
               **{method: _evaluate_episodic
                  for method in ("protonet", "matching", "relation", "siamese", "mann")}}
