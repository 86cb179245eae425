"""FOMAML, first-order MAML (Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks", ICML 2017, section 5.2), for sine and Omniglot.

MAML's update with the inner gradient treated as a constant: the meta-gradient of the query
loss at the adapted parameters θ'_i is taken as its gradient with respect to θ'_i itself, the
Hessian term of the chain rule dropped::

    θ'_i = θ − α ∇_θ L_i^support(θ)             (num_steps times; θ [...] -> θ'_i [B, ...])
    θ   ← Adam step on  (1/B) Σ_i ∇_{θ'_i} L_i^query(θ'_i)

It is MAML's trainer with ``first_order`` true (``adapt(..., first_order=True)``, Omniglot's
grouped ``meta_loss`` likewise); its configs refuse false, which is the ``maml`` method.
"""

from __future__ import annotations

from metarl.supervised.optimization.configs import require_first_order
from metarl.supervised.problem import FewShotProblem
from metarl.supervised.trainer import MAMLConfig, MetaLearner


class FOMAMLLearner(MetaLearner):
    """First-order MAML: ``MetaLearner`` on a config with ``first_order`` true; its
    checkpoints name ``fomaml``."""

    algo = "fomaml"

    def __init__(self, problem: FewShotProblem, config: MAMLConfig):
        require_first_order(config, "fomaml", "use maml for the second-order method")
        super().__init__(problem, config)
