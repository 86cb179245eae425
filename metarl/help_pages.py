"""The text of the command line's help pages that no algorithm declares: the top-level page,
``evaluate``'s, and the notes on where defaults come from.

``metarl.run`` builds the pages from these, from each algorithm's entry in
``metarl.algorithms.ALGORITHMS`` (its line, description and examples) and from the config
classes, whose fields carry their own help and whose defaults each page shows.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from metarl.config import experiment_file

#: The head of ``python -m metarl.run --help``, above its commands.
HELP_HEAD = """\
usage: python -m metarl.run COMMAND [options]

Meta-learning: few-shot learning with the optimization (MAML and its variants), metric and
black-box families on one set of episodes, and meta-reinforcement learning (MAML-TRPO, ProMP,
RL2) on the task families of MAML (Finn, Abbeel & Levine, 2017).
"""

#: The foot of ``python -m metarl.run --help``, below its examples.
HELP_FOOT = """\
Each command's options, with their defaults: python -m metarl.run COMMAND --help.
Every option is also a YAML key (--config FILE). More in the repository: README.md, and
docs/tasks.md (the task families), docs/protocol.md (the algorithm, the defaults and the
evaluation protocol), docs/results.md (published numbers and how they were made).
"""


def main_help(commands: Mapping[str, tuple[str, str]]) -> str:
    """``python -m metarl.run --help``: ``commands`` maps each command to its line on the page
    and an example of it."""
    listed = "".join(f"  {name:<10}  {line}\n" for name, (line, _) in commands.items())
    examples = "".join(f"  {example}\n" for _, example in commands.values())
    return f"{HELP_HEAD}\ncommands:\n{listed}\nexamples:\n{examples}\n{HELP_FOOT}"


#: ``evaluate``'s line on the top-level page, and its example there.
EVALUATE_LINE = ("the adaptation curve of a trained run on held-out tasks, with baselines",
                 "python -m metarl.run evaluate --run "
                 "runs/maml_trpo__navigation_2d__0__20261123-150000")

#: The description of ``evaluate --help``.
EVALUATE_HELP = """\
The adaptation curve of a trained run: its score on held-out tasks after 0..K adaptation steps
(mean with a 95% confidence interval), next to the baselines. Supervised runs: MSE (sine) or
accuracy (Omniglot); MAML-TRPO and ProMP runs: the mean return. RL2 runs take no gradient
step: their curve is the mean return in each episode of a trial (--num-tasks, --seed, --env,
--output, --torch-threads and --device apply). Episodic runs (protonet, matching,
relation, siamese, mann) answer in one forward pass: one point, or with --shots 1 3 5 the
accuracy against the support examples per class. Writes curve.json, curve.csv, curve.png,
per_task.csv and TensorBoard events into --output.
"""

#: Example lines at the foot of ``evaluate --help`` (a training command's are its entry's).
EVALUATE_EXAMPLES = ("python -m metarl.run evaluate --run runs/maml__sine__0__20261123-140000",
                     "python -m metarl.run evaluate --run RUN_DIR --baselines "
                     "--env-steps-per-task 4000",
                     "python -m metarl.run evaluate --run runs/protonet__omniglot__0__20261202-"
                     "090000 --shots 1 3 5")


def defaults_note(algo: str, selector: str, task: str) -> str:
    """Where the defaults on a training command's page come from."""
    shipped = f"experiments/{algo}/{task}.yaml"
    source = (f"built-in values overlaid with {shipped} (the shipped settings; "
              "docs/protocol.md gives their sources)"
              if experiment_file(algo, task).is_file() else
              f"the built-in values (metarl ships no {shipped})")
    return wrap(f"Defaults shown are {task}'s: {source}; --{selector} NAME --help shows "
                f"another's. A --config FILE overrides them, and flags override the file.")


def families_note(algo: str, selector: str) -> str:
    """Where the defaults on the help page of every family's options come from."""
    return wrap(f"Defaults: built-in values overlaid with experiments/{algo}/{selector.upper()}"
                f".yaml (the shipped settings; docs/protocol.md gives their sources). A "
                f"--config FILE overrides them, and flags "
                f"override the file.")


def wrap(paragraph: str) -> str:
    """A paragraph for a raw description, wrapped as the rest of it is."""
    return "\n" + textwrap.fill(paragraph, width=94) + "\n"
