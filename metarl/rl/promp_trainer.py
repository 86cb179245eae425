"""The ProMP trainer: MAML-TRPO's meta-iteration (``metarl.rl.trainer.MetaRLTrainer``: the same
tasks, episodes, seeds and logging) with ProMP's outer steps (``metarl.rl.promp``).

Training state: the policy, the outer Adam optimiser's moments and the KL coefficient η, and the
iteration counter (every draw of iteration ``i`` comes from ``derive_seed(seed, i, ...)``, as in
MAML-TRPO), so a run resumed from a checkpoint continues exactly as the uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from metarl.checkpoint_format import RunSchema, optimizer_state, tensors
from metarl.device import cpu_state
from metarl.rl.config import MetaRLConfig, PROMPConfig
from metarl.rl.promp import ProMP
from metarl.rl.trainer import MetaBatch, MetaRLTrainer
from metarl.runs import load_optimizer_strict

log = logging.getLogger(__name__)


def coefficient(value: Any) -> str | None:
    """A finite float >= 0 (the KL coefficient η)."""
    if isinstance(value, float) and math.isfinite(value) and value >= 0.0:
        return None
    return f" is {value!r}, expected a finite float >= 0"


#: What a checkpoint of ``ProMPTrainer.state()`` holds besides its algo, iteration and config.
CHECKPOINT_SCHEMA = RunSchema({"policy": tensors, "optimizer": optimizer_state,
                               "kl_coef": coefficient})


class ProMPTrainer(MetaRLTrainer):
    """A ProMP run (a ``metarl.training.Trainer``): MAML-TRPO's sampling, ProMP's outer step."""

    algo = "promp"
    schema = CHECKPOINT_SCHEMA
    outer_name = "ProMP outer steps"
    config: PROMPConfig
    learner: ProMP

    def make_learner(self) -> ProMP:
        target = PROMPConfig.__dataclass_fields__["target_inner_kl"].default
        if not self.config.adaptive_kl and self.config.target_inner_kl != target:
            log.warning("warning: target_inner_kl=%g ignored: the KL penalty's coefficient is "
                        "fixed (add --adaptive-kl to aim it at this KL)",
                        self.config.target_inner_kl)
        return ProMP(self.policy, self.config)

    def outer_step(self, batch: MetaBatch) -> dict[str, float]:
        """Step 5, ProMP's: ``num_outer_steps`` Adam steps; returns its values to log."""
        info = self.learner.step(batch.train_data, batch.valid_data, adapted=batch.adapted)
        return {
            "promp/objective_before": info.objective_before,
            "promp/objective_after": info.objective_after,
            "promp/inner_kl": info.inner_kl,
            "promp/kl_coef": info.kl_coef,
            "promp/clip_fraction": info.clip_fraction,
            "promp/gradient_norm": info.gradient_norm,
        }

    def state(self) -> dict[str, Any]:
        """MAML-TRPO's state (policy, iteration, config) with the Adam optimiser's state (CPU
        tensors) and η."""
        return {**super().state(), "optimizer": cpu_state(self.learner.optimizer.state_dict()),
                "kl_coef": self.learner.kl_coef}

    def load(self, state: dict[str, Any], *, source: str) -> None:
        """Restore a checkpoint of ``state()`` (checked against ``CHECKPOINT_SCHEMA`` first)."""
        super().load(state, source=source)
        load_optimizer_strict(self.learner.optimizer, state["optimizer"], source=source)
        self.learner.kl_coef = state["kl_coef"]


def as_maml_trpo_state(state: dict[str, Any]) -> dict[str, Any]:
    """A ProMP checkpoint's state as the MAML-TRPO checkpoint of the same policy, which
    ``metarl.rl.evaluate`` evaluates: ProMP's policy and inner step are MAML's (the LVC
    objective's gradient is the VPG one), so its held-out curve is drawn the same way. The
    config keeps the options every meta-RL run shares; TRPO's take their defaults (read only
    by the multi-task TRPO baselines that ``evaluate --baselines`` trains)."""
    shared = {f.name for f in dataclasses.fields(MetaRLConfig)}
    return {"algo": "maml_trpo", "policy": state["policy"], "iteration": state["iteration"],
            "config": {k: v for k, v in state["config"].items() if k in shared}}
