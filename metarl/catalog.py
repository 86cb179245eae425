"""What runs are built on, for ``metarl.experiment`` (building, training) and
``metarl.evaluate_run`` (evaluating) alike: the supervised tasks, the rule that a run's plug-in
env is imported only when named, and the learner's thread count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metarl.config import ConfigError


def supervised_tasks() -> dict[str, tuple[type, Callable[[Any], Any]]]:
    """Task name -> (config class, problem builder). Imported lazily: torch loads on use."""
    from metarl.supervised.omniglot import problem as omniglot
    from metarl.supervised.sine import problem as sine

    return {"sine": (sine.SineConfig, sine.build_problem),
            "omniglot": (omniglot.OmniglotConfig, omniglot.build_problem)}


@dataclass(frozen=True)
class FewShotMethod:
    """How the command line and the docs name a few-shot method."""

    #: The paper's name of the method.
    title: str
    #: Its family: "optimization", "metric" or "black-box".
    family: str
    #: The tasks it can do, and why not the others (its help page and its error say it).
    tasks: tuple[str, ...]
    why_not: str
    #: The paper.
    paper: str


_CLASSIFIES = "it classifies, comparing a query with each class of its support set"

#: Every few-shot method ``python -m metarl.run METHOD`` trains, MAML included.
FEW_SHOT_METHODS: dict[str, FewShotMethod] = {
    "maml": FewShotMethod("MAML", "optimization", ("sine", "omniglot"), "",
                          "Finn, Abbeel & Levine, ICML 2017"),
    "fomaml": FewShotMethod("first-order MAML", "optimization", ("sine", "omniglot"), "",
                            "Finn, Abbeel & Levine, ICML 2017"),
    "reptile": FewShotMethod("Reptile", "optimization", ("sine", "omniglot"), "",
                             "Nichol, Achiam & Schulman, arXiv 2018"),
    "anil": FewShotMethod("ANIL (almost no inner loop)", "optimization", ("sine", "omniglot"), "",
                          "Raghu, Raghu, Bengio & Vinyals, ICLR 2020"),
    "protonet": FewShotMethod("Prototypical Networks", "metric", ("omniglot",), _CLASSIFIES,
                              "Snell, Swersky & Zemel, NeurIPS 2017"),
    "matching": FewShotMethod("Matching Networks", "metric", ("omniglot",), _CLASSIFIES,
                              "Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016"),
    "relation": FewShotMethod("Relation Networks", "metric", ("omniglot",), _CLASSIFIES,
                              "Sung, Yang, Zhang, Xiang, Torr & Hospedales, CVPR 2018"),
    "siamese": FewShotMethod("Siamese networks", "metric", ("omniglot",), _CLASSIFIES,
                             "Koch, Zemel & Salakhutdinov, ICML 2015 deep learning workshop"),
    "mann": FewShotMethod("MANN, a memory-augmented network", "black-box", ("omniglot",),
                          "it classifies, predicting the labels of its support set",
                          "Santoro, Bartunov, Botvinick, Wierstra & Lillicrap, ICML 2016"),
}


def check_method_task(method: str, task: str) -> None:
    """A ConfigError where few-shot ``method`` cannot do ``task``, saying why and what it can
    do (a known task the method cannot do) or naming the tasks (an unknown one)."""
    entry = FEW_SHOT_METHODS[method]
    if task in entry.tasks:
        return
    if task in FEW_SHOT_METHODS["maml"].tasks:
        raise ConfigError(f"{method} cannot do task={task!r}: {entry.why_not}; it runs on: "
                          f"{', '.join(entry.tasks)}")
    raise ConfigError(f"task={task!r} is not valid; choose from: {', '.join(entry.tasks)}")


def check_plugin_named(env: str, given: str | None, *, source: str) -> None:
    """Refuse ``env``, read from a run or a checkpoint, where resolving it would import a module
    (``package.module:Class``) that the caller did not name with ``--env`` (``given``): loading
    a run must not run code it names. Short names and Gymnasium ids import nothing."""
    from metarl.envs.oracle import ORACLE_SUFFIX

    if given is not None and given != env:
        raise ConfigError(f"--env {given!r} does not match the env of {source}, {env!r}; "
                          "--env names the env the run was trained on")
    if ":" in env.removesuffix(ORACLE_SUFFIX) and given is None:
        raise ConfigError(f"{source} was trained on the plug-in env {env!r}, which would be "
                          f"imported to load it; name it on the command line to allow that: "
                          f"--env {env}")


def use_torch_threads(threads: int) -> None:
    """PyTorch's thread count for this process (0: leave PyTorch's own, one per core)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
