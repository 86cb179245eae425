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
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib
import torch

from metarl.core.maml import Params, adapt, parameters_of, stack_params
from metarl.evaluation import EVALUATION_SEED_OFFSET, evaluation_step_sizes, report
from metarl.evaluation_options import EvaluateOptions, with_defaults
from metarl.supervised.curves import adaptation_curve
from metarl.supervised.omniglot.problem import OmniglotConfig
from metarl.supervised.pretrained import pretrain_jointly
from metarl.supervised.problem import Batch, FewShotProblem
from metarl.supervised.sine.problem import SineProblem
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
    """Adaptation curves of the meta-learned model and the baselines (pretrained on all tasks
    and fine-tuned the same way where the problem is ``pretrainable``, and the problem's own
    ``baseline_curves``: the sine oracle given amplitude and phase, the Omniglot classifier of
    the train classes with its head fine-tuned); writes ``curve.json``, ``curve.csv``,
    ``per_task.csv`` and ``curve.png`` into ``out_dir`` and returns the JSON. Options left
    unset take the problem's ``eval_defaults``; ``progress``: bars of the baselines' training
    and the adaptation curves on stderr."""
    config = learner.config
    options = with_defaults(options, learner.problem.eval_defaults())
    shots = options.shots or config.shots
    problem = _problem_with_shots(learner, shots, build_problem)
    seed = config.seed if options.seed is None else options.seed
    sizes = evaluation_step_sizes(config.fast_lr, options.steps, options.later_lr_scale)
    generator = torch.Generator().manual_seed(seed + EVALUATION_SEED_OFFSET)
    support, query, tasks = problem.meta_batch_with_tasks(
        options.num_tasks, generator, query_size=QUERY_SIZE, shots=shots)
    iterations, oracle_iterations = (
        (default_baseline_iterations(learner.iteration), MAX_BASELINE_ITERATIONS)
        if options.baseline_iterations is None else (options.baseline_iterations,) * 2)

    starts = _starting_points(learner, problem, options, seed, iterations, progress)
    curves = {label: adaptation_curve(*_task_functions(problem, model), params, support, query,
                                      steps=options.steps, step_size=sizes,
                                      chunk_size=problem.eval_chunk_size,
                                      progress=progress,
                                      desc=f"{label}: adaptation curve").numpy()
              for label, (model, params) in starts.items()}
    if options.baselines:
        curves.update(problem.baseline_curves(
            support, query, tasks, steps=options.steps, step_sizes=sizes,
            iterations=iterations, oracle_iterations=oracle_iterations,
            batch_size=config.meta_batch_size, lr=config.meta_lr, seed=seed,
            progress=progress))

    fits = (partial(_plot_sine_fits, problem=problem, methods=starts, support=support,
                    true_tasks=tasks, sizes=sizes) if isinstance(problem, SineProblem) else None)
    ways = f"{config.ways}-way " if isinstance(config, OmniglotConfig) else ""
    meta = _meta(config, options, shots, query, sizes, seed, learner.iteration, iterations)
    if "oracle" in curves:
        meta["oracle_iterations"] = oracle_iterations
    return report(out_dir, curves, metric=problem.metric, meta=meta,
                  title=f"{config.task}, {ways}K={shots}: held-out {problem.metric} "
                        f"({options.num_tasks} tasks, 95% CI)",
                  iterations=learner.iteration, log_y=not problem.higher_is_better,
                  flat=problem.flat_curves, side_panel=fits, tasks=_task_rows(problem, tasks))


def _task_rows(problem: FewShotProblem, tasks: Any) -> list[dict[str, float]] | None:
    """What ``per_task.csv`` records of each held-out task: sine's amplitude and phase;
    nothing for problems without closed-form tasks (Omniglot: the episode's index only)."""
    if not isinstance(problem, SineProblem):
        return None
    amplitude, phase = tasks
    return [{"amplitude": float(a), "phase": float(p)} for a, p in zip(amplitude, phase)]


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


def _starting_points(learner: MetaLearner, problem: FewShotProblem, options: EvaluateOptions,
                     seed: int, iterations: int, progress: bool
                     ) -> dict[str, tuple[Any, Params]]:
    """Label -> (model, θ) of every method fine-tuned with SGD here: MAML's meta-learned θ and,
    for a ``pretrainable`` problem with baselines on, a model pretrained on all tasks jointly
    for ``iterations`` (the generic non-meta baseline; torch seed ``seed``, task generator
    ``seed + 1``)."""
    config = learner.config
    starts = {"maml": (learner.model, parameters_of(learner.model))}
    if options.baselines and problem.pretrainable:
        torch.manual_seed(seed)
        model = problem.build_model()
        starts["pretrained"] = (model, pretrain_jointly(
            problem, model, iterations=iterations, batch_size=config.meta_batch_size,
            lr=config.meta_lr, generator=torch.Generator().manual_seed(seed + 1),
            progress=progress))
    return starts


def _meta(config: MAMLConfig, options: EvaluateOptions, shots: int, query: Batch,
          sizes: list[float], seed: int, iteration: int,
          baseline_iterations: int) -> dict[str, Any]:
    """What curve.json records of the evaluation besides the curves. ``query_size`` is what
    the episodes really held: the query examples per task (for classification N ways x the
    run's queries per class, whatever ``QUERY_SIZE`` says); ``baseline_iterations``
    those the baselines were trained for (0 without baselines)."""
    meta = {"task": config.task, "shots": shots, "num_tasks": options.num_tasks,
            "query_size": int(query[1].shape[1]), "steps": options.steps,
            "fast_lr": config.fast_lr, "step_sizes": sizes, "seed": seed,
            "iteration": iteration,
            "baseline_iterations": baseline_iterations if options.baselines else 0}
    if isinstance(config, OmniglotConfig):  # classification: N ways, queries per class
        meta.update(ways=config.ways, queries_per_class=config.queries)
    return meta


def _task_functions(problem: Any, model: Any):
    def losses(params, data):
        return problem.task_loss(model.task_forward(params, data[0]), data[1])

    def scores(params, data):
        return problem.task_score(model.task_forward(params, data[0]), data[1])

    return losses, scores


def _plot_sine_fits(ax, problem, methods, support, true_tasks, sizes, num_shown=3):
    """True sine, support points and adapted predictions for a few held-out tasks (the figure's
    second panel for sine)."""
    num_shown = min(num_shown, len(true_tasks[0]))  # evaluate may hold fewer tasks
    amplitude, phase = (t[:num_shown] for t in true_tasks)
    xs, ys = support[0][:num_shown], support[1][:num_shown]
    grid = torch.linspace(-5, 5, 200).expand(num_shown, 200).unsqueeze(-1)
    truth = problem.tasks.evaluate(amplitude, phase, grid)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"maml": "-", "pretrained": ":"}
    for i in range(num_shown):
        colour = colours[i % len(colours)]
        ax.plot(grid[i, :, 0], truth[i, :, 0], color=colour, linewidth=3, alpha=0.35,
                label="true" if i == 0 else None)
        ax.scatter(xs[i, :, 0], ys[i, :, 0], color=colour, marker="^", zorder=3,
                   label="support" if i == 0 else None)
    for label, (model, params) in methods.items():
        losses, _ = _task_functions(problem, model)
        for k in sorted({min(1, len(sizes)), len(sizes)}):
            start = {n: v.detach().requires_grad_(True)
                     for n, v in stack_params(params, num_shown).items()}
            adapted = adapt(lambda p, d, f=losses: f(p, d).sum(), start, (xs, ys),
                            num_steps=k, step_size=sizes[:k], first_order=True)
            with torch.no_grad():
                prediction = model.task_forward(adapted, grid)
            for i in range(num_shown):
                ax.plot(grid[i, :, 0], prediction[i, :, 0], color=colours[i % len(colours)],
                        linestyle=styles.get(label, "--"), alpha=1.0 if k == 1 else 0.6,
                        label=f"{label}, {k} step{'s' if k > 1 else ''}" if i == 0 else None)
    ax.set_title("adapted fits on held-out tasks")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

