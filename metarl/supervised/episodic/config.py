"""The options of the episodic methods (metric and black-box families), one config class each.

Every method trains on Omniglot episodes with Adam on the mean query loss of a batch of
episodes; what differs is the model and its few options. Each class's defaults are the built-in
ones; the papers' settings are in ``experiments/{method}/omniglot.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from metarl.config import THREADS_MAX, option, seed_option
from metarl.device import RESUME_NOTE, device_option
from metarl.supervised.omniglot.options import OmniglotOptions

#: What ``torch_threads`` means (as for MAML).
TORCH_THREADS_HELP = ("PyTorch threads (0: PyTorch's default, one per core; use 1 on a machine "
                      "busy with other jobs)")

#: Matching Networks' attention steps over the support set (Vinyals et al.'s setting).
FCE_STEPS = 5


@dataclass
class EpisodicOptions:
    """Options shared by every episodic method: the training budget, the episodes, Adam and
    its step decay, the periodic held-out accuracy, checkpoints and where the run computes."""

    task: str = option("omniglot", "few-shot task family (episodic methods classify: "
                       "omniglot only)", choices=("omniglot",))
    num_batches: int = option(3000, "meta-iterations (batches of episodes) to train for",
                              minimum=0, exclusive_minimum=False)
    meta_batch_size: int = option(32, "episodes per meta-iteration", minimum=0)
    meta_lr: float = option(1e-3, "Adam learning rate", minimum=0.0)
    lr_decay: float = option(1.0, "factor applied to the learning rate every lr_decay_every "
                             "iterations (1: constant; Prototypical Networks: 0.5)",
                             minimum=0.0, maximum=1.0)
    lr_decay_every: int = option(2000, "iterations between learning-rate decays", minimum=0)
    shots: int = option(1, "K: support images per class", minimum=0)
    queries: int = option(15, "query images per class", minimum=0)
    hidden: int = option(64, "filters of each conv block of the embedding", minimum=0)
    eval_every: int = option(500, "iterations between held-out accuracies (0: never)",
                             minimum=0, exclusive_minimum=False)
    eval_tasks: int = option(200, "held-out episodes in the periodic accuracy", minimum=0)
    checkpoint_every: int = option(500, "iterations between checkpoints (one is always written "
                                   "at the end)", minimum=0)
    seed: int = seed_option(0, "random seed (initialisation and episode sampling)")
    torch_threads: int = option(0, TORCH_THREADS_HELP, minimum=0, exclusive_minimum=False,
                                maximum=THREADS_MAX)
    device: str = device_option("cpu", "; the model, the episodes and the Adam step run there ("
                                + RESUME_NOTE + ")")
    output_dir: str = option("runs", "folder in which run directories are created")


@dataclass
class EpisodicConfig(OmniglotOptions, EpisodicOptions):
    """An episodic method on Omniglot: the shared options, then Omniglot's data options."""


@dataclass
class ProtoNetConfig(EpisodicConfig):
    """Prototypical Networks: no options beyond the embedding's."""


@dataclass
class MatchingConfig(EpisodicConfig):
    """Matching Networks, with or without full-context embeddings."""

    fce: bool = option(True, "full-context embeddings: a bidirectional LSTM over the support set "
                       "and an attention LSTM over the query's embedding")
    fce_steps: int = option(FCE_STEPS, "processing steps of the query's attention LSTM (with "
                            "--fce)", minimum=0)


@dataclass
class RelationConfig(EpisodicConfig):
    """Relation Networks: a learned comparison of feature maps."""

    relation_hidden: int = option(8, "units of the relation module's hidden layer", minimum=0)


@dataclass
class SiameseConfig(EpisodicConfig):
    """Siamese networks: trained on same/different pairs of the episodes' images."""


@dataclass
class MANNConfig(EpisodicConfig):
    """A memory-augmented network (LSTM controller, least-recently-used memory access)."""

    controller_size: int = option(200, "LSTM controller units", minimum=0)
    memory_rows: int = option(128, "memory slots", minimum=0)
    memory_width: int = option(40, "numbers per memory slot", minimum=0)
    num_reads: int = option(4, "read heads", minimum=0)
    usage_decay: float = option(0.95, "gamma: how much of a slot's usage survives a step",
                                minimum=0.0, maximum=1.0)
    key_strength: float = option(10.0, "beta, the sharpness of the reads: softmax over the slots "
                                 "of beta x cosine similarity (the paper: 1, near-uniform reads "
                                 "that leave training at chance)", minimum=0.0)
