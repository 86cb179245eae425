"""The options of ``python -m metarl.run evaluate`` (and of ``metarl.experiment.evaluate``),
declared once: each one's range on its field, what an unset one means for a kind of run
(``EvalDefaults``, declared by each kind), and which kind of run takes it (``ONLY_FOR``).

``None`` takes the run's own setting or the paper's default for its kind of run
(``with_defaults``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from metarl.config import THREADS_MAX, ConfigError, flag_name, option, seed_option
from metarl.device import device_option


@dataclass
class EvaluateOptions:
    """What ``evaluate`` measures (a flag each; None: the run's or the paper's default)."""

    num_tasks: int | None = option(None, "held-out tasks (default: 600 sine, 1000 Omniglot, 40 "
                                   "RL)", minimum=2, exclusive_minimum=False)
    steps: int | None = option(None, "adaptation steps K (default: 10 sine; Omniglot: the run's "
                               "eval_steps, 3 in the paper's setting; MAML-TRPO and ProMP: 4 "
                               "navigation, 3 otherwise; not for RL2)", minimum=0, exclusive_minimum=False, metavar="K")
    shots: tuple[int, ...] | None = option(
        None, "supervised: support examples per class (Omniglot) or task (sine), at most "
        "the drawings of a character less the run's queries per class. Several, increasing, "
        "are for episodic runs: the accuracy against the number of shots, e.g. --shots 1 5 "
        "10; a gradient-based run takes one (default: the run's)", minimum=1,
        exclusive_minimum=False, metavar="K")
    baselines: bool | None = option(None, "add the paper's baselines: a model pretrained on all "
                                    "tasks and fine-tuned the same way (Omniglot: a classifier "
                                    "of the training classes), an oracle given the task (sine, "
                                    "RL) and a random initialisation (RL) (default: on for "
                                    "supervised runs, off for RL)")
    baseline_iterations: int | None = option(None, "training iterations of the baselines: "
                                             "the pretrained model, the sine oracle, the "
                                             "Omniglot classifier, the RL oracle (default: "
                                             "supervised, as many as the run was trained, at "
                                             "most 10000; RL: the run's num_batches)",
                                             minimum=0, exclusive_minimum=False)
    episodes_per_task: int | None = option(None, "RL: episodes sampled per task and step "
                                           "(default: the run's fast_batch_size; the paper's "
                                           "test batches were 4000 env steps)", minimum=1,
                                           exclusive_minimum=False)
    env_steps_per_task: int | None = option(None, "RL: instead of a number of episodes, batches "
                                            "of N env steps per task drawn as the paper's rllab "
                                            "sampler drew them (N / horizon episodes side by "
                                            "side, back to back, completed ones kept; the "
                                            "paper's: 4000). Where episodes end early this holds "
                                            "more, and more of the short, episodes (default: "
                                            "off, --episodes-per-task)", minimum=1,
                                            exclusive_minimum=False)
    later_lr_scale: float | None = option(None, "step size of steps 2.. as a fraction of "
                                          "fast_lr (default: the paper's, 0.5 for RL and 1 for "
                                          "supervised runs)", minimum=0.0)
    pretrained: str | None = option(None, "RL: an existing multi-task TRPO run (num_steps: 0) "
                                    "as the pretrained baseline (default: --baselines trains "
                                    "one, kept in OUTPUT/pretrained)", metavar="DIR")
    oracle: str | None = option(None, "RL: an existing multi-task TRPO run on ENV+oracle (the "
                                "policy observes the task) as the oracle baseline (default: "
                                "--baselines trains one, kept in OUTPUT/oracle)", metavar="DIR")
    seed: int | None = seed_option(None, "evaluation seed; held-out tasks are drawn apart from "
                                   "training's (default: the run's)")
    torch_threads: int | None = option(None, "PyTorch threads (0: PyTorch's default, one per "
                                       "core) (default: the run's torch_threads)", minimum=0,
                                       exclusive_minimum=False, maximum=THREADS_MAX)
    device: str = device_option("cpu", "; the model adapts there, and baselines train there "
                                "(default: cpu, whatever device the run trained on)")
    output: str | None = option(None, "where to write results (default: RUN/evaluation)",
                                metavar="DIR")
    env: str | None = option(None, "RL: the plug-in env the run was trained on, named to allow "
                             "importing its module (a checkpoint never imports code by itself; "
                             "not needed for built-in families) (default: none)",
                             metavar="MODULE:CLASS")


@dataclass(frozen=True)
class EvalDefaults:
    """What the options a kind of run must have a value for mean when left unset (None):
    declared by each kind (a supervised problem's ``eval_defaults``, MAML-TRPO's in
    ``metarl.rl.evaluate``)."""

    num_tasks: int
    steps: int
    later_lr_scale: float
    baselines: bool


def shot_counts(options: EvaluateOptions, run_shots: int) -> tuple[int, ...]:
    """The support examples per class ``evaluate`` scores at: ``--shots``, else the run's own
    ``run_shots``; a ConfigError unless they increase (each value once: a curve's x)."""
    shots = options.shots or (run_shots,)
    if any(later <= earlier for earlier, later in zip(shots, shots[1:])):
        raise ConfigError(f"--shots {' '.join(map(str, shots))}: give each value once, in "
                          f"increasing order (e.g. --shots 1 3 5)")
    return tuple(shots)


def with_defaults(options: EvaluateOptions, defaults: EvalDefaults) -> EvaluateOptions:
    """``options`` with each option of ``defaults`` that was left unset taken from it; a
    ConfigError for a ``--later-lr-scale`` given to a curve with no step after the first."""
    steps = options.steps if options.steps is not None else defaults.steps
    if options.later_lr_scale is not None and steps < 2:
        raise ConfigError(f"--later-lr-scale={options.later_lr_scale:g} sets the size of steps "
                          f"2.., but the curve has {steps} step(s); give --steps 2 or more")
    unset = {field.name: getattr(defaults, field.name) for field in dataclasses.fields(defaults)
             if getattr(options, field.name) is None}
    resolved = dataclasses.replace(options, **unset)
    for_baselines = [flag_name(name) for name in ("pretrained", "oracle", "baseline_iterations")
                     if getattr(options, name) is not None]
    if for_baselines and not resolved.baselines:
        why = ("--no-baselines turns them off" if options.baselines is False else
               "they are off by default for this kind of run")
        raise ConfigError(f"{', '.join(for_baselines)}: only with --baselines ({why}, so there "
                          f"is nothing for these to set up)")
    return resolved


#: The options only one kind of run takes: option -> that kind, as an error names it.
ONLY_FOR = {"shots": "supervised", "episodes_per_task": "meta-RL",
            "env_steps_per_task": "meta-RL", "pretrained": "meta-RL", "oracle": "meta-RL",
            "env": "meta-RL"}


def refuse_other_kinds(options: EvaluateOptions, kind: str, run: str) -> None:
    """A ConfigError naming the options set in ``options`` that only another kind of run takes
    (``ONLY_FOR``); ``run`` says what the evaluated run is, after "; "."""
    others = [name for name, only in ONLY_FOR.items()
              if only != kind and getattr(options, name) is not None]
    if others:
        raise ConfigError(f"{', '.join(flag_name(name) for name in others)}: only for "
                          f"{ONLY_FOR[others[0]]} runs; {run}")
