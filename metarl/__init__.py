"""metarl: MAML for meta-reinforcement learning and few-shot learning, in PyTorch."""

__version__ = "0.1.0"
