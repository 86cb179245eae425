"""The algorithms a run can train, one :class:`Algorithm` entry each in :data:`ALGORITHMS`.

An entry says what ``metarl.experiment`` needs to build a run: which config key names the task
family (``--task``, ``--env``), the config class for a family, the settings a resumed run may
change, and the trainer (a ``metarl.training.Trainer``, driven by the one training loop); what
its checkpoints hold (``metarl.checkpoint_format`` checks them against it); and what the command
line shows: ``python -m metarl.run NAME`` is one command per entry, its help page and the
values it reports built from the entry. Configs and trainers are imported when used.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from metarl.catalog import FEW_SHOT_METHODS, check_method_task, supervised_tasks
from metarl.checkpoint_format import RunSchema, know_algorithms
from metarl.config import ConfigError


@dataclass(frozen=True)
class Algorithm:
    """What a run of one algorithm is built from."""

    #: The config key that names the task family; it picks the config class and the shipped
    #: defaults ``experiments/{algo}/{family}.yaml``.
    selector: str
    #: The family trained when none is named.
    default: str
    #: The settings a resumed run may change: none may alter what the run computes, since a
    #: resume continues exactly like the uninterrupted run (and a restored optimiser state
    #: would ignore, say, a new learning rate).
    resume_may_change: tuple[str, ...]
    #: The config class for a family (a ConfigError for a family it does not know).
    config_class: Callable[[str], type]
    #: The class every config of this algorithm is an instance of.
    config_base: Callable[[], type]
    #: The trainer of a validated config.
    build_trainer: Callable[[Any], Any]
    #: The schema of its checkpoints, what its trainer's ``state()`` holds (declared beside it).
    checkpoint: Callable[[], RunSchema]
    #: Its line in ``python -m metarl.run --help``.
    summary: str
    #: The head of its help page: what it does, and its families.
    description: str
    #: Command lines at the foot of its help page; the first also on the top-level page.
    examples: tuple[str, ...]
    #: The tag prefixes of the last logged values the command prints when training is done.
    reported: tuple[str, ...]
    #: The name of a family's shipped defaults (by default, the family's own).
    shipped_task: Callable[[str], str] = lambda family: family
    #: Where each family has a config class of its own, their names: the help page then shows
    #: every family's options. None: one config class for any family (an RL env).
    families: Callable[[], Sequence[str]] | None = None
    #: Whether ``evaluate`` samples a test batch per adaptation step (``--episodes-per-task``,
    #: ``--env-steps-per-task``): an RL method that adapts by gradient steps does, RL², which
    #: adapts within a trial of its own episodes, does not.
    test_batches: bool = True


def _maml_config(task: str) -> type:
    tasks = supervised_tasks()
    if task not in tasks:
        raise ConfigError(f"task={task!r} is not valid; choose from: {', '.join(tasks)}")
    return tasks[task][0]


def _maml_base() -> type:
    from metarl.supervised.trainer import MAMLConfig

    return MAMLConfig


def _maml_trainer(config: Any) -> Any:
    from metarl.supervised.trainer import MetaLearner

    _, build_problem = supervised_tasks()[config.task]
    return MetaLearner(build_problem(config), config)


def _maml_checkpoint() -> RunSchema:
    from metarl.supervised.trainer import CHECKPOINT_SCHEMA

    return CHECKPOINT_SCHEMA


def _maml_tasks() -> list[str]:
    return list(supervised_tasks())


def _maml_trpo_config(env: str) -> type:
    """Every env (a built-in family, a plug-in, a Gymnasium id) has the same options."""
    return _maml_trpo_base()


def _maml_trpo_base() -> type:
    from metarl.rl.config import MAMLTRPOConfig

    return MAMLTRPOConfig


def _maml_trpo_trainer(config: Any) -> Any:
    from metarl.rl.trainer import MetaRLTrainer

    return MetaRLTrainer(config)


def _maml_trpo_checkpoint() -> RunSchema:
    from metarl.rl.trainer import CHECKPOINT_SCHEMA

    return CHECKPOINT_SCHEMA


def _promp_base() -> type:
    from metarl.rl.config import PROMPConfig

    return PROMPConfig


def _promp_config(env: str) -> type:
    """Every env has the same options, as for MAML-TRPO."""
    return _promp_base()


def _promp_trainer(config: Any) -> Any:
    from metarl.rl.promp_trainer import ProMPTrainer

    return ProMPTrainer(config)


def _promp_checkpoint() -> RunSchema:
    from metarl.rl.promp_trainer import CHECKPOINT_SCHEMA

    return CHECKPOINT_SCHEMA


def _without_oracle(env: str) -> str:
    """ENV+oracle (the policy also observes the task) starts from ENV's shipped defaults."""
    from metarl.envs.oracle import ORACLE_SUFFIX

    return env.removesuffix(ORACLE_SUFFIX)


MAML_DESCRIPTION = """\
Meta-train a model with supervised MAML: each meta-iteration adapts the model to a batch of
sampled tasks with gradient steps on their support examples, then takes an Adam step on the
adapted models' loss on the query examples.

tasks (--task):
  sine        sine-wave regression: amplitude in [0.1, 5], phase in [0, pi], x in [-5, 5];
              an MLP 1-40-40-1 learns from K points
  omniglot    N-way K-shot classification of handwritten characters with the 4-block conv
              net; needs the Omniglot zips in --data-dir (or --download)
"""

RL_FAMILIES = """\
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

MAML_TRPO_DESCRIPTION = """\
Meta-train a Gaussian MLP policy with MAML-TRPO: each meta-iteration samples episodes on a
batch of tasks, adapts the policy to each task with policy-gradient steps, samples again with
the adapted policies and improves the starting policy with a TRPO step through the adaptation.

""" + RL_FAMILIES

PROMP_DESCRIPTION = """\
Meta-train a Gaussian MLP policy with ProMP (Rothfuss et al. 2019): MAML-TRPO's meta-iteration
with the low-variance curvature (LVC) inner objective, and as outer step several Adam steps on
a clipped surrogate of the post-update episodes with a KL penalty, the adaptation recomputed
at each step. A ProMP run is evaluated like a MAML-TRPO one.

""" + RL_FAMILIES

#: What a resumed meta-RL run (MAML-TRPO, ProMP, RL²) may change: episodes and trials are
#: identical for any number of workers or Ray actors, so the sampler's settings may change.
RL_RESUME_MAY_CHANGE = ("num_batches", "checkpoint_every", "num_workers", "torch_threads",
                        "device", "output_dir", "sampler", "ray_address", "ray_actors",
                        "ray_cpus_per_actor", "ray_retries")

ALGORITHMS: dict[str, Algorithm] = {
    # Supervised MAML (sine regression, Omniglot). The held-out curves draw from their own
    # generator and the data folders hold the same data, so neither changes what is computed.
    "maml": Algorithm(
        selector="task", default="sine",
        resume_may_change=("num_batches", "checkpoint_every", "eval_every", "eval_tasks",
                           "eval_steps", "torch_threads", "device", "output_dir", "data_dir",
                           "cache_dir", "download"),
        config_class=_maml_config, config_base=_maml_base, build_trainer=_maml_trainer,
        checkpoint=_maml_checkpoint,
        summary="meta-train a model on a few-shot task: sine regression or Omniglot",
        description=MAML_DESCRIPTION,
        examples=("python -m metarl.run maml --task sine --num-batches 5000 --shots 5",
                  "python -m metarl.run maml --task omniglot --ways 5 --shots 1 --data-dir DIR",
                  "python -m metarl.run maml --resume runs/maml__sine__0__20261123-140000 "
                  "--num-batches 100000"),
        reported=("train/", "adaptation/"), families=_maml_tasks),
    # MAML-TRPO on an RL task family.
    "maml_trpo": Algorithm(
        selector="env", default="navigation_2d", resume_may_change=RL_RESUME_MAY_CHANGE,
        config_class=_maml_trpo_config, config_base=_maml_trpo_base,
        build_trainer=_maml_trpo_trainer, shipped_task=_without_oracle,
        checkpoint=_maml_trpo_checkpoint,
        summary="meta-train a policy with MAML-TRPO on a family of RL tasks",
        description=MAML_TRPO_DESCRIPTION,
        examples=("python -m metarl.run maml_trpo --env navigation_2d --num-batches 100",
                  "python -m metarl.run maml_trpo --env cheetah_vel --hidden-sizes 100 100 "
                  "--nonlinearity relu",
                  "python -m metarl.run maml_trpo --env cheetah_vel+oracle --num-steps 0"),
        reported=("returns/",)),
    # ProMP on an RL task family: MAML-TRPO's sampling and evaluation, its own outer step (the
    # Adam state is restored on resume, so outer_lr may not change).
    "promp": Algorithm(
        selector="env", default="navigation_2d", resume_may_change=RL_RESUME_MAY_CHANGE,
        config_class=_promp_config, config_base=_promp_base, build_trainer=_promp_trainer,
        shipped_task=_without_oracle, checkpoint=_promp_checkpoint,
        summary="meta-train a policy with ProMP on a family of RL tasks",
        description=PROMP_DESCRIPTION,
        examples=("python -m metarl.run promp --env navigation_2d --num-batches 100",
                  "python -m metarl.run promp --env cheetah_dir --adaptive-kl",
                  "python -m metarl.run evaluate --run runs/promp__navigation_2d__0__"
                  "20261202-150000"),
        reported=("returns/",)),
}

# --- RL² (a GRU policy meta-trained with PPO on trials; metarl.rl.rl2) ---------------------------

def _rl2_config(env: str) -> type:
    """Every env has the same options."""
    return _rl2_base()


def _rl2_base() -> type:
    from metarl.rl.rl2_config import RL2Config

    return RL2Config


def _rl2_trainer(config: Any) -> Any:
    from metarl.rl.rl2 import RL2Trainer

    return RL2Trainer(config)


def _rl2_checkpoint() -> RunSchema:
    from metarl.rl.rl2 import CHECKPOINT_SCHEMA

    return CHECKPOINT_SCHEMA


RL2_DESCRIPTION = """\
Meta-train a GRU Gaussian policy with RL2 (Duan et al. 2016): each meta-iteration samples
trials of a few episodes of one task each, the policy's hidden state carried across the
episodes of a trial (it adapts by remembering, with no gradient step), and improves it with
PPO on the return of whole trials. Families as for maml_trpo (--env).
"""

ALGORITHMS["rl2"] = Algorithm(
    selector="env", default="navigation_2d",
    resume_may_change=RL_RESUME_MAY_CHANGE,
    config_class=_rl2_config, config_base=_rl2_base, build_trainer=_rl2_trainer,
    shipped_task=_without_oracle, checkpoint=_rl2_checkpoint,
    summary="meta-train a recurrent policy with RL2 (PPO on trials of episodes)",
    description=RL2_DESCRIPTION,
    examples=("python -m metarl.run rl2 --env navigation_2d --num-batches 100",
              "python -m metarl.run evaluate --run runs/rl2__navigation_2d__0__20261202-140000"),
    reported=("returns/",), test_batches=False)


# --- the other gradient-based few-shot methods (FOMAML, Reptile, ANIL) ---------------------------

def _optimization_config(method: str) -> Callable[[str], type]:
    def config_class(task: str) -> type:
        check_method_task(method, task)
        from metarl.supervised.optimization import CONFIGS

        return CONFIGS[method][task]

    return config_class


def _optimization_trainer(method: str) -> Callable[[Any], Any]:
    def build(config: Any) -> Any:
        from metarl.supervised.optimization import TRAINERS

        _, build_problem = supervised_tasks()[config.task]
        return TRAINERS[method](build_problem(config), config)

    return build


OPTIMIZATION_HEADS = {
    "fomaml": "Meta-train a model with first-order MAML: MAML's inner steps and query loss, with "
              "the meta-gradient taken at the adapted parameters (the second-order terms "
              "through the inner steps dropped).",
    "reptile": "Meta-train a model with Reptile: each task's parameters are adapted with k SGD "
               "steps on its support set, and the meta-parameters move toward the mean of "
               "the adapted ones by a step size annealed linearly to 0 over the run (so a "
               "resume may not change --num-batches); no query loss is differentiated.",
    "anil": "Meta-train a model with ANIL (almost no inner loop): MAML with the inner steps on "
            "the last layer (the head) only; the body is learned in the outer loop, and a new "
            "task is adapted by fine-tuning the head.",
}

OPTIMIZATION_DESCRIPTION = """\
{head}

tasks (--task):
  sine        sine-wave regression: amplitude in [0.1, 5], phase in [0, pi], x in [-5, 5];
              an MLP 1-40-40-1 learns from K points
  omniglot    N-way K-shot classification of handwritten characters with the 4-block conv
              net; needs the Omniglot zips in --data-dir (or --download)
"""


def _optimization(method: str) -> Algorithm:
    entry = FEW_SHOT_METHODS[method]
    may_change = ALGORITHMS["maml"].resume_may_change
    if method == "reptile":  # its outer step size is annealed over num_batches
        may_change = tuple(name for name in may_change if name != "num_batches")
    return Algorithm(
        selector="task", default="sine", resume_may_change=may_change,
        config_class=_optimization_config(method), config_base=_maml_base,
        build_trainer=_optimization_trainer(method), checkpoint=_maml_checkpoint,
        summary=f"meta-train a model with {entry.title} on sine or Omniglot",
        description=OPTIMIZATION_DESCRIPTION.format(head=textwrap.fill(
            f"{OPTIMIZATION_HEADS[method]} ({entry.paper}.)", width=95)),
        examples=(f"python -m metarl.run {method} --task omniglot --ways 5 --shots 1 "
                  "--data-dir DIR",
                  f"python -m metarl.run {method} --task sine --shots 5"),
        reported=("train/", "adaptation/"), families=_maml_tasks)


for _method in ("fomaml", "reptile", "anil"):
    ALGORITHMS[_method] = _optimization(_method)


# --- the episodic methods (metric and black-box families) ---------------------------------------

def _episodic_config(method: str) -> Callable[[str], type]:
    def config_class(task: str) -> type:
        check_method_task(method, task)
        from metarl.supervised.episodic.methods import METHODS

        return METHODS[method].config

    return config_class


def _episodic_trainer(config: Any) -> Any:
    from metarl.supervised.episodic.trainer import build_learner

    return build_learner(config)


def _episodic_checkpoint() -> RunSchema:
    from metarl.supervised.episodic.trainer import CHECKPOINT_SCHEMA

    return CHECKPOINT_SCHEMA


EPISODIC_DESCRIPTION = """\
{head}

tasks (--task):
  omniglot    N-way K-shot classification of handwritten characters; needs the Omniglot zips
              in --data-dir (or --download)
"""


def _episodic(method: str) -> Algorithm:
    entry = FEW_SHOT_METHODS[method]
    return Algorithm(
        selector="task", default="omniglot",
        resume_may_change=("num_batches", "checkpoint_every", "eval_every", "eval_tasks",
                           "torch_threads", "device", "output_dir", "data_dir", "cache_dir",
                           "download"),
        config_class=_episodic_config(method), config_base=lambda: _episodic_config(method)(
            "omniglot"),
        build_trainer=_episodic_trainer, checkpoint=_episodic_checkpoint,
        summary=f"meta-train {entry.title} ({entry.family}) on Omniglot episodes",
        description=EPISODIC_DESCRIPTION.format(head=textwrap.fill(
            f"Meta-train {entry.title} ({entry.family} family; {entry.paper}) on Omniglot "
            "episodes: each meta-iteration draws a batch of N-way K-shot episodes of the "
            "training characters and takes an Adam step on the mean query loss; a new task is "
            "answered in one forward pass from its labelled support set, with no gradient "
            f"step. Its tasks: {', '.join(entry.tasks)} ({entry.why_not}).", width=95)),
        examples=(f"python -m metarl.run {method} --task omniglot --ways 5 --shots 1 "
                  "--data-dir DIR",
                  f"python -m metarl.run evaluate --run runs/{method}__omniglot__0__20261202-"
                  "140000"),
        reported=("train/", "held_out/"), families=lambda: ["omniglot"])


for _method in ("protonet", "matching", "relation", "siamese", "mann"):
    ALGORITHMS[_method] = _episodic(_method)


know_algorithms(ALGORITHMS)  # a checkpoint's schema is its algorithm's, from this table


def algorithm(name: str) -> Algorithm:
    """The entry of ``name``; a ConfigError naming the known ones for any other."""
    if name not in ALGORITHMS:
        raise ConfigError(f"algo={name!r} is not valid; choose from: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
