"""Reproduce a MAML-TRPO adaptation curve of the paper: train, evaluate with baselines, report.

    python experiments/reproduce_rl.py --env navigation_2d [--seed 0] [--out runs/reproduce]
        [--num-batches 500] [--chunk 50] [--pretrain-iterations N] [--num-tasks N]
        [--episodes-per-task N] [--later-lr-scale S] [--skip-training] [--publish]
        [-- TRAINING FLAGS...]

Flags after ``--`` go to ``maml_trpo`` (e.g. ``-- --hidden-sizes 100 100 --nonlinearity relu``
for the paper's policy, or ``--hvp-subsample 1.0``). They define the run when it is created; a
run that exists keeps its own, so given again they must agree with its ``config.yaml`` (else
the script stops with an error), except ``MACHINE_KEYS`` (workers, threads, checkpointing),
which do not change what the run computes and apply to every chunk.

Meta-trains with the shipped defaults (``experiments/maml_trpo/{env}.yaml``) in chunks of
``--chunk`` iterations, each a separate ``--resume`` of the same run, so a run that is stopped
(or a machine's per-command time limit) loses at most one chunk; running the same command again
continues where it stopped. A run directory without a checkpoint (stopped before its first
one) is skipped with a notice, and a new run is started. Then ``evaluate --baselines``
(pretrained, random init, oracle) on ``--num-tasks`` (default 40) held-out tasks, with the
paper's test batches of 4000 env steps per task drawn as its sampler drew them (``evaluate
--env-steps-per-task 4000``: 40 episodes side by side for navigation_2d, whose horizon is 100,
20 for the MuJoCo families, more where episodes end early; ``--episodes-per-task N`` samples
a fixed N instead), and a Markdown section for docs/results.md (our
curve next to the paper's, with CIs, the plot, the commands, seed, iterations, wall time and
machine) is written to ``RUN/evaluation/results_section.md`` and printed. Only with
``--publish`` is the plot copied to this repository's ``docs/figures/{env}.png``, where the
section's image link points.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from metarl import envs
from metarl.checkpoint_format import count
from metarl.config import (
    ConfigError,
    add_flags,
    explicit_flags,
    flag_name,
    from_mapping,
    read_yaml,
    resolve,
    validate,
)
from metarl.files import atomic_open
from metarl.rl.config import MAMLTRPOConfig
from metarl.runs import CheckpointError, load_checkpoint
from metarl.scalars import training_seconds
from metarl.scripts import (
    int_at_least,
    non_negative_int,
    positive_float,
    positive_int,
    run_script,
)

REPO = Path(__file__).resolve().parents[1]

#: The paper's test batches: env steps per task and step (docs/protocol.md).
PAPER_TEST_STEPS = 4000
#: Options this script sets itself; after ``--`` they are refused.
OWN_KEYS = ("env", "seed", "num_batches", "output_dir")
#: Options that do not change what a run computes (the same episodes for any number of
#: workers): after ``--`` they may differ from the run's and go to every chunk.
MACHINE_KEYS = ("num_workers", "torch_threads", "checkpoint_every")


def run(*argv: str) -> None:
    """``python -m metarl.run ARGV``; exits with its status if it fails (it printed why)."""
    command = [sys.executable, "-m", "metarl.run", *argv]
    print("+", " ".join(command), flush=True)
    status = subprocess.run(command).returncode
    if status != 0:
        raise SystemExit(status)


def find_run(out: Path, env: str, seed: int) -> Path | None:
    """The newest run of ``env`` and ``seed`` under ``out`` with a checkpoint; run directories
    without one (stopped before their first checkpoint) are skipped with a notice."""
    for run_dir in sorted(out.glob(f"maml_trpo__{env}__{seed}__*"), reverse=True):
        if (run_dir / "checkpoint.pt").is_file():
            return run_dir
        print(f"note: skipping {run_dir}: it has no checkpoint.pt (stopped before its first "
              "checkpoint); delete it when you like", flush=True)
    return None


def iteration_of(run_dir: Path) -> int:
    """The iteration of the run's checkpoint (0 without one); a CheckpointError if the file is
    not a checkpoint with an iteration."""
    checkpoint = run_dir / "checkpoint.pt"
    if not checkpoint.exists():
        return 0
    state = load_checkpoint(checkpoint)
    if "iteration" not in state:
        raise CheckpointError(f"checkpoint {checkpoint} is malformed: 'iteration' missing")
    problem = count(state["iteration"])
    if problem is not None:
        raise CheckpointError(f"checkpoint {checkpoint} is malformed: 'iteration'{problem}")
    return state["iteration"]


def training_flags(parser: argparse.ArgumentParser, flags: list[str]) -> dict[str, Any]:
    """The options given after ``--`` (and in a ``--config FILE`` there), typed."""
    class FlagParser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            parser.error(f"after --: {message}")

    flag_parser = FlagParser(prog="reproduce_rl.py ... --", add_help=False,
                             allow_abbrev=False)  # as metarl.run: whole flag names only
    flag_parser.add_argument("--config")
    add_flags(flag_parser, MAMLTRPOConfig)
    args = flag_parser.parse_args(flags)
    explicit = explicit_flags(args, MAMLTRPOConfig)
    own = [flag_name(k) for k in OWN_KEYS if k in explicit]
    if own:
        parser.error(f"{', '.join(own)} after --: set by this script (use its own --env, --seed, "
                     "--num-batches, --out)")
    try:
        values = {**(read_yaml(args.config) if args.config is not None else {}), **explicit}
        config = from_mapping(MAMLTRPOConfig, values, source="the flags after --")
        validate(config)
    except ConfigError as error:
        parser.error(f"after --: {error}")
    return {k: getattr(config, k) for k in values if k not in OWN_KEYS}  # the file's: flags win


def saved_config(run_dir: Path) -> MAMLTRPOConfig:
    """The run's ``config.yaml``; a ConfigError if it is unreadable or not a maml_trpo run's."""
    path = run_dir / "config.yaml"
    saved = read_yaml(path)
    algo = saved.pop("algo", None)
    if algo != "maml_trpo":
        raise ConfigError(f"{path} is not the config of a maml_trpo run (algo: {algo!r}); "
                          f"move {run_dir} aside or use another --out")
    return from_mapping(MAMLTRPOConfig, saved, source=str(path))


def check_flags(parser: argparse.ArgumentParser, run_dir: Path, given: dict[str, Any]) -> None:
    """Refuse flags after ``--`` that an existing run would not apply (they define a run only
    when it is created)."""
    saved = saved_config(run_dir)
    differ = [f"{k}={v!r} (the run has {getattr(saved, k)!r})" for k, v in given.items()
              if k not in MACHINE_KEYS and getattr(saved, k) != v]
    if differ:
        parser.error(f"{run_dir} exists and was created with other options; after -- you gave "
                     f"{', '.join(differ)}. Flags after -- only apply when a run is created: "
                     "drop them, or use another --out or --seed for a new run")


def as_flags(values: dict[str, Any]) -> list[str]:
    """``{"hidden_sizes": (100, 100), "first_order": True}`` -> ``--hidden-sizes 100 100
    --first-order``."""
    flags = []
    for key, value in values.items():
        if isinstance(value, bool):
            flags.append(flag_name(key) if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, tuple | list):
            flags += [flag_name(key), *(str(v) for v in value)]
        else:
            flags += [flag_name(key), str(value)]
    return flags


def training_command(env: str, run_dir: Path) -> str:
    """The one ``maml_trpo`` command that trains this run: its saved options where they differ
    from the shipped defaults (whatever flags this script was given), at its iteration."""
    saved = saved_config(run_dir)
    shipped = resolve(MAMLTRPOConfig, algo="maml_trpo", task=env, config_file=None, flags={})
    changed = {f.name: getattr(saved, f.name) for f in dataclasses.fields(saved)
               if f.name not in (*OWN_KEYS, *MACHINE_KEYS)
               and getattr(saved, f.name) != getattr(shipped, f.name)}
    return " ".join(["python -m metarl.run maml_trpo --env", env, "--seed", str(saved.seed),
                     "--num-batches", str(iteration_of(run_dir)), *as_flags(changed)])


def section(env: str, run_dir: Path, result: dict, commands: list[str], wall_s: float) -> str:
    methods = result["methods"]
    steps = len(methods["maml"]["mean"])
    header = "| method | " + " | ".join(f"step {k}" for k in range(steps)) + " |"
    lines = [header, "|---" * (steps + 1) + "|"]
    for label, m in methods.items():
        cells = " | ".join(f"{mu:.1f} ± {ci:.1f}" for mu, ci in zip(m["mean"], m["ci95"]))
        lines.append(f"| {label} (ours) | {cells} |")
    if result.get("published_maml"):
        cells = " | ".join(f"{v:.1f}" for v in result["published_maml"][:steps])
        lines.append(f"| MAML (paper) | {cells} |")
    if result.get("published_oracle") is not None and "oracle" in methods:
        lines.append(f"| oracle (paper) | {result['published_oracle']:.1f} |"
                     + " |" * (steps - 1))
    cpu = platform.processor() or platform.machine()
    return "\n".join([
        f"## {env}",
        "",
        f"Mean return over {result['num_tasks']} held-out tasks after 0..{steps - 1} "
        f"policy-gradient steps ({batch_size(result)} per task and step; "
        f"step sizes {result['step_sizes']}), ± 95% CI. Policy {result['hidden_sizes']} "
        f"{result['nonlinearity']}; {result['iteration']} meta-iterations, seed "
        f"{result['seed']}.",
        "",
        *lines,
        "",
        f"![{env} adaptation curve](figures/{env}.png)",
        "",
        "- Commands: " + "; ".join(f"`{c}`" for c in commands),
        f"- Run directory: `{run_dir}`; meta-training {wall_s / 60:.0f} min on "
        f"{os.cpu_count()} cores ({cpu}), {time.strftime('%Y-%m-%d')}.",
        "",
    ])


def batch_size(result: dict[str, Any]) -> str:
    """The evaluation batch of ``curve.json``'s ``result``, in words."""
    if result.get("env_steps_per_task"):
        return (f"batches of {result['env_steps_per_task']} env steps, "
                f"{result['episodes_per_task']} episodes side by side")
    return f"{result['episodes_per_task']} episodes"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--out", default="runs/reproduce")
    parser.add_argument("--num-batches", type=positive_int, default=500,
                        help="meta-iterations, >= 1")
    parser.add_argument("--chunk", type=positive_int, default=50,
                        help="meta-iterations per maml_trpo command, >= 1")
    parser.add_argument("--pretrain-iterations", type=positive_int, default=None,
                        help="iterations of the pretrained and oracle baselines, >= 1 (default: "
                             "the run's)")
    parser.add_argument("--num-tasks", type=int_at_least(2), default=None,
                        help="held-out evaluation tasks, >= 2 (default: evaluate's, 40)")
    parser.add_argument("--episodes-per-task", type=positive_int, default=None,
                        help="evaluation episodes per task and step (default: the paper's test "
                             "batches of 4000 env steps, drawn as its sampler drew them)")
    parser.add_argument("--later-lr-scale", type=positive_float, default=None,
                        help="evaluation step size of steps 2.. / fast_lr (default: 0.5, the "
                             "paper's)")
    parser.add_argument("--skip-training", action="store_true", help="only evaluate and report")
    parser.add_argument("--publish", action="store_true",
                        help="copy the plot to this repository's docs/figures/ENV.png")
    parser.add_argument("training_flags", nargs=argparse.REMAINDER,
                        help="after --: maml_trpo flags for a new run (see the module doc)")
    args = parser.parse_args(argv)
    envs.resolve(args.env)  # an UnknownEnvError naming the valid envs, before anything runs
    out = Path(args.out) / args.env
    extra = [f for f in args.training_flags if f != "--"]
    given = training_flags(parser, extra)
    machine = as_flags({k: v for k, v in given.items() if k in MACHINE_KEYS})

    run_dir = find_run(out, args.env, args.seed)
    if run_dir is not None:
        check_flags(parser, run_dir, given)
    elif not args.skip_training:
        first = min(args.chunk, args.num_batches)
        run("maml_trpo", "--env", args.env, "--seed", str(args.seed), "--num-batches",
            str(first), "--output-dir", str(out), "--no-progress", *extra)
        run_dir = find_run(out, args.env, args.seed)
    if run_dir is None:
        raise SystemExit(f"error: no run of {args.env} with seed {args.seed} under {out}")
    # A plug-in env (package.module:Class) is imported only where the command line names it.
    plugin = ["--env", args.env] if ":" in args.env else []
    while not args.skip_training and (done := iteration_of(run_dir)) < args.num_batches:
        target = min(done + args.chunk, args.num_batches)
        run("maml_trpo", "--resume", str(run_dir), *plugin, "--num-batches", str(target),
            "--no-progress", *machine)
        if iteration_of(run_dir) <= done:
            raise SystemExit(f"error: resuming {run_dir} at iteration {done} did not advance it "
                             f"(its checkpoint is still at {iteration_of(run_dir)}); stopping "
                             "rather than trying again forever")
    commands = [training_command(args.env, run_dir)]

    evaluate = ["evaluate", "--run", str(run_dir), *plugin, "--baselines", "--no-progress"]
    if args.pretrain_iterations is not None:
        evaluate += ["--baseline-iterations", str(args.pretrain_iterations)]
    if args.num_tasks is not None:
        evaluate += ["--num-tasks", str(args.num_tasks)]
    if args.episodes_per_task is None:
        evaluate += ["--env-steps-per-task", str(PAPER_TEST_STEPS)]
    else:
        evaluate += ["--episodes-per-task", str(args.episodes_per_task)]
    if args.later_lr_scale is not None:
        evaluate += ["--later-lr-scale", str(args.later_lr_scale)]
    run(*evaluate)
    commands.append("python -m metarl.run " + " ".join(evaluate))
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    text = section(args.env, run_dir, result, commands, training_seconds(run_dir))
    with atomic_open(run_dir / "evaluation" / "results_section.md", "w") as handle:
        handle.write(text)
    print(text)
    plot = run_dir / "evaluation" / "curve.png"
    if args.publish:
        figure = REPO / "docs" / "figures" / f"{args.env}.png"
        with atomic_open(figure, "wb") as handle:
            handle.write(plot.read_bytes())
        print(f"published {figure}")
    else:
        print(f"plot: {plot} (not copied to docs/figures; --publish does that)")


if __name__ == "__main__":
    sys.exit(run_script(main))
