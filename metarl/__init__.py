"""metarl: MAML for meta-reinforcement learning and few-shot learning, in PyTorch.

Importing metarl registers the built-in task families (``envs``) with Gymnasium, as
``metarl/Navigation2D-v0``, ``metarl/HalfCheetahVel-v0``, ... (see ``envs.registry``), and
tunes glibc's malloc thresholds for large tensors (``metarl.allocator``).
"""

import envs  # noqa: F401  (registers the task families)
from metarl.allocator import tune_malloc

tune_malloc()

__version__ = "0.1.0"
