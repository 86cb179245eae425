"""Sine-wave regression (Finn et al. 2017, section 5.1; docs/tasks.md).

* ``problem``: ``SineTasks`` (the task distribution), ``SineConfig`` and ``SineProblem``, the
  task for the supervised trainer, with its MSE loss.
* ``model``: the MLP (1-40-40-1, ReLU) and its task-stacked forward.
* ``baseline``: the oracle, an MLP given each task's amplitude and phase. (The pretrained
  baseline, which any regression problem can use, is ``metarl.supervised.pretrained``.)
"""
