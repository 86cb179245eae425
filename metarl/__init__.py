"""metarl: MAML for meta-reinforcement learning and few-shot learning, in PyTorch.

Importing metarl registers the built-in task families (``metarl.envs``) with Gymnasium, as
``metarl/Navigation2D-v0``, ``metarl/HalfCheetahVel-v0``, ... (see ``metarl.envs.registry``).
It changes nothing else in the process: the malloc tuning of ``metarl.allocator`` is applied by
the command line and the sampler's worker processes, or by calling ``tune_malloc()``.
"""

from metarl import envs  # noqa: F401  (registers the task families)

__version__ = "0.1.0"
