"""Gradient-based meta-learners beyond MAML, each a ``MetaLearner`` for sine and Omniglot.

* ``fomaml``: first-order MAML (Finn et al., ICML 2017, section 5.2);
* ``reptile``: Reptile (Nichol, Achiam & Schulman, 2018);
* ``anil``: MAML with the inner loop on the head only (Raghu et al., ICLR 2020);
* ``configs``: their config classes, one per (method, task).

``CONFIGS`` (method -> task -> config class) and ``TRAINERS`` (method -> trainer class, built as
``TRAINERS[method](problem, config)`` like ``MetaLearner``) are what ``metarl.algorithms``
registers. Importing this package imports torch.
"""

from __future__ import annotations

from metarl.supervised.optimization.anil import ANILLearner
from metarl.supervised.optimization.configs import CONFIGS
from metarl.supervised.optimization.fomaml import FOMAMLLearner
from metarl.supervised.optimization.reptile import ReptileLearner

#: Method -> its trainer, ``TRAINERS[method](problem, config)``.
TRAINERS: dict[str, type] = {"fomaml": FOMAMLLearner, "reptile": ReptileLearner,
                             "anil": ANILLearner}

__all__ = ["CONFIGS", "TRAINERS", "ANILLearner", "FOMAMLLearner", "ReptileLearner"]
