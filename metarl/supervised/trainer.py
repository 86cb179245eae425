"""Supervised MAML meta-training (Finn et al. 2017, Algorithm 2), shared by sine and Omniglot.

Each meta-iteration samples a meta-batch of tasks, adapts the shared parameters θ to every
task's support set with ``num_steps`` inner steps (all tasks at once: ``adapt`` on task-stacked
parameters with the model's batched ``task_forward``), and takes one Adam step on the mean
query loss of the adapted parameters::

    θ ← θ - β ∇_θ (1/B) Σ_i L_i^query(θ'_i),    θ'_i = adapt(θ, D_i^support)

Every ``eval_every`` iterations the step also measures the adaptation curve of θ on a fixed
batch of held-out tasks (``adaptation/{metric}_step_{k}``). ``metarl.training.train`` drives the
trainer. An iteration whose meta-loss or meta-gradient is non-finite stops before the Adam step,
and one whose step leaves θ non-finite stops there: the loop raises ``DivergenceError`` before
any checkpoint of that state is written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from metarl.checkpoint_format import (
    MayBeAbsent,
    RunSchema,
    check_run_state,
    generator_state,
    mapping,
    optimizer_state,
    tensors,
)
from metarl.config import THREADS_MAX, option, seed_option
from metarl.core.maml import Params, adapt, parameters_of, stack_params
from metarl.device import RESUME_NOTE, cpu_state, device_option, resolve_device, to_device
from metarl.nonfinite import NonFiniteError, finite_backward, require_finite
from metarl.runs import (
    check_compatible,
    load_generator_strict,
    load_optimizer_strict,
    load_state_dict_strict,
)
from metarl.supervised.curves import adaptation_curve, task_functions
from metarl.supervised.problem import FewShotProblem, Start

#: Held-out tasks come from a generator seeded with ``seed + HELD_OUT_SEED_OFFSET``, so they are
#: disjoint in seed from the training stream (which uses ``seed``).
HELD_OUT_SEED_OFFSET = 1_000_003
#: Query examples per held-out task in the periodic adaptation curve (per class for
#: classification).
EVAL_QUERY_SIZE = 100
#: Without a held-out curve, the progress bar's loss is refreshed every this many iterations.
SUMMARY_EVERY = 10


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
    device: str = device_option("cpu", "; the model, the data batches and the meta-step run "
                                "there (" + RESUME_NOTE + ")")
    output_dir: str = option("runs", "folder in which run directories are created")


#: Config keys a checkpoint must agree on to be loaded into a model.
ARCHITECTURE_KEYS = ("task", "hidden_sizes", "ways")
#: Config keys that define the tasks (the episodes' shape and, for Omniglot, the character
#: split); a resumed or evaluated run must keep them. Keys a config lacks are not compared.
TASK_KEYS = ("shots", "queries", "split_seed", "test_fraction", "rotations")
#: What a checkpoint of ``MetaLearner.state()`` holds besides its algo, iteration and config:
#: the model, Adam's state and the task stream's generator state; an Omniglot run's also its
#: character split (``problem``), absent in checkpoints written before the split was saved.
CHECKPOINT_SCHEMA = RunSchema(
    {"model": tensors, "optimizer": optimizer_state, "generator": generator_state},
    kind_key="task", kinds={"sine": {}, "omniglot": {"problem": MayBeAbsent(mapping)}})


class MetaLearner:
    """The model, its Adam optimiser and the task stream of one supervised MAML run (a
    ``metarl.training.Trainer``)."""

    #: The algorithm whose checkpoints this trainer writes and loads (a subclass for another
    #: gradient-based method names its own).
    algo = "maml"

    def __init__(self, problem: FewShotProblem, config: MAMLConfig):
        self.problem = problem
        self.config = config
        torch.manual_seed(config.seed)
        self.device = resolve_device(config.device)
        self.model = problem.build_model().to(self.device)  # initialised on the CPU
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.meta_lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.iteration = 0
        self.curve_tags = curve_tags(problem.metric, config.eval_steps)
        self._held_out: tuple[Any, Any] | None = None  # built at the first step (see held_out)

    @property
    def name(self) -> str:
        """The progress bar's label."""
        return f"{self.algo} {self.config.task}"

    @property
    def layout(self) -> dict[str, list[str]]:
        """The held-out adaptation curve on one TensorBoard chart."""
        return {f"adaptation curve ({self.problem.metric})": self.curve_tags}

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
        """One meta-iteration; returns the values to log, with the held-out adaptation curve
        every ``eval_every`` iterations."""
        held_out = self.held_out()
        start = time.perf_counter()
        support, query = self.problem.meta_batch(self.config.meta_batch_size, self.generator,
                                                 split="train", query_size=self.config.queries)
        support, query = to_device((support, query), self.device)  # drawn on the CPU
        loss, score = self.meta_loss(support, query)
        meta_loss = finite_backward(loss, self.optimizer, self.model, loss_name="meta_loss",
                                    gradient_name="the meta-gradient")
        self.optimizer.step()
        require_finite(dict(self.model.named_parameters()), "the model after the Adam step")
        self.iteration += 1
        values = {"train/meta_loss": meta_loss,
                  f"train/post_adaptation_{self.problem.metric}": score.item(),
                  "time/iteration_s": time.perf_counter() - start}
        if held_out is not None and self.iteration % self.config.eval_every == 0:
            values.update(self.held_out_curve(held_out))
        return values

    def held_out(self) -> tuple[Any, Any] | None:
        """The held-out batch of the periodic curve (None where ``eval_every`` or
        ``eval_tasks`` is 0), drawn once, after a resumed run's ``load`` (Omniglot's split is
        part of its state)."""
        config = self.config
        if self._held_out is None and config.eval_every and config.eval_tasks:
            self._held_out = to_device(held_out_batch(self.problem, config, config.eval_tasks,
                                                      query_size=EVAL_QUERY_SIZE), self.device)
        return self._held_out

    def start(self) -> Start:
        """What the held-out curves fine-tune (here and in ``evaluate``): the parameters this
        method adapts and the model that runs them; MAML's is the whole model. A method that
        adapts part of θ (ANIL: the head) returns a model running the rest frozen."""
        return Start(self.model, parameters_of(self.model))

    def baseline_lr(self) -> float:
        """The Adam learning rate of the baselines ``evaluate`` compares this run with: the
        run's Adam meta learning rate β (``meta_lr``)."""
        return self.config.meta_lr

    def held_out_curve(self, held_out: tuple[Any, Any]) -> dict[str, float]:
        """The mean held-out loss or score after 0..``eval_steps`` inner steps from θ, on what
        ``start`` adapts."""
        start = self.start()
        curve = adaptation_curve(*task_functions(self.problem, start.model), start.params,
                                 *held_out, steps=self.config.eval_steps,
                                 step_size=self.config.fast_lr,
                                 chunk_size=self.problem.eval_chunk_size)
        means = curve.mean(dim=0)
        bad = (~torch.isfinite(means)).nonzero()
        if len(bad):
            config, step = self.config, bad[0].item()
            if step == 0:  # before any inner step: the model itself
                raise NonFiniteError(f"the held-out {self.problem.metric} is non-finite before "
                                     f"adaptation (the model's output on the held-out tasks)")
            raise NonFiniteError(
                f"the held-out {self.problem.metric} is non-finite after {step} adaptation "
                f"steps (fast_lr={config.fast_lr:g}, eval_steps={config.eval_steps}); fewer "
                f"--eval-steps, --eval-every 0 or a smaller --fast-lr keeps it finite")
        return {tag: m.item() for tag, m in zip(self.curve_tags, means)}

    def summary(self, values: Mapping[str, float]) -> str | None:
        """The progress bar's text: the meta-loss, and the held-out curve's first steps after
        an iteration that measured it; None (keep the text) on most other iterations."""
        steps = [values[tag] for tag in self.curve_tags[:2] if tag in values]
        if not steps and self.iteration % SUMMARY_EVERY:
            return None
        text = f"loss {values['train/meta_loss']:.3f}"
        if steps:
            text += f" | held-out {self.problem.metric}: step0 {steps[0]:.3f}"
            if len(steps) > 1:
                text += f" step1 {steps[1]:.3f}"
        return text

    def close(self) -> None:
        """Nothing to release (the RL trainer's ``close`` stops its sampler's processes)."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds; ``"problem"`` is the problem's own state where it has one
        (Omniglot: the character split and the archives it was made from)."""
        state = {
            "algo": self.algo,
            "model": cpu_state(self.model.state_dict()),  # CPU tensors, whatever the device
            "optimizer": cpu_state(self.optimizer.state_dict()),
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
        check_run_state(state, source=source, algo=self.algo, schema=CHECKPOINT_SCHEMA)
        check_compatible(state["config"], dataclasses.asdict(self.config),
                         ARCHITECTURE_KEYS + TASK_KEYS, source=source)
        if state.get("problem") is not None:
            self.problem.load_state_dict(state["problem"], source=source)
        load_state_dict_strict(self.model, state["model"], source=source)
        load_optimizer_strict(self.optimizer, state["optimizer"], source=source)
        load_generator_strict(self.generator, state["generator"], source=source,
                              what="task-stream")
        self.iteration = state["iteration"]


def held_out_batch(problem: FewShotProblem, config: MAMLConfig, num_tasks: int,
                   *, query_size: int) -> tuple[Any, Any]:
    """A fixed batch of held-out tasks (test split, generator disjoint from training)."""
    generator = torch.Generator().manual_seed(config.seed + HELD_OUT_SEED_OFFSET)
    return problem.meta_batch(num_tasks, generator, split="test", query_size=query_size)


def curve_tags(metric: str, steps: int) -> list[str]:
    """The TensorBoard tags of the held-out adaptation curve, one per step count 0..``steps``."""
    return [f"adaptation/{metric}_step_{k}" for k in range(steps + 1)]
