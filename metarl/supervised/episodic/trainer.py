"""Training an episodic method: Adam on the mean query loss of a batch of episodes.

Each meta-iteration draws ``meta_batch_size`` Omniglot episodes of the training characters and
takes one Adam step on the mean of the model's per-episode loss (its ``episode_loss``: the
query cross-entropy for most methods)::

    φ ← φ - lr_n · Adam(∇_φ (1/B) Σ_i L_i(φ; S_i, Q_i)),    lr_n = meta_lr · lr_decay^⌊n / lr_decay_every⌋

Every ``eval_every`` iterations the held-out accuracy on a fixed batch of test-character
episodes is logged (``held_out/accuracy``). ``metarl.training.train`` drives the trainer; a
non-finite loss or gradient stops the run before the Adam step, and parameters made non-finite
by the step stop it before any checkpoint of them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from metarl.checkpoint_format import (
    RunSchema,
    check_run_state,
    generator_state,
    mapping,
    optimizer_state,
    tensors,
)
from metarl.device import cpu_state, resolve_device, to_device
from metarl.nonfinite import finite_backward, require_finite
from metarl.runs import (
    check_compatible,
    load_generator_strict,
    load_optimizer_strict,
    load_state_dict_strict,
)
from metarl.supervised.episodic.config import EpisodicConfig
from metarl.supervised.episodic.methods import METHODS, method_of
from metarl.supervised.omniglot.problem import OmniglotProblem
from metarl.supervised.trainer import HELD_OUT_SEED_OFFSET  # MAML's: held-out, apart from training

#: Episodes per forward pass when scoring held-out episodes (bounds memory).
EVAL_CHUNK = 50
#: Config keys a checkpoint must agree on to be loaded into a model, and those that define the
#: episodes; a resumed or evaluated run keeps them.
ARCHITECTURE_KEYS = ("task", "ways", "hidden", "fce", "fce_steps", "relation_hidden",
                     "controller_size", "memory_rows", "memory_width", "num_reads",
                     "usage_decay", "key_strength")
TASK_KEYS = ("shots", "queries", "split_seed", "test_fraction", "rotations")
#: What a checkpoint holds besides its algo, iteration and config: the model, Adam's state, the
#: episode stream's generator state and the character split.
CHECKPOINT_SCHEMA = RunSchema({"model": tensors, "optimizer": optimizer_state,
                               "generator": generator_state, "problem": mapping})


class EpisodicLearner:
    """The model, its Adam optimiser and the episode stream of one episodic run (a
    ``metarl.training.Trainer``)."""

    def __init__(self, problem: OmniglotProblem, config: EpisodicConfig):
        self.problem = problem
        self.config = config
        self.algo = method_of(config)
        torch.manual_seed(config.seed)
        self.device = resolve_device(config.device)
        self.model = METHODS[self.algo].build(config).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.meta_lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.iteration = 0
        self._held_out: tuple[Any, Any] | None = None

    @property
    def name(self) -> str:
        """The progress bar's label."""
        return f"{self.algo} {self.config.task}"

    @property
    def layout(self) -> dict[str, list[str]]:
        """Training and held-out accuracy on one TensorBoard chart."""
        return {"accuracy": ["train/accuracy", "held_out/accuracy"]}

    def learning_rate(self) -> float:
        """``meta_lr`` decayed by ``lr_decay`` every ``lr_decay_every`` iterations done."""
        config = self.config
        return config.meta_lr * config.lr_decay ** (self.iteration // config.lr_decay_every)

    def step(self) -> dict[str, float]:
        """One meta-iteration; returns the values to log, with the held-out accuracy every
        ``eval_every`` iterations."""
        held_out = self.held_out()
        start = time.perf_counter()
        support, query = to_device(self.problem.meta_batch(
            self.config.meta_batch_size, self.generator, split="train"), self.device)
        self.model.train()
        losses, accuracies = self.model.episode_loss(support[0], support[1], query[0], query[1])
        value = finite_backward(losses.mean(), self.optimizer, self.model,
                                loss_name=f"the {self.algo} loss", gradient_name="the gradient")
        lr = self.learning_rate()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        require_finite(dict(self.model.named_parameters()), "the model after the Adam step")
        self.iteration += 1
        values = {"train/loss": value, "train/accuracy": accuracies.mean().item(),
                  "train/learning_rate": lr, "time/iteration_s": time.perf_counter() - start}
        if held_out is not None and self.iteration % self.config.eval_every == 0:
            values["held_out/accuracy"] = float(self.scores(*held_out).mean())
        return values

    def held_out(self) -> tuple[Any, Any] | None:
        """The fixed held-out episodes of the periodic accuracy (None where ``eval_every`` or
        ``eval_tasks`` is 0), drawn after a resumed run's ``load`` (its split is its state)."""
        config = self.config
        if self._held_out is None and config.eval_every and config.eval_tasks:
            generator = torch.Generator().manual_seed(config.seed + HELD_OUT_SEED_OFFSET)
            self._held_out = to_device(self.problem.meta_batch(
                config.eval_tasks, generator, split="test"), self.device)
        return self._held_out

    @torch.no_grad()
    def scores(self, support: tuple[Tensor, Tensor], query: tuple[Tensor, Tensor],
               *, progress: bool = False) -> Tensor:
        """The query accuracy of every episode ``[tasks]``, ``EVAL_CHUNK`` episodes at a time
        (a task's scores do not depend on the others in its chunk)."""
        from metarl.supervised.episodic.model import accuracy

        self.model.eval()
        tasks = support[0].shape[0]
        chunks = range(0, tasks, EVAL_CHUNK)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc=f"{self.algo}: held-out episodes", unit="chunk")
        parts = []
        for first in chunks:
            part = slice(first, first + EVAL_CHUNK)
            logits = self.model.episode_logits(support[0][part], support[1][part],
                                               query[0][part])
            parts.append(accuracy(logits, query[1][part]))
        return torch.cat(parts).cpu()

    def summary(self, values: Mapping[str, float]) -> str | None:
        """The progress bar's text: the loss and training accuracy, and the held-out accuracy
        after an iteration that measured it."""
        text = f"loss {values['train/loss']:.3f} | train acc {values['train/accuracy']:.3f}"
        if "held_out/accuracy" in values:
            text += f" | held-out acc {values['held_out/accuracy']:.3f}"
        return text

    def close(self) -> None:
        """Nothing to release."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds (CPU tensors, whatever the device)."""
        return {"algo": self.algo, "model": cpu_state(self.model.state_dict()),
                "optimizer": cpu_state(self.optimizer.state_dict()),
                "generator": self.generator.get_state(), "problem": self.problem.state_dict(),
                "iteration": self.iteration, "config": dataclasses.asdict(self.config)}

    def load(self, state: dict[str, Any], *, source: str) -> None:
        """Restore a checkpoint of ``state()``, checked against the schema first."""
        check_run_state(state, source=source, algo=self.algo, schema=CHECKPOINT_SCHEMA)
        check_compatible(state["config"], dataclasses.asdict(self.config),
                         ARCHITECTURE_KEYS + TASK_KEYS, source=source)
        self.problem.load_state_dict(state["problem"], source=source)
        load_state_dict_strict(self.model, state["model"], source=source)
        load_optimizer_strict(self.optimizer, state["optimizer"], source=source)
        load_generator_strict(self.generator, state["generator"], source=source,
                              what="episode")
        self.iteration = state["iteration"]
        self._held_out = None


def build_learner(config: EpisodicConfig) -> EpisodicLearner:
    """The learner of a validated config, with its Omniglot episodes."""
    return EpisodicLearner(OmniglotProblem(config), config)
