"""The text of the command line's help pages: what each command does, its choices, examples.

``metarl.run`` builds the pages from these and from the config classes, whose fields carry
their own help and whose defaults each page shows.
"""

from __future__ import annotations

import textwrap

from metarl.config import experiment_file

#: ``python -m metarl.run --help``.
HELP = """\
usage: python -m metarl.run COMMAND [options]

Meta-learning with MAML (Finn, Abbeel & Levine, 2017): few-shot supervised learning and
meta-reinforcement learning on one MAML core.

commands:
  maml        meta-train a model on a few-shot task: sine regression or Omniglot
  maml_trpo   meta-train a policy with MAML-TRPO on a family of RL tasks
  evaluate    the adaptation curve of a trained run on held-out tasks, with baselines

examples:
  python -m metarl.run maml --task sine --num-batches 5000
  python -m metarl.run maml_trpo --env navigation_2d --num-batches 100
  python -m metarl.run evaluate --run runs/maml_trpo__navigation_2d__0__20261123-150000

Each command's options, with their defaults: python -m metarl.run COMMAND --help.
Every option is also a YAML key (--config FILE). More in the repository: README.md, and
docs/tasks.md (the task families), docs/protocol.md (the algorithm, the defaults and the
evaluation protocol), docs/results.md (published numbers and how they were made).
"""

#: The description of ``maml --help``.
MAML_HELP = """\
Meta-train a model with supervised MAML: each meta-iteration adapts the model to a batch of
sampled tasks with gradient steps on their support examples, then takes an Adam step on the
adapted models' loss on the query examples.

tasks (--task):
  sine        sine-wave regression: amplitude in [0.1, 5], phase in [0, pi], x in [-5, 5];
              an MLP 1-40-40-1 learns from K points
  omniglot    N-way K-shot classification of handwritten characters with the 4-block conv
              net; needs the Omniglot zips in --data-dir (or --download)
"""

#: The description of ``maml_trpo --help``.
MAML_TRPO_HELP = """\
Meta-train a Gaussian MLP policy with MAML-TRPO: each meta-iteration samples episodes on a
batch of tasks, adapts the policy to each task with policy-gradient steps, samples again with
the adapted policies and improves the starting policy with a TRPO step through the adaptation.

task families (--env):
  navigation_2d   a point moves to a goal in [-0.5, 0.5]^2 (100 steps)
  cheetah_vel     half-cheetah runs at a target velocity in [0, 2] (200 steps)
  cheetah_dir     half-cheetah runs forward or backward (200 steps)
  ant_vel         ant runs at a target velocity in [0, 3] (200 steps)
  ant_dir         ant runs forward or backward (200 steps)
  ant_goal        ant walks to a goal position in [-3, 3]^2 (200 steps)
  NAME+oracle     NAME with the task appended to every observation (the oracle baseline)
  a Gymnasium id or package.module:Class of your own (README: "Your own task family")
"""

#: The description of ``evaluate --help``.
EVALUATE_HELP = """\
The adaptation curve of a trained run: its score on held-out tasks after 0..K adaptation steps
(mean with a 95% confidence interval), next to the baselines. Supervised runs: MSE (sine) or
accuracy (Omniglot); MAML-TRPO runs: the mean return. Writes curve.json, curve.csv, curve.png,
per_task.csv and TensorBoard events into --output.
"""

#: Example lines at the foot of each command's help page.
EXAMPLES = {
    "maml": ("python -m metarl.run maml --task sine --num-batches 5000 --shots 5",
             "python -m metarl.run maml --task omniglot --ways 5 --shots 1 --data-dir DIR",
             "python -m metarl.run maml --resume runs/maml__sine__0__20261123-140000 "
             "--num-batches 100000"),
    "maml_trpo": ("python -m metarl.run maml_trpo --env navigation_2d --num-batches 100",
                  "python -m metarl.run maml_trpo --env cheetah_vel --hidden-sizes 100 100 "
                  "--nonlinearity relu",
                  "python -m metarl.run maml_trpo --env cheetah_vel+oracle --num-steps 0"),
    "evaluate": ("python -m metarl.run evaluate --run runs/maml__sine__0__20261123-140000",
                 "python -m metarl.run evaluate --run RUN_DIR --baselines "
                 "--env-steps-per-task 4000"),
}


def defaults_note(algo: str, selector: str, task: str) -> str:
    """Where the defaults on a training command's page come from."""
    shipped = f"experiments/{algo}/{task}.yaml"
    source = (f"built-in values overlaid with {shipped} (the paper's settings)"
              if experiment_file(algo, task).is_file() else
              f"the built-in values (metarl ships no {shipped})")
    return wrap(f"Defaults shown are {task}'s: {source}; --{selector} NAME --help shows "
                f"another's. A --config FILE overrides them, and flags override the file.")


def wrap(paragraph: str) -> str:
    """A paragraph for a raw description, wrapped as the rest of it is."""
    return "\n" + textwrap.fill(paragraph, width=94) + "\n"
