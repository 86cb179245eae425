"""Omniglot N-way K-shot classification (Finn et al. 2017, section 5.1; docs/tasks.md).

* ``data``: the images, from the official zips to seeded episodes (its own package).
* ``problem``: ``OmniglotConfig`` and ``OmniglotProblem``, the task for the supervised trainer:
  the class-disjoint split, episodes, the cross-entropy loss and accuracy.
* ``model``: the paper's 4-block conv net (``ConvNet``) and its task-grouped forward.
* ``maml``: MAML's meta-loss on a batch of episodes, tasks run as grouped convolutions.
* ``baseline``: the non-meta baseline, a classifier of the training classes whose head is
  fine-tuned on each episode.
"""
