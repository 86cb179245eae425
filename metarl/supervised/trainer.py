"""Supervised MAML meta-training (Finn et al. 2017, Algorithm 2), shared by sine and Omniglot.

Each meta-iteration samples a meta-batch of tasks, adapts the shared parameters θ to every
task's support set with ``num_steps`` inner steps (all tasks at once: ``adapt`` on task-stacked
parameters with the model's batched ``task_forward``), and takes one Adam step on the mean
query loss of the adapted parameters::

    θ ← θ - β ∇_θ (1/B) Σ_i L_i^query(θ'_i),    θ'_i = adapt(θ, D_i^support)

An iteration whose meta-loss or meta-gradient is non-finite stops before the Adam step, and one
whose step leaves θ non-finite stops there: ``train`` raises ``DivergenceError`` before any
checkpoint of that state is written.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from metarl.checkpoint_format import CheckpointError, check_run_state
from metarl.config import THREADS_MAX, option, seed_option
from metarl.core.maml import Params, adapt, parameters_of, stack_params
from metarl.nonfinite import DivergenceError, NonFiniteError, require_finite
from metarl.runs import (
    CHECKPOINT_NAME,
    Logger,
    check_compatible,
    load_optimizer_strict,
    load_state_dict_strict,
    save_checkpoint,
)
from metarl.supervised.curves import adaptation_curve
from metarl.supervised.problem import FewShotProblem

#: Held-out tasks come from a generator seeded with ``seed + HELD_OUT_SEED_OFFSET``, so they are
#: disjoint in seed from the training stream (which uses ``seed``).
HELD_OUT_SEED_OFFSET = 1_000_003


#: What ``torch_threads`` means, for every task (their defaults differ).
TORCH_THREADS_HELP = ("PyTorch threads (0: PyTorch's default, one per core); a small model such "
                      "as sine's runs fastest on one, and so does every model on a machine busy "
                      "with other jobs")


@dataclass
class MAMLConfig:
    """Options shared by every supervised MAML experiment (docs/protocol.md).

    Constructed directly, a config holds the built-in defaults only, not the task's shipped
    ``experiments/maml/{task}.yaml``, and is not validated;
    ``metarl.experiment.make_config("maml", task=...)`` builds the one the command line would.
    """

    task: str = option("sine", "few-shot task family", choices=("sine", "omniglot"))
    num_batches: int = option(70000, "meta-iterations (meta-batches) to train for", minimum=0,
                              exclusive_minimum=False)
    meta_batch_size: int = option(25, "tasks per meta-iteration", minimum=0)
    num_steps: int = option(1, "inner gradient steps during meta-training", minimum=0)
    fast_lr: float = option(0.01, "inner-loop learning rate (alpha)", minimum=0.0)
    meta_lr: float = option(1e-3, "Adam meta learning rate (beta)", minimum=0.0)
    first_order: bool = option(False, "first-order MAML: do not differentiate the inner gradient")
    shots: int = option(10, "K: support examples per task (per class for classification)",
                        minimum=0)
    queries: int = option(10, "query examples per task for the meta-loss (per class for "
                          "classification)", minimum=0)
    eval_every: int = option(1000, "iterations between held-out adaptation curves (0: never)",
                             minimum=0, exclusive_minimum=False)
    eval_tasks: int = option(100, "held-out tasks in the periodic adaptation curve", minimum=0)
    eval_steps: int = option(10, "inner steps in the periodic adaptation curve", minimum=0,
                             exclusive_minimum=False)
    checkpoint_every: int = option(1000, "iterations between checkpoints (one is always written "
                                   "at the end)", minimum=0)
    seed: int = seed_option(0, "random seed (initialisation and task sampling)")
    torch_threads: int = option(0, TORCH_THREADS_HELP, minimum=0, exclusive_minimum=False,
                                maximum=THREADS_MAX)
    output_dir: str = option("runs", "folder in which run directories are created")


#: Config keys a checkpoint must agree on to be loaded into a model.
ARCHITECTURE_KEYS = ("task", "hidden_sizes", "ways")
#: Config keys that define the tasks (the episodes' shape and, for Omniglot, the character
#: split); a resumed or evaluated run must keep them. Keys a config lacks are not compared.
TASK_KEYS = ("shots", "queries", "split_seed", "test_fraction", "rotations")


class MetaLearner:
    """The model, its Adam optimiser and the task stream of one supervised MAML run."""

    def __init__(self, problem: FewShotProblem, config: MAMLConfig):
        self.problem = problem
        self.config = config
        torch.manual_seed(config.seed)
        self.model = problem.build_model()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.meta_lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.iteration = 0

    def task_losses(self, params: Params, data: tuple[Tensor, Tensor]) -> Tensor:
        """Per-task loss ``[tasks]`` of task-stacked ``params`` on ``data = (x, y)``."""
        x, y = data
        return self.problem.task_loss(self.model.task_forward(params, x), y)

    def task_scores(self, params: Params, data: tuple[Tensor, Tensor]) -> Tensor:
        """Per-task metric ``[tasks]`` (MSE, accuracy) of task-stacked ``params``."""
        x, y = data
        return self.problem.task_score(self.model.task_forward(params, x), y)

    def adapt(self, params: Params, support: tuple[Tensor, Tensor]) -> Params:
        """θ'_i for every task of ``support``: ``num_steps`` inner steps from ``params``."""
        stacked = stack_params(params, support[0].shape[0])
        return adapt(lambda p, d: self.task_losses(p, d).sum(), stacked, support,
                     num_steps=self.config.num_steps, step_size=self.config.fast_lr,
                     first_order=self.config.first_order)

    def meta_loss(self, support: Any, query: Any) -> tuple[Tensor, Tensor]:
        """Mean query loss after adaptation, and the mean query score (for logging).

        A problem may bring its own faster ``meta_loss`` (Omniglot adapts tasks in small
        groups, each its own graph); otherwise all tasks adapt at once on stacked params.
        """
        if self.problem.meta_loss is not None:
            losses, scores = self.problem.meta_loss(
                self.model, parameters_of(self.model), support, query,
                num_steps=self.config.num_steps, step_size=self.config.fast_lr,
                first_order=self.config.first_order)
            return losses.mean(), scores.detach().mean()
        adapted = self.adapt(parameters_of(self.model), support)
        losses = self.task_losses(adapted, query)
        with torch.no_grad():
            scores = self.task_scores(adapted, query)
        return losses.mean(), scores.mean()

    def step(self) -> dict[str, float]:
        """One meta-iteration; returns the values to log."""
        support, query = self.problem.meta_batch(self.config.meta_batch_size, self.generator,
                                                 split="train", query_size=self.config.queries)
        loss, score = self.meta_loss(support, query)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"meta_loss is {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        require_finite({name: p.grad for name, p in self.model.named_parameters()
                        if p.grad is not None}, "the meta-gradient")
        self.optimizer.step()
        require_finite(dict(self.model.named_parameters()), "the model after the Adam step")
        self.iteration += 1
        return {"train/meta_loss": loss.item(), f"train/post_adaptation_{self.problem.metric}":
                score.item()}

    def close(self) -> None:
        """Nothing to release (the RL trainer's ``close`` stops its sampler's processes)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds; ``"problem"`` is the problem's own state where it has one
        (Omniglot: the character split and the archives it was made from)."""
        state = {
            "algo": "maml",
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "iteration": self.iteration,
            "config": dataclasses.asdict(self.config),
        }
        problem_state = self.problem.state_dict()
        if problem_state is not None:
            state["problem"] = problem_state
        return state

    def load(self, state: dict[str, Any], *, source: str) -> None:
        """Restore a checkpoint of ``state()``, checked first against the schema of this task's
        checkpoints (a CheckpointError names what is missing or wrong); the problem's saved
        state first (a checkpoint without one, written before it was saved, keeps the problem
        as built)."""
        check_run_state(state, source=source, algo="maml")
        check_compatible(state["config"], dataclasses.asdict(self.config),
                         ARCHITECTURE_KEYS + TASK_KEYS, source=source)
        if state.get("problem") is not None:
            self.problem.load_state_dict(state["problem"], source=source)
        load_state_dict_strict(self.model, state["model"], source=source)
        load_optimizer_strict(self.optimizer, state["optimizer"], source=source)
        try:
            self.generator.set_state(state["generator"])
        except RuntimeError as error:
            raise CheckpointError(f"{source}: the saved task-stream generator state does not "
                                  f"fit ({' '.join(str(error).split())[:200]})") from None
        self.iteration = state["iteration"]


def held_out_batch(problem: FewShotProblem, config: MAMLConfig, num_tasks: int,
                   *, query_size: int) -> tuple[Any, Any]:
    """A fixed batch of held-out tasks (test split, generator disjoint from training)."""
    generator = torch.Generator().manual_seed(config.seed + HELD_OUT_SEED_OFFSET)
    return problem.meta_batch(num_tasks, generator, split="test", query_size=query_size)


def curve_tags(metric: str, steps: int) -> list[str]:
    return [f"adaptation/{metric}_step_{k}" for k in range(steps + 1)]


def train(learner: MetaLearner, run_dir: Path, *, progress: bool = True,
          eval_query_size: int = 100) -> dict[str, float]:
    """Meta-train from ``learner.iteration`` to ``config.num_batches``; log and checkpoint.

    Returns the last logged values. A checkpoint is written atomically every
    ``checkpoint_every`` iterations and at the end. A non-finite iteration raises
    ``DivergenceError`` before its state is saved, naming the last checkpoint written.
    """
    config, problem = learner.config, learner.problem
    tags = curve_tags(problem.metric, config.eval_steps)
    logger = Logger(run_dir, resumed_after=learner.iteration)
    layout = {f"adaptation curve ({problem.metric})": tags}  # written with the tags' first values
    held_out = None
    if config.eval_every and config.eval_tasks:
        held_out = held_out_batch(problem, config, config.eval_tasks, query_size=eval_query_size)
    last: dict[str, float] = {}
    checkpoint = run_dir / CHECKPOINT_NAME
    saved = learner.iteration if checkpoint.exists() else None  # the last finite checkpoint
    bar = tqdm(total=config.num_batches, initial=learner.iteration, disable=not progress,
               desc=f"maml {config.task}", unit="it", dynamic_ncols=True)
    try:
        while learner.iteration < config.num_batches:
            start = time.perf_counter()
            try:
                values = learner.step()
            except NonFiniteError as error:
                raise DivergenceError(learner.iteration + 1, str(error),
                                      checkpoint if saved is not None else None, saved) from error
            values["time/iteration_s"] = time.perf_counter() - start
            it = learner.iteration
            if held_out is not None and it % config.eval_every == 0:
                curve = adaptation_curve(learner.task_losses, learner.task_scores,
                                         parameters_of(learner.model), *held_out,
                                         steps=config.eval_steps, step_size=config.fast_lr,
                                         chunk_size=problem.eval_chunk_size)
                means = curve.mean(dim=0)
                values.update({tag: m.item() for tag, m in zip(tags, means)})
                if layout:
                    logger.layout(layout)
                    layout = {}
                bar.set_postfix_str(_postfix(values, problem.metric, means), refresh=False)
            elif it % 10 == 0:
                bar.set_postfix_str(_postfix(values, problem.metric, None), refresh=False)
            logger.scalars(values, it)
            last.update(values)
            if it % config.checkpoint_every == 0 or it == config.num_batches:
                save_checkpoint(checkpoint, learner.state())
                saved = it
            bar.update(1)
        if learner.iteration == 0 or not (run_dir / CHECKPOINT_NAME).exists():
            save_checkpoint(run_dir / CHECKPOINT_NAME, learner.state())
    finally:
        bar.close()
        logger.close()
    return last


def _postfix(values: dict[str, float], metric: str, curve: Tensor | None) -> str:
    text = f"loss {values['train/meta_loss']:.3f}"
    if curve is not None:
        text += f" | held-out {metric}: step0 {curve[0]:.3f}"
        if len(curve) > 1:
            text += f" step1 {curve[1]:.3f}"
    return text
