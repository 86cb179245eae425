"""metarl: MAML for meta-reinforcement learning and few-shot learning, in PyTorch.

Importing metarl registers the built-in task families (``metarl.envs``) with Gymnasium, as
``metarl/Navigation2D-v0``, ``metarl/HalfCheetahVel-v0``, ... (see ``metarl.envs.registry``), and
tunes glibc's malloc thresholds for large tensors (``metarl.allocator``).
"""

from metarl import envs  # noqa: F401  (registers the task families)
from metarl.allocator import tune_malloc

tune_malloc()

__version__ = "0.1.0"
