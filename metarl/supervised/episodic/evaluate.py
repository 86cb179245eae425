"""``evaluate`` for episodic runs: the query accuracy on held-out episodes, with its 95% CI.

The held-out episodes are those every Omniglot run is evaluated on: the test characters of the
run's split, drawn from a generator seeded with ``seed + EVALUATION_SEED_OFFSET`` (as MAML's
evaluation draws them), so a Prototypical Network and a MAML run with the same seed, split and
episode shape are scored on the same episodes. An episodic method answers in one forward pass,
so its curve is a single point (step 0); ``--shots`` scores the run on episodes with another
number K of support images per class, and several values (``--shots 1 3 5``) give the curve
of the accuracy against K: at each K the episodes are drawn afresh from a generator seeded as
above, so each point is the accuracy that ``--shots K`` alone gives.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarl.config import ConfigError, flag_name
from metarl.device import to_device
from metarl.evaluation import EVALUATION_SEED_OFFSET, report
from metarl.evaluation_options import EvaluateOptions, shot_counts
from metarl.supervised.episodic.trainer import EpisodicLearner
from metarl.supervised.omniglot.problem import OmniglotProblem

#: Held-out episodes when ``--num-tasks`` is unset (the protocol's 1000, as for MAML).
DEFAULT_EPISODES = 1000
#: Options that set how a gradient-based method adapts or what it is compared with; an episodic
#: run takes no gradient step at test time.
ADAPTATION_OPTIONS = ("steps", "later_lr_scale", "baselines", "baseline_iterations")
#: The x axis of a curve over shots (``--shots`` with several values).
SHOTS_LABEL = "support examples per class"


def refuse_adaptation_options(options: EvaluateOptions, algo: str) -> None:
    """A ConfigError naming the options of gradient-based evaluation set in ``options``
    (``--steps 0`` included; ``--no-baselines`` does no harm): an ``algo`` run takes none."""
    set_options = [name for name in ADAPTATION_OPTIONS
                   if getattr(options, name) is not None and getattr(options, name) is not False]
    if set_options:
        flags = ", ".join(flag_name(name) for name in set_options)
        raise ConfigError(f"{flags}: only for gradient-based runs; a {algo} run answers in one "
                          "forward pass (no adaptation steps, no baselines)")


def evaluate_episodic(learner: EpisodicLearner, out_dir: Path, options: EvaluateOptions, *,
                      progress: bool = False) -> dict[str, Any]:
    """The held-out accuracy of the run in ``learner``, at each of ``--shots`` (default: the
    run's): ``curve.json``, ``curve.csv``, ``per_task.csv`` and ``curve.png`` in ``out_dir``;
    returns the JSON (its printed table under ``"table"``). One value is one point (step 0);
    several are a curve with x = shots."""
    refuse_adaptation_options(options, learner.algo)
    config = learner.config
    num_tasks = options.num_tasks or DEFAULT_EPISODES
    shots = shot_counts(options, config.shots)
    for count in shots:  # every value checked before any is scored
        learner.problem.check_shots(count)
    seed = config.seed if options.seed is None else options.seed
    scores = np.stack([held_out_scores(learner, count, num_tasks, seed, progress=progress)
                       for count in shots], axis=1)
    meta = {"task": config.task, "method": learner.algo,
            "shots": shots[0] if len(shots) == 1 else list(shots), "ways": config.ways,
            "queries_per_class": config.queries, "num_tasks": num_tasks, "seed": seed,
            "iteration": learner.iteration, "steps": 0}
    episodes = f"{num_tasks} episodes, 95% CI"
    if len(shots) == 1:
        return report(out_dir, {learner.algo: scores}, metric="accuracy", meta=meta,
                      title=f"{config.task}, {config.ways}-way K={shots[0]}: held-out accuracy "
                            f"({episodes})",
                      iterations=learner.iteration,
                      x_label="adaptation steps (none: one forward pass)")
    return report(out_dir, {learner.algo: scores}, metric="accuracy", meta=meta,
                  title=f"{config.task}, {config.ways}-way: held-out accuracy against K "
                        f"({episodes} at each K)",
                  iterations=learner.iteration, x_label=SHOTS_LABEL, x_name="shots",
                  x_values=shots)


def held_out_scores(learner: EpisodicLearner, shots: int, num_tasks: int, seed: int, *,
                    progress: bool = False) -> np.ndarray:
    """The query accuracy ``[num_tasks]`` of each held-out episode with ``shots`` support
    images per class, drawn from the run's test characters by a generator seeded with
    ``seed + EVALUATION_SEED_OFFSET``."""
    config = learner.config
    problem = learner.problem
    if shots != config.shots:
        problem = OmniglotProblem(dataclasses.replace(config, shots=shots))
        problem.load_state_dict(learner.problem.state_dict(), source="the evaluated run")
    generator = torch.Generator().manual_seed(seed + EVALUATION_SEED_OFFSET)
    support, query, _ = problem.meta_batch_with_tasks(num_tasks, generator,
                                                      query_size=config.queries)
    support, query = to_device((support, query), learner.device)
    return learner.scores(support, query, progress=progress).numpy()
