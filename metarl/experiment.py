"""Build, train, resume and evaluate a run from Python, exactly as the command line does.

::

    from metarl import experiment

    config = experiment.make_config("maml_trpo", env="navigation_2d", num_batches=10)
    run_dir = experiment.train(config)                  # runs/maml_trpo__navigation_2d__0__...
    more = experiment.make_config("maml_trpo", resume=run_dir, num_batches=20)
    experiment.train(more, resume=run_dir)              # continues to iteration 20
    print(experiment.evaluate(run_dir, num_tasks=10)["table"])

:func:`make_config` resolves a config from the layers ``python -m metarl.run`` uses, later ones
winning: the config class's built-in defaults, the shipped ``experiments/{algo}/{task}.yaml``, a
``config_file``, then the keyword overrides (one per flag, ``num_batches=10`` for
``--num-batches 10``); the result is validated. A config class constructed directly holds its
built-in defaults only. ``python -m metarl.run`` is these functions behind argparse, so a script
and the command line cannot differ. A script whose sampler uses worker processes (the MuJoCo
families) must keep its top-level code under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarl.algorithms import ALGORITHMS, algorithm
from metarl.catalog import check_plugin_named, use_torch_threads
from metarl.config import (
    ConfigError,
    check_unchanged,
    coerce,
    flag_name,
    from_mapping,
    read_yaml,
    resolve,
    to_dict,
    validate,
)
from metarl.runs import CHECKPOINT_NAME, CONFIG_NAME


def config_class(algo: str, family: str) -> type:
    """The config class of ``algo`` on ``family`` (a supervised task, or any RL env)."""
    return algorithm(algo).config_class(family)


def shipped_task(algo: str, family: str) -> str:
    """The name of ``family``'s shipped defaults (ENV+oracle starts from ENV's)."""
    return algorithm(algo).shipped_task(family)


def algo_of(config: Any) -> str:
    """The algorithm (a key of ``ALGORITHMS``) whose config ``config`` is."""
    for name, entry in ALGORITHMS.items():  # the algorithm whose family class it is
        family = getattr(config, entry.selector, None)
        try:
            if family is not None and type(config) is entry.config_class(family):
                return name
        except ConfigError:
            pass
    for name, entry in ALGORITHMS.items():  # a base class constructed directly
        if isinstance(config, entry.config_base()):
            return name
    raise TypeError(f"not a metarl run config: {type(config).__name__}; build one with "
                    f"make_config")


def _selector(algo: str) -> tuple[str, str]:
    entry = algorithm(algo)
    return entry.selector, entry.default


# --- resuming ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SavedRun:
    """A run to resume: its directory, its checkpoint's state, and the config it continues
    with (``values``): the checkpoint's own, with ``config.yaml``'s values of the settings a
    resume may change (see :func:`open_run`)."""

    run_dir: Path
    algo: str
    state: Mapping[str, Any]
    values: Mapping[str, Any]

    @property
    def iteration(self) -> int:
        """The iteration the checkpoint was saved at, where the resumed run continues."""
        return int(self.state["iteration"])


def open_run(run_dir: str | Path, algo: str) -> SavedRun:
    """The run in ``run_dir`` to resume, its checkpoint loaded and checked.

    The checkpoint's config is the authority: ``config.yaml`` may differ from it only in the
    settings a resume may change (``Algorithm.resume_may_change``, e.g. a longer
    ``num_batches``); any other difference is a ConfigError naming the key, since the
    checkpoint's state was made with the checkpoint's config.
    """
    from metarl.runs import load_run_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run directory")
    if not (run_dir / CHECKPOINT_NAME).exists() and (run_dir / CONFIG_NAME).is_file():
        raise ConfigError(f"--resume {run_dir}: the run stopped before its first checkpoint "
                          "(written every --checkpoint-every iterations), so there is nothing "
                          "to resume; start it anew without --resume")
    state = load_run_checkpoint(run_dir / CHECKPOINT_NAME)  # checked against its own algo
    if state["algo"] != algo:
        raise ConfigError(f"--resume {run_dir}: a {state['algo']!r} run, not {algo!r}; resume it "
                          f"with python -m metarl.run {state['algo']} --resume {run_dir}")
    saved = dict(state["config"])
    return SavedRun(run_dir, algo, state, {**saved, **_editable_values(run_dir, algo, saved)})


def _editable_values(run_dir: Path, algo: str, saved: dict[str, Any]) -> dict[str, Any]:
    """``config.yaml``'s values of the settings a resume may change (and of any the checkpoint
    lacks); a ConfigError where it differs from the checkpoint's config ``saved`` on another."""
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        return {}
    edited = read_yaml(path)
    edited_algo = edited.pop("algo", algo)
    if edited_algo != algo:
        raise ConfigError(f"{path} is the config of a {edited_algo!r} run, not {algo!r}")
    key, default = _selector(algo)
    config_cls = config_class(algo, str(saved.get(key, default)))
    checkpointed = from_mapping(config_cls, saved, source=f"the checkpoint of {run_dir}")
    in_file = from_mapping(config_cls, edited, source=str(path), base=checkpointed)
    may_change = algorithm(algo).resume_may_change
    changed = [f"{name}={getattr(in_file, name)!r} (checkpoint: {getattr(checkpointed, name)!r})"
               for name in edited
               if name in saved and name not in may_change
               and getattr(in_file, name) != getattr(checkpointed, name)]
    if changed:
        raise ConfigError(f"{path} was edited to {'; '.join(changed)}: a resumed run continues "
                          f"exactly like the uninterrupted one, so it may change only "
                          f"{', '.join(may_change)}; restore the checkpoint's value or start a "
                          f"new run")
    return {name: value for name, value in edited.items()
            if name in may_change or name not in saved}


def check_resumable(saved: SavedRun, config: Any) -> None:
    """Fail when ``config`` differs from the run it resumes outside the settings a resume may
    change (``Algorithm.resume_may_change``), or would stop before the checkpoint's iteration
    (nothing on disk is changed)."""
    checkpointed = from_mapping(type(config), saved.values, source=f"the checkpoint of "
                                f"{saved.run_dir}")
    check_unchanged(checkpointed, config, may_change=algorithm(saved.algo).resume_may_change)
    output_dir = getattr(config, "output_dir", None)
    if (output_dir is not None and output_dir != saved.values.get("output_dir")
            and Path(output_dir).resolve() != saved.run_dir.resolve().parent):
        raise ConfigError(f"output_dir={str(output_dir)!r}: a resumed run continues in its own "
                          f"directory, {saved.run_dir}; leave --output-dir out (it may name "
                          "only the folder that holds the run, after a move)")
    if config.num_batches < saved.iteration:
        raise ConfigError(f"num_batches={config.num_batches} is below the iteration of the "
                          f"checkpoint in {saved.run_dir}, {saved.iteration}; a resumed run "
                          f"continues from there: give num_batches >= {saved.iteration}")


def _saved(resume: str | Path | SavedRun | None, algo: str) -> SavedRun | None:
    if resume is None or isinstance(resume, SavedRun):
        return resume
    return open_run(resume, algo)


# --- configs -------------------------------------------------------------------------------------

def choose_family(algo: str, *, named: Any = None, config_file: str | Path | None = None,
                  saved: SavedRun | None = None) -> str:
    """The task or env that picks the config class and the shipped defaults: ``named`` (the
    ``--task``/``--env`` flag), else the ``config_file``'s, else the resumed run's, else the
    algorithm's default. A resumed run keeps its own; an env is checked to exist."""
    key, default = _selector(algo)
    in_file = read_yaml(config_file) if config_file is not None else {}
    if named is not None:
        name, source = coerce(key, named, str), flag_name(key)
    elif key in in_file:
        name, source = coerce(key, in_file[key], str), str(config_file)
    elif saved is not None:
        name = str(saved.values.get(key, default))
        if key == "env":
            check_plugin_named(name, None, source=f"--resume {saved.run_dir}")
        return name
    else:
        name, source = default, "the default"
    if saved is not None and saved.values.get(key, default) != name:
        raise ConfigError(f"{key}={name!r} (from {source}) does not match the resumed run's "
                          f"{key}={saved.values.get(key)!r}; a run resumes with its own {key}")
    if key == "env":
        from metarl import envs

        envs.registry.resolve(name)  # an unknown name fails here, listing the known ones
    return name


def make_config(algo: str, *, config_file: str | Path | None = None,
                resume: str | Path | SavedRun | None = None, **overrides: Any) -> Any:
    """The validated config of a new run of ``algo`` (a key of ``ALGORITHMS``: ``"maml"``,
    ``"maml_trpo"``), or of the run in ``resume`` continued, exactly as ``python -m metarl.run ALGO`` resolves it.

    New run: built-in defaults < ``experiments/{algo}/{task}.yaml`` < ``config_file`` <
    ``overrides``; the task or env comes from ``overrides`` (``task=``/``env=``), else the
    file. Resumed run: the checkpoint's config (see :func:`open_run`) < ``config_file`` <
    ``overrides``, which may change only ``algorithm(algo).resume_may_change``. Raises
    ConfigError on anything invalid, naming the value and what would be valid.
    """
    saved = _saved(resume, algo)
    key, _ = _selector(algo)
    family = choose_family(algo, named=overrides.get(key), config_file=config_file, saved=saved)
    config = resolve(config_class(algo, family), algo=algo, task=shipped_task(algo, family),
                     config_file=None if config_file is None else str(config_file),
                     flags=overrides, base=None if saved is None else saved.values,
                     may_change=algorithm(algo).resume_may_change)
    if saved is not None:
        check_resumable(saved, config)
    return config


# --- training ------------------------------------------------------------------------------------

class Run:
    """A run ready to train: the trainer of ``config`` (its checkpoint loaded when resuming)
    and its directory, where ``config.yaml`` now holds ``config``. A context manager: leaving
    it stops the sampler's worker processes.

    Args:
        config: from :func:`make_config` (a directly built one is validated here).
        resume: the run directory ``config`` continues (or its :class:`SavedRun`).
        run_dir: a new run's directory, named by the caller (created if missing; one that
            holds a checkpoint is refused), instead of a new
            ``output_dir/{algo}__{task}__{seed}__{time}``; not with ``resume``.
    """

    def __init__(self, config: Any, *, resume: str | Path | SavedRun | None = None,
                 run_dir: str | Path | None = None):
        self.algo = algo_of(config)
        validate(config)
        if resume is not None and run_dir is not None:
            raise ValueError("give resume (a run to continue) or run_dir (a new run's "
                             "directory), not both")
        saved = _saved(resume, self.algo)
        if saved is not None:
            check_resumable(saved, config)
        self.config = config
        use_torch_threads(config.torch_threads)
        self.trainer = algorithm(self.algo).build_trainer(config)
        try:
            self.run_dir = self._open_dir(saved, run_dir)
        except BaseException:
            self.close()
            raise

    def _open_dir(self, saved: SavedRun | None, named: str | Path | None) -> Path:
        """The resumed run's directory (its checkpoint loaded), the ``named`` new one, or a new
        timestamped one; writes config.yaml once the trainer holds the checkpoint."""
        from metarl.runs import claim_run_dir, new_run_dir, remove_stale_temp_files

        if saved is not None:
            run_dir = saved.run_dir
            remove_stale_temp_files(run_dir)  # of writes cut short when the run was killed
            self.trainer.load(dict(saved.state), source=str(run_dir))
        elif named is not None:
            run_dir = claim_run_dir(named)
        else:
            run_dir = new_run_dir(self.config.output_dir, self.algo, self.config.task,
                                  self.config.seed)
        write_run_config(run_dir, self.algo, self.config)
        return run_dir

    @property
    def iteration(self) -> int:
        """Meta-iterations done."""
        return self.trainer.iteration

    def train(self, *, progress: bool = False) -> dict[str, float]:
        """Train to ``config.num_batches``, checkpointing as configured; returns the values
        logged last (``metarl.training.train``, the loop of every algorithm)."""
        from metarl import training

        return training.train(self.trainer, self.run_dir, progress=progress)

    def close(self) -> None:
        """Stop the sampler's worker processes (idempotent)."""
        self.trainer.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def train(config: Any, *, resume: str | Path | SavedRun | None = None,
          run_dir: str | Path | None = None, progress: bool = False) -> Path:
    """Train a run of ``config`` (a new one, in ``run_dir`` if given, or the one in ``resume``
    continued); returns its directory. Ctrl-C raises KeyboardInterrupt; the last checkpoint is
    intact."""
    with Run(config, resume=resume, run_dir=run_dir) as run:
        run.train(progress=progress)
    return run.run_dir


def write_run_config(run_dir: Path, algo: str, config: Any) -> None:
    """``config.yaml``: the resolved config of the run, written atomically."""
    import yaml

    from metarl.runs import atomic_write_bytes

    text = yaml.safe_dump({"algo": algo, **to_dict(config)}, sort_keys=False)
    atomic_write_bytes(run_dir / CONFIG_NAME, lambda handle: handle.write(text.encode()))



# --- evaluation ----------------------------------------------------------------------------------

def evaluate(source: str | Path, *, progress: bool = False, **options: Any) -> dict[str, Any]:
    """Evaluate a run directory (at its ``checkpoint.pt``) or a checkpoint file exactly as
    ``python -m metarl.run evaluate`` does, with ``options`` as its flags
    (``metarl.evaluation_options.EvaluateOptions``: ``num_tasks=``, ``steps=``,
    ``baselines=``, ...; ``shots=5`` as ``shots=(5,)``, one value of ``--shots``). Writes
    ``curve.json``, ``curve.csv``, ``per_task.csv`` and ``curve.png`` into ``output``, else
    ``RUN/evaluation``; returns the result, ``result["table"]`` its printed summary."""
    from metarl.evaluate_run import checkpoint_path, evaluate_checkpoint
    from metarl.evaluation_options import EvaluateOptions

    if isinstance(options.get("shots"), int) and not isinstance(options["shots"], bool):
        options = {**options, "shots": (options["shots"],)}
    chosen = from_mapping(EvaluateOptions, options, source="the evaluation options")
    validate(chosen)
    return evaluate_checkpoint(checkpoint_path(source), chosen, progress=progress)
