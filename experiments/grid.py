"""Run a grid of experiments (families x seeds x options) as Ray tasks, then tabulate them.

    python experiments/grid.py --envs cheetah_vel cheetah_dir --seeds 0 1 2
        [--algo maml_trpo] [--set KEY=VALUE ...] [--grid KEY=V1,V2,... ...]
        [--ray-address auto|ray://HOST:PORT|HOST:PORT] [--cpus-per-run N]
        [--output-dir runs/grid] [--num-tasks N] [--episodes-per-task N] [--eval-seed S]
        [--dry-run]
    python experiments/grid.py --algo maml --tasks sine --seeds 0 1 2 --set num_batches=5000
    python experiments/grid.py --algo protonet matching reptile --tasks omniglot --set ways=20

One Ray task per run, each reserving ``--cpus-per-run`` CPUs (also the run's ``torch_threads``
and sampler ``num_workers`` unless ``--set`` gives them), spread over the cluster's nodes (Ray's
``SPREAD`` scheduling); a run whose worker process or node dies is started again, up to
``MAX_RETRIES`` times, from its last checkpoint where the output folder is shared. A run
trains through ``metarl.experiment``, the API of ``python -m metarl.run``, and is evaluated with
the paper's protocol: ``evaluate`` on 40 held-out tasks with the paper's test batches of 4000
env steps per task and step (``--episodes-per-task N``: N episodes instead), every seed on the
same held-out tasks (``--eval-seed``); supervised runs with ``evaluate``'s defaults. No
baselines: the table compares seeds and options.

``--set KEY=VALUE`` gives every run an option (a config key of the algorithms, dashes or
underscores, the value as in YAML: ``--set hidden_sizes=100,100``); ``--grid KEY=V1,V2`` runs
each value (a YAML list without its brackets: ``--grid hidden_sizes=[64,64],[100,100]``). The
grid is every algorithm x family x option combination x seed; its table has a section per
algorithm, family and option combination. Every run's config is resolved and checked before
any starts: an unknown family, key or value stops the script with exit status 2 and
one line. ``--dry-run`` lists the runs and what each would do (new, resume, done).

**Run directories.** Each run is a normal run directory (``config.yaml``, TensorBoard events,
``checkpoint.pt``, ``evaluation/``) named from its settings, never from the time:
``OUTPUT_DIR/ALGO__FAMILY__seedS__KEY=VALUE...``, one ``KEY=VALUE`` for each option given with
``--set`` or ``--grid`` except those a resumed run may change (the budget ``num_batches``,
checkpointing, threads, workers). Running the same command again skips every run whose
evaluation exists at its ``num_batches`` with the same evaluation options (which
``evaluation/grid_evaluation.json`` records), and resumes every other one from its last
checkpoint; a larger ``--set num_batches=N`` continues finished runs and evaluates them again,
other evaluation options evaluate them again.

**The table.** Each run returns its evaluation (``curve.json``) to this script, which lines up
the seeds of each family and option combination with their mean ± 1.96 standard errors over seeds
(``experiments/seed_table.py``) and writes ``OUTPUT_DIR/grid_table.md`` (printed too) and
``OUTPUT_DIR/grid_results.json`` (every run's status and curve) on this machine: the table needs
no shared file system. The table is this grid's; ``grid_results.json`` also keeps the records
of earlier grids in the same folder whose run directories are still there. The run directories are written by the nodes that train them, so for a
rerun to skip or resume runs on any node, ``--output-dir`` (made absolute on this machine) must
be a folder every node sees at that path, a shared file system; without one, a rerun resumes
or skips a run only where Ray happens to place it on the node that holds it.

**Ray.** Without ``--ray-address`` a local Ray runtime is started for the grid (on 127.0.0.1,
no dashboard) and shut down after; ``auto`` joins the cluster this machine belongs to (``ray
start``), ``ray://HOST:PORT`` one through Ray Client. A Python caller already connected
(``ray.init``) uses its connection. Every node needs metarl installed, ``pip install -e
".[ray]"``. A failed run puts its error line in the summary and the others go on; the exit
status is then 1. Ctrl-C (or SIGTERM) cancels the running tasks (their last checkpoints are
intact: run the command again to resume them) and exits with status 130 (143).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from metarl import experiment
from metarl.algorithms import ALGORITHMS, algorithm
from metarl.config import ConfigError
from metarl.envs.base import EnvOptionError
from metarl.envs.registry import NotATaskFamilyError, UnknownEnvError
from metarl.files import OutputPathError, WriteError, atomic_open, ensure_dir
from metarl.ray_runtime import RayRuntime, RayStartError
from metarl.run import one_line, sigterm_as_interrupt, stopped_by_sigterm

HERE = Path(__file__).resolve().parent
#: The paper's test batches: env steps per task and step (docs/protocol.md).
PAPER_TEST_STEPS = 4000
#: Options this script sets itself (``--envs``/``--tasks``, ``--seeds``, ``--output-dir``; it
#: resumes a run whose directory exists; options come with ``--set``, not a config file).
OWN_KEYS = ("env", "task", "seed", "output_dir", "resume", "config_file")
#: How often Ray reruns a task whose worker process or node died (it resumes its checkpoint).
MAX_RETRIES = 2
#: Seconds Ctrl-C waits for cancelled runs to stop before their processes are killed.
CANCEL_GRACE_S = 30
#: The file beside a run's ``evaluation/curve.json`` naming the options it was made with.
EVALUATED_WITH = "grid_evaluation.json"
ADDRESS = re.compile(r"auto|ray://[\w.-]+:\d+|[\w.-]+:\d+")
EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line, exit status 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        print(f"grid.py: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(description=__doc__.replace("``", ""),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", nargs="+", default=["maml_trpo"], choices=sorted(ALGORITHMS),
                        metavar="ALGO", help="what the runs train, one or more algorithms "
                        "that take the same --envs or --tasks: every one on every family "
                        f"(choose from: {', '.join(ALGORITHMS)}; default: maml_trpo)")
    parser.add_argument("--envs", nargs="+", default=[], metavar="ENV",
                        help="maml_trpo task families (default: none; required for maml_trpo)")
    parser.add_argument("--tasks", nargs="+", default=[], metavar="TASK",
                        help="maml tasks, sine or omniglot (default: none; required for maml)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED",
                        help="training seeds (default: 0)")
    parser.add_argument("--set", action="append", default=[], dest="settings",
                        metavar="KEY=VALUE", help="an option for every run, repeatable "
                        "(default: the family's shipped defaults)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="an option to vary: one run per value, repeatable (default: none)")
    parser.add_argument("--output-dir", default="runs/grid", metavar="DIR",
                        help="where the run directories, grid_table.md and grid_results.json "
                        "go; on a cluster, a folder every node sees (default: runs/grid)")
    parser.add_argument("--ray-address", default=None, metavar="ADDRESS",
                        help="auto, ray://HOST:PORT or HOST:PORT: join that cluster (default: "
                        "a local Ray runtime on 127.0.0.1 for the grid)")
    parser.add_argument("--cpus-per-run", type=int, default=2, metavar="N",
                        help="Ray CPUs reserved per run; also each run's torch_threads and "
                        "num_workers unless --set gives them (default: 2)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, metavar="G",
                        help="Ray GPUs reserved per run, for runs with --set device=cuda (Ray "
                        "shows a task only the GPUs it reserves; default: 0)")
    parser.add_argument("--num-tasks", type=int, default=None, metavar="N",
                        help="held-out evaluation tasks, >= 2 (default: evaluate's, 40 for RL)")
    parser.add_argument("--episodes-per-task", type=int, default=None, metavar="N",
                        help="evaluation episodes per task and step of the maml_trpo and "
                        "promp runs (default: the paper's test batches of "
                        f"{PAPER_TEST_STEPS} env steps); rl2 runs evaluate on their trials")
    parser.add_argument("--eval-seed", type=int, default=0, metavar="S",
                        help="evaluation seed, the same for every run so that all seeds are "
                        "scored on the same held-out tasks (default: 0)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the runs and what each would do, start nothing (default: off)")
    args = parser.parse_args(argv)
    for name, minimum in (("cpus_per_run", 1), ("num_tasks", 2), ("episodes_per_task", 1)):
        value = getattr(args, name)
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')}={value} must be >= {minimum}")
    if not 0 <= args.gpus_per_run < 1e3:  # also refuses nan
        parser.error(f"--gpus-per-run={args.gpus_per_run} must be in [0, 1000)")
    if not 0 <= args.eval_seed < 2**32:
        parser.error(f"--eval-seed={args.eval_seed} must be in [0, 4294967295]")
    if args.ray_address is not None and not ADDRESS.fullmatch(args.ray_address):
        parser.error(f"--ray-address {args.ray_address!r} is not valid; give auto, "
                     "ray://HOST:PORT or HOST:PORT")
    for flag, values in (("--algo", args.algo), ("--envs", args.envs), ("--tasks", args.tasks),
                         ("--seeds", args.seeds)):
        twice = [str(v) for v in dict.fromkeys(values) if values.count(v) > 1]
        if twice:
            parser.error(f"{flag} {' '.join(map(str, values))}: {', '.join(twice)} given more "
                         f"than once (each names its runs once)")
    args.algos = list(args.algo)
    selectors = {algorithm(algo).selector for algo in args.algos}
    if len(selectors) > 1:
        parser.error(f"--algo {' '.join(args.algos)}: some take --envs and some --tasks; "
                     "give algorithms of one kind")
    (selector,) = selectors
    args.algo = args.algos[0]  # what the messages below name
    families, other = (args.envs, args.tasks) if selector == "env" else (args.tasks, args.envs)
    if other:
        parser.error(f"--{'tasks' if selector == 'env' else 'envs'} is for the other algorithm; "
                     f"{args.algo} takes --{selector}s")
    if not families:
        parser.error(f"{args.algo} needs --{selector}s NAME ...")
    takers = [name for name, entry in ALGORITHMS.items()
              if entry.selector == "env" and entry.test_batches]
    if args.episodes_per_task is not None and not set(args.algos) & set(takers):
        parser.error(f"--episodes-per-task is not for {', '.join(args.algos)} runs (their "
                     f"evaluation takes no test batches); it is for {', '.join(takers)}")
    args.families = list(families)
    try:
        args.fixed = key_values(args.settings, many=False)
        args.varied = key_values(args.grid, many=True)
        check_keys(args)
    except ConfigError as error:
        parser.error(str(error))
    return args


def key_value(text: str, *, many: bool) -> tuple[str, Any]:
    """``"fast-lr=0.1"`` -> ``("fast_lr", 0.1)``; with ``many``, ``"fast_lr=0.05,0.1"`` ->
    ``("fast_lr", [0.05, 0.1])``. Values are read as YAML (a list with ``many``, brackets
    added); the config coerces them to the option's type."""
    import yaml

    flag = "--grid" if many else "--set"
    key, equals, value = text.partition("=")
    if not equals or not key.strip() or not value.strip():
        raise ConfigError(f"{flag} {text!r}: give KEY=" + ("V1,V2,..." if many else "VALUE"))
    try:
        parsed = yaml.safe_load(f"[{value}]" if many else value)
    except yaml.YAMLError:
        raise ConfigError(f"{flag} {text!r}: the value is not valid YAML") from None
    if many and (not parsed or any(v is None for v in parsed)):
        raise ConfigError(f"{flag} {text!r}: give one or more values, V1,V2,...")
    return key.strip().replace("-", "_"), parsed


def key_values(texts: list[str], *, many: bool) -> dict[str, Any]:
    """Every ``--set`` (or, with ``many``, ``--grid``) as a dict; a ConfigError for a key given
    twice (one of the two would be dropped)."""
    values: dict[str, Any] = {}
    for text in texts:
        key, value = key_value(text, many=many)
        if key in values:
            raise ConfigError(f"{'--grid' if many else '--set'} {key}: given twice; give it "
                              f"once" + (" with every value, V1,V2,..." if many else ""))
        values[key] = value
    return values


def check_keys(args: argparse.Namespace) -> None:
    both = sorted(set(args.fixed) & set(args.varied))
    if both:
        raise ConfigError(f"{', '.join(both)}: given by both --set and --grid")
    own = sorted(k for k in (*args.fixed, *args.varied) if k in OWN_KEYS)
    if own:
        raise ConfigError(f"{', '.join(own)}: set by this script; use --envs/--tasks, --seeds "
                          "and --output-dir (a run whose directory exists is resumed; give a "
                          "config's options with --set)")
    varied = [k for k in args.varied
              if any(k in algorithm(algo).resume_may_change for algo in args.algos)]
    if varied:
        raise ConfigError(f"--grid {', '.join(varied)}: a setting a resumed run may change "
                          "names no run; give it with --set")


# --- the runs -----------------------------------------------------------------------------------

def value_text(value: Any) -> str:
    """A config value as it appears in a run's name: ``(64, 64)`` -> ``64-64``; a mapping by
    its sorted keys, ``{"clock": "paper"}`` -> ``clock=paper`` (any order names one run)."""
    if isinstance(value, dict):
        return "-".join(f"{k}={value_text(v)}" for k, v in sorted(value.items()))
    if isinstance(value, tuple | list):
        return "-".join(value_text(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every run of the grid as the spec its task receives, each config resolved and checked
    (a ConfigError names the first bad one)."""
    output = Path(args.output_dir).resolve()
    keys = list(args.varied)
    specs = []
    for algo, family in itertools.product(args.algos, args.families):
        entry = algorithm(algo)
        machine = {"torch_threads": args.cpus_per_run}
        if "num_workers" in entry.resume_may_change:
            machine["num_workers"] = args.cpus_per_run
        for values in itertools.product(*(args.varied[k] for k in keys)):
            options = {**machine, **args.fixed, **dict(zip(keys, values))}
            for seed in args.seeds:
                config = experiment.make_config(algo, **{entry.selector: family},
                                                seed=seed, output_dir=str(output), **options)
                check_machine(args, config)
                specs.append(spec(args, algo, config, family, options))
    names = [s["name"] for s in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"--grid values that are one value name the same run twice: "
                          f"{', '.join(twice)}")
    return specs


def check_machine(args: argparse.Namespace, config: Any) -> None:
    """What a run needs that the grid must give it, and its env options, checked before any
    run starts: a ConfigError (or the family's ``EnvOptionError``) naming the value."""
    device = getattr(config, "device", "cpu")
    if device != "cpu" and args.gpus_per_run == 0:
        raise ConfigError(f"device={device!r} needs GPUs: give --gpus-per-run (Ray shows a run "
                          f"only the GPUs it reserves)")
    if device == "cpu" and args.gpus_per_run > 0:
        raise ConfigError(f"--gpus-per-run {args.gpus_per_run:g} with device='cpu': the runs "
                          f"would hold GPUs they do not use; give --set device=cuda (or auto)")
    if getattr(config, "sampler", "local") != "local":
        raise ConfigError(f"sampler={config.sampler!r}: a grid's runs sample on their own "
                          f"--cpus-per-run CPUs (use --sampler ray for one large run instead)")
    ray_settings = [key for key in (*args.fixed, *args.varied) if key.startswith("ray_")]
    if ray_settings:
        raise ConfigError(f"{', '.join(sorted(ray_settings))}: settings of the Ray sampler, "
                          f"which a grid's runs do not use (they sample on their own "
                          f"--cpus-per-run CPUs)")
    if getattr(config, "env_options", None):
        from metarl.rl.config import task_family
        from metarl.rl.trainer import env_sizes

        env_sizes(task_family(config))  # builds one env: an option or value it refuses


def spec(args: argparse.Namespace, algo: str, config: Any, family: str,
         options: dict) -> dict[str, Any]:
    """What a run of ``algo`` needs: its name and directory, how to create or resume it, how
    to evaluate it."""
    entry = algorithm(algo)
    named = {k: getattr(config, k) for k in sorted(options) if k not in entry.resume_may_change}
    label = "".join(f"__{k}={value_text(v)}" for k, v in named.items())
    name = re.sub(r"[^\w.=+-]", "-", f"{algo}__{family}__seed{config.seed}{label}")
    plugin = ":" in family
    evaluation: dict[str, Any] = {"seed": args.eval_seed, "num_tasks": args.num_tasks,
                                  "baselines": False, "env": family if plugin else None}
    if entry.selector == "env" and entry.test_batches:
        if args.episodes_per_task is None:
            evaluation["env_steps_per_task"] = PAPER_TEST_STEPS
        else:
            evaluation["episodes_per_task"] = args.episodes_per_task
    return {
        "name": name, "algo": algo, "family": family, "seed": config.seed,
        "group": f"{algo}, {family}{label.replace('__', ', ')}" if len(args.algos) > 1
        else f"{family}{label.replace('__', ', ')}",
        "run_dir": str(Path(config.output_dir) / name),
        "options": {entry.selector: family, "seed": config.seed,
                    "output_dir": config.output_dir, **options},
        "resume_options": {entry.selector: family,
                           **{k: v for k, v in options.items()
                              if k in entry.resume_may_change and k != "num_batches"}},
        "num_batches": config.num_batches,
        "evaluation": {k: v for k, v in evaluation.items() if v is not None},
    }


def finished_curve(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The run's ``curve.json`` if its evaluation is done: at the run's ``num_batches`` and
    with the grid's evaluation options (``EVALUATED_WITH``, written after it); else None."""
    folder = Path(spec["run_dir"]) / "evaluation"
    try:
        curve = json.loads((folder / "curve.json").read_text())
        options = json.loads((folder / EVALUATED_WITH).read_text())
    except (OSError, ValueError):
        return None
    # A run trained past num_batches (an earlier, longer grid) cannot go back: it is done.
    done = curve.get("iteration", -1) >= spec["num_batches"] and options == spec["evaluation"]
    return curve if done else None


def state_of(spec: dict[str, Any]) -> str:
    """What running ``spec`` would do, as this machine's files say."""
    run_dir = Path(spec["run_dir"])
    if finished_curve(spec) is not None:
        return "done"
    if (run_dir / "checkpoint.pt").is_file():
        import torch

        try:
            iteration = torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"]
        except Exception as error:  # the run itself reports it in full
            return f"unreadable checkpoint ({type(error).__name__})"
        return f"resume at iteration {iteration}"
    return "new"


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One run of the grid, in a Ray task: skipped if done, else resumed from its checkpoint
    or started in its directory, trained to ``num_batches`` and evaluated. Returns its
    outcome (never raises for a failed run: the error's line is in ``"error"``)."""
    import socket

    import ray

    from metarl import experiment

    outcome = {"name": spec["name"], "host": socket.gethostname(),
               "node_id": ray.get_runtime_context().get_node_id()}
    run_dir = Path(spec["run_dir"])
    try:
        curve = finished_curve(spec)
        if curve is not None:
            return {**outcome, "status": "done", "curve": curve}
        if (run_dir / "checkpoint.pt").is_file():
            saved = experiment.open_run(run_dir, spec["algo"])
            if saved.iteration < spec["num_batches"]:
                config = experiment.make_config(spec["algo"], resume=saved,
                                                **spec["resume_options"],
                                                num_batches=spec["num_batches"])
                experiment.train(config, resume=saved)
                status = f"resumed at iteration {saved.iteration}"
            else:  # trained to num_batches already: only evaluated
                status = "evaluated"
        else:
            config = experiment.make_config(spec["algo"], **spec["options"])
            experiment.train(config, run_dir=run_dir)
            status = "trained"
        experiment.evaluate(run_dir, **spec["evaluation"])
        evaluation = run_dir / "evaluation"
        with atomic_open(evaluation / EVALUATED_WITH, "w") as handle:
            handle.write(json.dumps(spec["evaluation"]))
        curve = json.loads((evaluation / "curve.json").read_text())
        return {**outcome, "status": status, "curve": curve}
    except Exception as error:  # reported in the summary; the other runs go on
        return {**outcome, "status": "failed", "error": one_line(error)}


# --- Ray ----------------------------------------------------------------------------------------

def largest_node(ray: Any, resource: str) -> float:
    """The most of ``resource`` (``CPU``, ``GPU``) that one live node of the cluster has."""
    return max((node["Resources"].get(resource, 0) for node in ray.nodes() if node["Alive"]),
               default=0)


def run_all(ray: Any, specs: list[dict[str, Any]], cpus: int,
            gpus: float = 0.0) -> list[dict[str, Any]]:
    """Each spec as a Ray task; outcomes in the order of ``specs``, printed as they come. A
    task lost with its worker or node is a failed run. Ctrl-C cancels the tasks left."""
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=MAX_RETRIES,
                      scheduling_strategy="SPREAD")(run_one)
    refs = {task.remote(s): i for i, s in enumerate(specs)}
    outcomes: list[dict[str, Any] | None] = [None] * len(specs)
    pending = list(refs)
    try:
        while pending:
            (ready,), pending = ray.wait(pending, num_returns=1)
            index = refs[ready]
            try:
                outcome = ray.get(ready)
            except ray.exceptions.RayError as error:
                outcome = {"name": specs[index]["name"], "status": "failed",
                           "error": f"{type(error).__name__}: {one_line(error)}"}
            outcomes[index] = outcome
            print(f"{outcome['status']}: {outcome['name']}"
                  + (f" (on {outcome['host']})" if "host" in outcome else "")
                  + (f": {outcome['error']}" if "error" in outcome else ""), flush=True)
    except KeyboardInterrupt:
        cancel(ray, pending)
        raise
    return outcomes


def cancel(ray: Any, pending: list[Any]) -> None:
    """Interrupt the tasks of ``pending`` (KeyboardInterrupt in each: its sampler stopped, its
    last checkpoint intact), and kill those still running after ``CANCEL_GRACE_S`` (or at a
    second Ctrl-C)."""
    left = pending
    try:
        for ref in pending:
            ray.cancel(ref)
        if pending:
            _, left = ray.wait(pending, num_returns=len(pending), timeout=CANCEL_GRACE_S)
    finally:
        for ref in left:
            ray.cancel(ref, force=True)


# --- the table ----------------------------------------------------------------------------------

def load_seed_table() -> Any:
    """``experiments/seed_table.py`` as a module (scripts are not a package)."""
    module_spec = importlib.util.spec_from_file_location("seed_table", HERE / "seed_table.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def summary(specs: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> str:
    """Markdown: per family and option combination, its seeds' table with their mean
    (``seed_table.table``); then one line per failed run."""
    seed_table = load_seed_table()
    groups: dict[str, list[tuple[int, dict]]] = {}
    for s, outcome in zip(specs, outcomes):
        if "curve" in outcome:
            groups.setdefault(s["group"], []).append((s["seed"], outcome["curve"]))
    lines = []
    for group, runs in groups.items():
        lines += [f"### {group}", ""]
        differ = seed_table.differences([curve for _, curve in runs])
        if differ:
            lines += [f"these evaluations differ in {'; '.join(differ)}; no table", ""]
            continue
        rows = [(f"seed {seed}", curve) for seed, curve in sorted(runs, key=lambda r: r[0])]
        method = next(iter(runs[0][1]["methods"]))  # the evaluated run's curve comes first
        lines += [*seed_table.table(rows, method), ""]
    failed = [o for o in outcomes if o["status"] == "failed"]
    if failed:
        lines += ["### failed runs", "", *(f"- {o['name']}: {o['error']}" for o in failed), ""]
    return "\n".join(lines)


def earlier_records(output: Path, names: set[str]) -> list[dict]:
    """The records an earlier grid left in ``output/grid_results.json`` for runs this grid does
    not have and whose directories are still there (a second grid into the same folder adds
    to the first's records rather than dropping them); none if there is no readable file."""
    try:
        records = json.loads((output / "grid_results.json").read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(records, list):
        return []
    return [r for r in records if isinstance(r, dict) and r.get("name") not in names
            and (output / str(r.get("name"))).is_dir()]


def write_outputs(output: Path, specs: list[dict], outcomes: list[dict]) -> str:
    text = summary(specs, outcomes)
    output.mkdir(parents=True, exist_ok=True)
    # Each file is replaced whole: a failed write (a full disk) leaves the earlier one intact.
    with atomic_open(output / "grid_table.md", "w") as handle:
        handle.write(text)
    records = [{"name": s["name"], "family": s["family"], "seed": s["seed"],
                "options": s["options"], **o} for s, o in zip(specs, outcomes)]
    records = earlier_records(output, {s["name"] for s in specs}) + records
    with atomic_open(output / "grid_results.json", "w") as handle:
        handle.write(json.dumps(records, indent=1))
    return text


def runs(count: int) -> str:
    return f"{count} run" + ("" if count == 1 else "s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        specs = plan(args)
    except (ConfigError, UnknownEnvError, NotATaskFamilyError, EnvOptionError) as error:
        print(f"grid.py: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    output = Path(args.output_dir).resolve()
    if args.dry_run:
        for s in specs:
            print(f"{state_of(s)}: {s['name']}")
        print(f"{runs(len(specs))} under {output}")
        return 0
    try:
        ensure_dir(output)  # where the table goes, checked before any run starts
        runtime = RayRuntime(args.ray_address, what="grid.py")
    except (OutputPathError, ConfigError) as error:
        print(f"grid.py: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except RayStartError as error:
        print(f"grid.py: error: {error}", file=sys.stderr)
        return 1
    ray = runtime.ray
    try:
        for flag, resource, wanted in (("--cpus-per-run", "CPU", args.cpus_per_run),
                                       ("--gpus-per-run", "GPU", args.gpus_per_run)):
            largest = largest_node(ray, resource)
            if wanted > largest:  # Ray would wait for such a node without end
                print(f"grid.py: error: {flag} {wanted:g}: no node of the cluster has that many "
                      f"{resource}s (the most: {largest:g})", file=sys.stderr)
                return EXIT_USAGE
        print(f"{runs(len(specs))} under {output}", flush=True)
        with sigterm_as_interrupt():  # after ray.init, which sets its own
            outcomes = run_all(ray, specs, args.cpus_per_run, args.gpus_per_run)
    except KeyboardInterrupt as interrupt:
        print("interrupted: the runs were cancelled; their last checkpoints are intact: run the "
              "same command again to resume them", file=sys.stderr)
        return EXIT_TERMINATED if stopped_by_sigterm(interrupt) else EXIT_INTERRUPTED
    finally:
        runtime.close()
    try:
        print(write_outputs(output, specs, outcomes))
    except (OutputPathError, WriteError) as error:  # the runs are done; their folders hold them
        print(f"grid.py: error: {error}", file=sys.stderr)
        return 1
    print(f"table: {output / 'grid_table.md'}")
    failed = sum(o["status"] == "failed" for o in outcomes)
    if failed:
        print(f"{failed} of {runs(len(specs))} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
