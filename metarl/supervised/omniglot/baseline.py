"""The non-meta baseline for few-shot classification (MAML paper, section 5.1's comparison).

A ``ConvNet`` with one output per meta-train class (every character of the train split and each
of its rotations) is trained by plain supervised learning on those classes. On a held-out
N-way episode its head is replaced by a fresh N-way linear head (zeros), which is fine-tuned on
the support set with the same SGD steps MAML uses; the convolutional features stay frozen.
After 0 steps every logit is 0, so the first prediction is chance; after one step from zeros
the head is a nearest-class-mean classifier on the features, and more steps refine it.

Batch norm uses batch statistics as in ``ConvNet`` (the support and the query set of an
episode are each normalised as one batch), so the baseline sees its episodes exactly as MAML
does.

The classifier depends on the train split's classes and its training settings only, not on the
evaluated run, so ``cached_classifier`` trains it once and keeps it in a cache folder (the
Omniglot data cache's ``classifiers/``), in a file named by what it was trained on (``training_key``:
the classes, the images' preprocessing ``omniglot.data.images.PREPROCESSING``, the settings). Every
later evaluation with the same split and settings reuses it, whichever run it evaluates; a file
whose weights do not fit the model, or that cannot be read, is retrained over.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from metarl.core.maml import stack_params
from metarl.device import CPU, cpu_state
from metarl.runs import CheckpointError, load_checkpoint, load_state_dict_strict, save_checkpoint
from metarl.supervised.omniglot.data import EpisodeSampler
from metarl.supervised.omniglot.data import images as omniglot_images
from metarl.supervised.omniglot.model import ConvNet, grouped_features, task_slices
from metarl.supervised.problem import HeldOut

#: Tasks per grouped pass of ``episode_features`` off the CPU: an evaluation's 1000 episodes of
#: 75 query images in one pass would hold some 15 GB of first-layer activations; 100 hold 1.5.
DEVICE_FEATURE_TASKS = 100


def train_classifier(sampler: EpisodeSampler, *, iterations: int, batch_size: int, lr: float,
                     seed: int, progress: bool = False,
                     device: torch.device = CPU) -> ConvNet:
    """A ``ConvNet`` over all of ``sampler``'s classes, trained with Adam on cross-entropy on
    ``device``; each batch draws ``batch_size`` (class, drawing) pairs uniformly, on the CPU.
    ``progress``: a bar of the iterations on stderr."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # channels_last: oneDNN's faster convolution layout on CPU (0.08 s vs 0.11 s per batch).
    model = ConvNet(sampler.num_classes).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(iterations), desc="classifier baseline: training", unit="it",
                  disable=not progress, dynamic_ncols=True):
        x, y = sampler.sample_images(batch_size, rng)
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


def training_key(sampler: EpisodeSampler, *, iterations: int, batch_size: int, lr: float,
                 seed: int) -> dict[str, Any]:
    """What a trained classifier depends on: its classes (a digest of the characters, their
    drawing counts and the rotations), the preprocessing that made the images, and the training
    settings."""
    counts = np.diff(sampler.data.offsets)[sampler.char_index]
    digest = hashlib.sha256(repr((sampler.characters, counts.tolist(), sampler.rotations))
                            .encode()).hexdigest()
    return {"classes": digest, "num_classes": sampler.num_classes,
            "preprocessing": omniglot_images.PREPROCESSING, "iterations": iterations,
            "batch_size": batch_size, "lr": lr, "seed": seed}


def classifier_cache_file(cache_dir: str | Path, key: Mapping[str, Any]) -> Path:
    """Where the classifier trained as ``key`` says is kept: ``cache_dir/classifiers/``, in a
    file named by a digest of the key."""
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()
    return Path(cache_dir) / "classifiers" / f"classifier_{digest[:16]}.pt"


def cached_classifier(sampler: EpisodeSampler, *, iterations: int, batch_size: int, lr: float,
                      seed: int, cache_dir: str | Path | None,
                      progress: bool = False,
                      device: torch.device = CPU) -> ConvNet:
    """``train_classifier`` on ``device``, reusing the model kept in ``cache_dir`` when one was
    trained on the same classes and images with the same settings (``training_key``,
    ``classifier_cache_file``); otherwise trains it and keeps it there (atomically).
    ``cache_dir=None`` always trains. A kept file that is unreadable, holds another key, or
    whose weights do not fit the model (missing, unexpected or misshapen keys) is retrained
    over. The kept weights are CPU tensors, loaded onto ``device`` (a model trained on
    another device is reused: the key holds what it was trained on and how, not where)."""
    key = training_key(sampler, iterations=iterations, batch_size=batch_size, lr=lr, seed=seed)
    cache = None if cache_dir is None else classifier_cache_file(cache_dir, key)
    if cache is not None and cache.is_file():
        model = _load_classifier(cache, key, sampler.num_classes)
        if model is not None:
            return model.to(device)
    model = train_classifier(sampler, iterations=iterations, batch_size=batch_size, lr=lr,
                             seed=seed, progress=progress, device=device)
    if cache is not None:
        save_checkpoint(cache, {"key": key, "model": cpu_state(model.state_dict())})
    return model


def _load_classifier(cache: Path, key: Mapping[str, Any], num_classes: int) -> ConvNet | None:
    """The classifier kept in ``cache`` if it was saved under ``key`` and fits the model, else
    None (the caller retrains over it)."""
    try:
        saved = load_checkpoint(cache)
    except CheckpointError:
        return None
    if saved.get("key") != key or not isinstance(saved.get("model"), Mapping):
        return None
    model = ConvNet(num_classes).to(memory_format=torch.channels_last)
    try:
        load_state_dict_strict(model, saved["model"], source=str(cache))
    except CheckpointError:
        return None  # weights of another model under a matching key
    return model


@torch.no_grad()
def episode_features(model: ConvNet, x: Tensor, *, progress: bool = False,
                     desc: str = "classifier baseline: features") -> Tensor:
    """``x [T, B, 1, 28, 28] -> [T, B, F]``: ``model.features`` of each task's images, each
    task's batch normalised on its own, as grouped convolutions of the shared weights over
    the task groups of ``task_slices`` (equal to the per-task loop up to float rounding), at
    most ``DEVICE_FEATURE_TASKS`` tasks a group off the CPU. ``progress``: a bar of the tasks on
    stderr."""
    params = {name: p.detach() for name, p in model.named_parameters()
              if not name.startswith("head.")}
    parts = []
    with tqdm(total=x.shape[0], desc=desc, unit="task", disable=not progress,
              dynamic_ncols=True) as bar:
        group = None if x.device.type == "cpu" else DEVICE_FEATURE_TASKS
        for part in task_slices(x.shape[0], x.device, group):
            tasks = part.stop - part.start
            parts.append(grouped_features(stack_params(params, tasks), x[part],
                                          num_blocks=model.num_blocks))
            bar.update(tasks)
    return torch.cat(parts)


def head_finetune_curve(features_support: Tensor, support_y: Tensor, features_query: Tensor,
                        query_y: Tensor, *, ways: int, steps: int,
                        step_size: float | Sequence[float]) -> Tensor:
    """Query accuracy ``[T, steps + 1]`` of a zero-initialised N-way head after each SGD step
    on the support cross-entropy (mean over the support set, as the MAML inner loss)."""
    sizes = [step_size] * steps if isinstance(step_size, (int, float)) else list(step_size)
    tasks, dim = features_support.shape[0], features_support.shape[-1]
    device = features_support.device
    weight = torch.zeros(tasks, ways, dim, device=device, requires_grad=True)
    bias = torch.zeros(tasks, 1, ways, device=device, requires_grad=True)

    def logits(features: Tensor) -> Tensor:
        return torch.baddbmm(bias, features, weight.transpose(1, 2))

    def accuracy() -> Tensor:
        with torch.no_grad():
            return (logits(features_query).argmax(-1) == query_y).float().mean(1)

    scores = [accuracy()]
    for size in sizes:
        loss = F.cross_entropy(logits(features_support).transpose(1, 2), support_y,
                               reduction="none").mean(1).sum()
        grad_w, grad_b = torch.autograd.grad(loss, (weight, bias))
        with torch.no_grad():
            weight -= size * grad_w
            bias -= size * grad_b
        scores.append(accuracy())
    return torch.stack(scores, dim=1)


class ClassifierBaseline:
    """The classifier as a plug-in of ``evaluate --baselines``: trained on the train split's
    classes for the evaluation's ``iterations`` Adam steps (batch 64 images, not
    ``batch_size`` tasks; ``lr``; seed ``seed + 3``), kept in the data cache folder for every
    later evaluation with the same split and settings (``cached_classifier``), its head
    replaced and fine-tuned on each support set with the same SGD steps as MAML, and, flat,
    after ``converged_head_steps`` steps of the first size; all episodes at once."""

    name = "classifier"
    #: SGD steps of the "converged" head (a flat reference line).
    converged_head_steps = 100
    flat = {"classifier_converged": f"classifier, head after {converged_head_steps} steps"}

    def run(self, problem, held_out: HeldOut) -> dict[str, np.ndarray]:
        sizes, progress = held_out.step_sizes, held_out.progress
        model = cached_classifier(problem.samplers["train"], iterations=held_out.iterations,
                                  batch_size=64, lr=held_out.lr, seed=held_out.seed + 3,
                                  cache_dir=problem.cache_dir, progress=progress,
                                  device=held_out.device)
        model.eval()
        (support_x, support_y), (query_x, query_y) = held_out.support, held_out.query
        features_support = episode_features(model, support_x, progress=progress,
                                            desc="classifier baseline: support features")
        features_query = episode_features(model, query_x, progress=progress,
                                          desc="classifier baseline: query features")
        args = (features_support, support_y, features_query, query_y)
        ways, steps = problem.config.ways, held_out.steps
        curve = head_finetune_curve(*args, ways=ways, steps=steps, step_size=sizes)
        converged = head_finetune_curve(*args, ways=ways, steps=self.converged_head_steps,
                                        step_size=sizes[0] if sizes else problem.config.fast_lr)
        return {self.name: curve.cpu().numpy(),
                "classifier_converged": converged[:, -1:].expand(-1, steps + 1).cpu().numpy()}

    def meta(self, held_out: HeldOut) -> dict[str, int]:
        """Nothing: curve.json's ``baseline_iterations`` are its iterations."""
        return {}
