"""The configs of FOMAML, Reptile and ANIL, one class per (method, task).

Each subclasses the task's MAML config (``SineConfig``, ``OmniglotConfig``), so the task's
options come with it, and keeps MAML's fields where they mean the same; a field whose meaning
changes is declared again with its own help text. Constructed directly, a config holds the
built-in defaults only, not ``experiments/{method}/{task}.yaml``, and is not validated.

* FOMAML (Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
  Networks", ICML 2017, section 5.2): MAML's settings with ``first_order`` true, refused false.
* Reptile (Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", 2018):
  ``num_steps`` is k, ``fast_lr`` the inner SGD step, ``meta_lr`` the outer step size ε at the
  first iteration (annealed linearly to 0 over ``num_batches``).
* ANIL (Raghu, Raghu, Bengio & Vinyals, "Rapid Learning or Feature Reuse?", ICLR 2020): MAML's
  settings, the inner loop on the last linear layer only.
"""

from __future__ import annotations

from dataclasses import dataclass

from metarl.config import ConfigError, option
from metarl.supervised.omniglot.problem import OmniglotConfig
from metarl.supervised.sine.problem import SineConfig

FIRST_ORDER_HELP = "first order: always true (use maml for the second-order method)"
REPTILE_FIRST_ORDER_HELP = ("Reptile is first order: it never differentiates through the inner "
                            "loop (always true)")
REPTILE_NUM_STEPS_HELP = ("k: inner SGD steps on each task's support set from theta, in "
                          "training (MAML's num_steps)")
REPTILE_FAST_LR_HELP = ("inner SGD learning rate (alpha), in training and in every held-out "
                        "curve (MAML's fast_lr)")
REPTILE_META_LR_HELP = ("outer step size epsilon at the first iteration, annealed linearly to 0 "
                        "over num_batches: theta += epsilon * mean_i(theta'_i - theta)")
REPTILE_BATCHES_HELP = ("meta-iterations to train for; epsilon anneals to 0 over them, so a "
                        "resumed run keeps its own")
ANIL_NUM_STEPS_HELP = "inner gradient steps on the head (last linear layer) during meta-training"
ANIL_FAST_LR_HELP = "inner-loop learning rate (alpha) of the head"


def require_first_order(config: object, method: str, fix: str) -> None:
    """ConfigError unless ``config.first_order`` is true (``method`` names the algorithm,
    ``fix`` what to use instead)."""
    if not config.first_order:
        raise ConfigError(f"first_order={config.first_order!r} is not valid for {method}, which "
                          f"is first order: set first_order true, or {fix}")


@dataclass
class FOMAMLSineConfig(SineConfig):
    """FOMAML on sine regression: MAML's sine settings, first order."""

    first_order: bool = option(True, FIRST_ORDER_HELP)

    def check(self) -> None:
        require_first_order(self, "fomaml", "use maml for the second-order method")


@dataclass
class FOMAMLOmniglotConfig(OmniglotConfig):
    """FOMAML on Omniglot: MAML's Omniglot settings, first order."""

    first_order: bool = option(True, FIRST_ORDER_HELP)

    def check(self) -> None:
        require_first_order(self, "fomaml", "use maml for the second-order method")


@dataclass
class ReptileSineConfig(SineConfig):
    """Reptile on sine regression: the settings of the paper's sine demo (k = 5 SGD steps of
    0.02, ε from 0.1 to 0, one task per iteration, 30000 iterations)."""

    num_batches: int = option(30000, REPTILE_BATCHES_HELP, minimum=0, exclusive_minimum=False)
    meta_batch_size: int = option(1, "tasks per meta-iteration", minimum=0)
    num_steps: int = option(5, REPTILE_NUM_STEPS_HELP, minimum=0)
    fast_lr: float = option(0.02, REPTILE_FAST_LR_HELP, minimum=0.0)
    meta_lr: float = option(0.1, REPTILE_META_LR_HELP, minimum=0.0)
    first_order: bool = option(True, REPTILE_FIRST_ORDER_HELP)

    def check(self) -> None:
        require_first_order(self, "reptile", "leave it unset")


@dataclass
class ReptileOmniglotConfig(OmniglotConfig):
    """Reptile on Omniglot: the paper's settings (k = 5 inner steps, ε from 1 to 0, 5 tasks per
    iteration, 100000 iterations), with SGD inner steps of MAML's α = 0.4 (see ``reptile``)."""

    num_batches: int = option(100000, REPTILE_BATCHES_HELP, minimum=0, exclusive_minimum=False)
    meta_batch_size: int = option(5, "tasks per meta-iteration", minimum=0)
    num_steps: int = option(5, REPTILE_NUM_STEPS_HELP, minimum=0)
    fast_lr: float = option(0.4, REPTILE_FAST_LR_HELP, minimum=0.0)
    meta_lr: float = option(1.0, REPTILE_META_LR_HELP, minimum=0.0)
    first_order: bool = option(True, REPTILE_FIRST_ORDER_HELP)
    eval_steps: int = option(5, "inner steps in the held-out adaptation curve", minimum=0,
                             exclusive_minimum=False)

    def check(self) -> None:
        require_first_order(self, "reptile", "leave it unset")


@dataclass
class ANILSineConfig(SineConfig):
    """ANIL on sine regression: MAML's sine settings, the inner loop on the output layer."""

    num_steps: int = option(1, ANIL_NUM_STEPS_HELP, minimum=0)
    fast_lr: float = option(0.01, ANIL_FAST_LR_HELP, minimum=0.0)


@dataclass
class ANILOmniglotConfig(OmniglotConfig):
    """ANIL on Omniglot: MAML's Omniglot settings, the inner loop on the linear head."""

    num_steps: int = option(1, ANIL_NUM_STEPS_HELP, minimum=0)
    fast_lr: float = option(0.4, ANIL_FAST_LR_HELP, minimum=0.0)


#: Method -> task -> config class.
CONFIGS: dict[str, dict[str, type]] = {
    "fomaml": {"sine": FOMAMLSineConfig, "omniglot": FOMAMLOmniglotConfig},
    "reptile": {"sine": ReptileSineConfig, "omniglot": ReptileOmniglotConfig},
    "anil": {"sine": ANILSineConfig, "omniglot": ANILOmniglotConfig},
}
