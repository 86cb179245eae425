"""``evaluate`` for episodic runs: the query accuracy on held-out episodes, with its 95% CI.

The held-out episodes are those every Omniglot run is evaluated on: the test characters of the
run's split, drawn from a generator seeded with ``seed + EVALUATION_SEED_OFFSET`` (as MAML's
evaluation draws them), so a Prototypical Network and a MAML run with the same seed, split and
episode shape are scored on the same episodes. An episodic method answers in one forward pass,
so its curve is a single point (step 0); ``--shots`` scores the run on episodes with another
number of support images per class.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from metarl.config import ConfigError
from metarl.device import to_device
from metarl.evaluation import EVALUATION_SEED_OFFSET, report
from metarl.evaluation_options import EvaluateOptions
from metarl.supervised.episodic.trainer import EpisodicLearner
from metarl.supervised.omniglot.problem import OmniglotProblem

#: Held-out episodes when ``--num-tasks`` is unset (the protocol's 1000, as for MAML).
DEFAULT_EPISODES = 1000
#: Options that set how a gradient-based method adapts or what it is compared with; an episodic
#: run takes no gradient step at test time.
ADAPTATION_OPTIONS = ("steps", "later_lr_scale", "baselines", "baseline_iterations")


def evaluate_episodic(learner: EpisodicLearner, out_dir: Path, options: EvaluateOptions, *,
                      progress: bool = False) -> dict[str, Any]:
    """The held-out accuracy of the run in ``learner``: ``curve.json``, ``curve.csv``,
    ``per_task.csv`` and ``curve.png`` in ``out_dir``; returns the JSON (its printed table under
    ``"table"``)."""
    set_options = [name for name in ADAPTATION_OPTIONS
                   if getattr(options, name) not in (None, False)]  # --no-baselines is no harm
    if set_options:
        flags = ", ".join("--" + name.replace("_", "-") for name in set_options)
        raise ConfigError(f"{flags}: only for gradient-based runs; a {learner.algo} run "
                          "answers in one forward pass (no adaptation steps, no baselines)")
    config = learner.config
    num_tasks = options.num_tasks or DEFAULT_EPISODES
    shots = options.shots or config.shots
    problem = learner.problem
    if shots != config.shots:
        problem = OmniglotProblem(dataclasses.replace(config, shots=shots))
        problem.load_state_dict(learner.problem.state_dict(), source="the evaluated run")
    seed = config.seed if options.seed is None else options.seed
    generator = torch.Generator().manual_seed(seed + EVALUATION_SEED_OFFSET)
    support, query, _ = problem.meta_batch_with_tasks(num_tasks, generator,
                                                      query_size=config.queries)
    support, query = to_device((support, query), learner.device)
    scores = learner.scores(support, query, progress=progress).numpy()[:, None]
    meta = {"task": config.task, "method": learner.algo, "shots": shots, "ways": config.ways,
            "queries_per_class": config.queries, "num_tasks": num_tasks, "seed": seed,
            "iteration": learner.iteration, "steps": 0}
    return report(out_dir, {learner.algo: scores}, metric="accuracy", meta=meta,
                  title=f"{config.task}, {config.ways}-way K={shots}: held-out accuracy "
                        f"({num_tasks} episodes, 95% CI)",
                  iterations=learner.iteration,
                  x_label="adaptation steps (none: one forward pass)")
