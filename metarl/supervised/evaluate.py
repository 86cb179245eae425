"""``evaluate`` for supervised MAML runs: the adaptation curve on held-out tasks, vs baselines.

Held-out tasks come from a generator seeded with ``seed + EVALUATION_SEED_OFFSET``, disjoint from
the training stream and from the periodic held-out set logged during training. Every method is
fine-tuned the same way: ``steps`` SGD steps on the task's K support points, the first of size
``fast_lr`` and the later ones ``fast_lr * later_lr_scale`` (1 by default, as in the paper).

The baselines compared with MAML (the pretrained model, the Omniglot classifier) take as many
Adam steps as the evaluated run was meta-trained for, at most ``MAX_BASELINE_ITERATIONS``: a short
run is compared with baselines of its own budget, and evaluated in minutes. An oracle (sine's)
bounds what adaptation can reach, whatever the run, so it takes ``MAX_BASELINE_ITERATIONS``.
``baseline_iterations`` sets both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.config import ConfigError
from metarl.device import to_device
from metarl.evaluation import EVALUATION_SEED_OFFSET, evaluation_step_sizes, report
from metarl.evaluation_options import EvaluateOptions, shot_counts, with_defaults
from metarl.supervised.curves import adaptation_curve, task_functions
from metarl.supervised.problem import FewShotProblem, HeldOut, Start
from metarl.supervised.trainer import MAMLConfig, MetaLearner

#: The most training iterations a baseline gets by default (``default_baseline_iterations``),
#: and those of an oracle.
MAX_BASELINE_ITERATIONS = 10_000


#: Query points per held-out regression task; classification episodes keep the run's
#: ``queries`` per class (``curve.json`` records what was used).
QUERY_SIZE = 100


def default_baseline_iterations(trained: int) -> int:
    """The baselines' training iterations for a run meta-trained for ``trained`` iterations:
    as many, at most ``MAX_BASELINE_ITERATIONS``."""
    return min(trained, MAX_BASELINE_ITERATIONS)


def evaluate_supervised(learner: MetaLearner, out_dir: Path, options: EvaluateOptions,
                        build_problem: Any, *, progress: bool = False) -> dict[str, Any]:
    """Adaptation curves of the meta-learned model and, with ``options.baselines``, of the
    problem's ``baselines`` (plug-ins: the sine pretrained model and oracle, the Omniglot
    classifier), all on the same held-out tasks; writes ``curve.json``, ``curve.csv``,
    ``per_task.csv`` and ``curve.png`` into ``out_dir`` and returns the JSON. Options left
    unset take the problem's ``eval_defaults``; ``progress``: bars of the baselines' training
    and the adaptation curves on stderr."""
    config = learner.config
    options = with_defaults(options, learner.problem.eval_defaults())
    shots = _one_shot_count(learner, options)
    problem = _problem_with_shots(learner, shots, build_problem)
    held_out = _held_out(learner, problem, options, shots, progress)

    starts = {learner.algo: learner.start()}  # what the method adapts (ANIL: the head)
    curves = {learner.algo: _fine_tuned(learner.algo, starts[learner.algo], problem, held_out)}
    flat: dict[str, str] = {}
    meta = _meta(config, problem, options, shots, held_out, learner.iteration)
    for baseline in problem.baselines() if options.baselines else ():
        for label, result in baseline.run(problem, held_out).items():
            if isinstance(result, Start):
                starts[label] = result
                result = _fine_tuned(label, result, problem, held_out)
            curves[label] = result
        flat.update(baseline.flat)
        meta.update(baseline.meta(held_out))
    return report(out_dir, curves, metric=problem.metric, meta=meta,
                  title=f"{config.task}, {problem.episode_title(shots)}: held-out "
                        f"{problem.metric} ({options.num_tasks} tasks, 95% CI)",
                  iterations=learner.iteration, log_y=not problem.higher_is_better,
                  flat=flat, side_panel=problem.fits_panel(starts, held_out),
                  tasks=problem.task_rows(held_out.tasks))


def _one_shot_count(learner: MetaLearner, options: EvaluateOptions) -> int:
    """The one K the run is evaluated at (``--shots``, else the run's), checked against what
    its tasks hold; several are refused: a gradient-based run's curve is over adaptation
    steps (an episodic run's may be over shots)."""
    shots = shot_counts(options, learner.config.shots)
    if len(shots) > 1:
        raise ConfigError(f"--shots {' '.join(map(str, shots))}: a {learner.algo} run is "
                          f"evaluated at one K (its curve is over adaptation steps); give one "
                          f"value, and evaluate once per value with its own --output")
    learner.problem.check_shots(shots[0])
    return shots[0]


def _held_out(learner: MetaLearner, problem: FewShotProblem, options: EvaluateOptions,
              shots: int, progress: bool) -> HeldOut:
    """The held-out tasks (generator seed ``seed + EVALUATION_SEED_OFFSET``) and the protocol
    every method shares on them; the baselines train for ``default_baseline_iterations`` and
    an oracle for ``MAX_BASELINE_ITERATIONS``, unless ``baseline_iterations`` sets both."""
    config = learner.config
    seed = config.seed if options.seed is None else options.seed
    generator = torch.Generator().manual_seed(seed + EVALUATION_SEED_OFFSET)
    support, query, tasks = to_device(problem.meta_batch_with_tasks(
        options.num_tasks, generator, query_size=QUERY_SIZE, shots=shots), learner.device)
    iterations, oracle_iterations = (
        (default_baseline_iterations(learner.iteration), MAX_BASELINE_ITERATIONS)
        if options.baseline_iterations is None else (options.baseline_iterations,) * 2)
    return HeldOut(support, query, tasks, options.steps,
                   evaluation_step_sizes(config.fast_lr, options.steps, options.later_lr_scale),
                   iterations, oracle_iterations, config.meta_batch_size, learner.baseline_lr(),
                   seed, progress, learner.device)


def _fine_tuned(label: str, start: Start, problem: FewShotProblem,
                held_out: HeldOut) -> np.ndarray:
    """The curve of ``start`` fine-tuned on each support set as MAML is
    (``curves.adaptation_curve``): ``[tasks, steps + 1]``."""
    return adaptation_curve(*task_functions(problem, start.model), start.params,
                            held_out.support, held_out.query, steps=held_out.steps,
                            step_size=held_out.step_sizes, chunk_size=problem.eval_chunk_size,
                            progress=held_out.progress,
                            desc=f"{label}: adaptation curve").cpu().numpy()


def _problem_with_shots(learner: MetaLearner, shots: int, build_problem: Any) -> FewShotProblem:
    """The run's problem, or one rebuilt with ``shots`` support examples per task (keeping the
    run's saved task state: Omniglot's character split)."""
    if shots == learner.config.shots:
        return learner.problem
    problem = build_problem(dataclasses.replace(learner.config, shots=shots))
    problem_state = learner.problem.state_dict()
    if problem_state is not None:
        problem.load_state_dict(problem_state, source="the evaluated run")
    return problem


def _meta(config: MAMLConfig, problem: FewShotProblem, options: EvaluateOptions, shots: int,
          held_out: HeldOut, iteration: int) -> dict[str, Any]:
    """What curve.json records of the evaluation besides the curves. ``query_size`` is what
    the episodes really held: the query examples per task (for classification N ways x the
    run's queries per class, whatever ``QUERY_SIZE`` says); ``baseline_iterations`` those the
    baselines were trained for (0 without baselines)."""
    return {"task": config.task, "shots": shots, "num_tasks": options.num_tasks,
            "query_size": int(held_out.query[1].shape[1]), "steps": options.steps,
            "fast_lr": config.fast_lr, "step_sizes": held_out.step_sizes, "seed": held_out.seed,
            "iteration": iteration,
            "baseline_iterations": held_out.iterations if options.baselines else 0,
            **problem.episode_meta()}
