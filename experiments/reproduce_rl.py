"""Reproduce a MAML-TRPO adaptation curve of the paper: train, evaluate with baselines, report.

    python experiments/reproduce_rl.py --env navigation_2d [--seed 0] [--out runs/reproduce]
        [--num-batches 500] [--chunk 50] [--pretrain-iterations N] [--episodes-per-task N]
        [--later-lr-scale S] [--skip-training] [-- TRAINING FLAGS...]

Flags after ``--`` go to ``maml_trpo`` unchanged (e.g. ``-- --hidden-sizes 100 100
--nonlinearity relu`` for the paper's policy, or ``--hvp-subsample 1.0``).

Meta-trains with the shipped defaults (``experiments/maml_trpo/{env}.yaml``) in chunks of
``--chunk`` iterations, each a separate ``--resume`` of the same run, so a run that is stopped
(or a machine's per-command time limit) loses at most one chunk; running the same command again
continues where it stopped. Then ``evaluate --baselines`` (pretrained, random init, oracle)
on 40 held-out tasks (with the paper's test batch of 4000 env steps: 40 episodes per task for
navigation_2d, whose horizon is 100, the run's 20 for the MuJoCo families), and a Markdown
section for docs/results.md (our curve next to the paper's, with CIs, the plot, the commands,
seed, iterations, wall time and machine) is written to ``RUN/evaluation/results_section.md``
and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

#: The paper's test batches were 4000 env steps (spec.md section 3): episodes of each env's
#: horizon. MuJoCo's 20 equal the training's fast_batch_size; navigation's 40 do not.
PAPER_TEST_EPISODES = {"navigation_2d": 40}


def run(*argv: str) -> None:
    command = [sys.executable, "-m", "metarl.run", *argv]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def find_run(out: Path, env: str, seed: int) -> Path | None:
    runs = sorted(out.glob(f"maml_trpo__{env}__{seed}__*"))
    return runs[-1] if runs else None


def iteration_of(run_dir: Path) -> int:
    checkpoint = run_dir / "checkpoint.pt"
    if not checkpoint.exists():
        return 0
    return int(torch.load(checkpoint, weights_only=True)["iteration"])


def training_seconds(run_dir: Path) -> float:
    """Total logged ``time/iteration_s`` of the run (all chunks)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    if "time/iteration_s" not in events.Tags()["scalars"]:
        return 0.0
    latest = {e.step: e.value for e in events.Scalars("time/iteration_s")}  # last write wins
    return float(sum(latest.values()))


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
        f"policy-gradient steps ({result['episodes_per_task']} episodes per task and step; "
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/reproduce")
    parser.add_argument("--num-batches", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--pretrain-iterations", type=int, default=None,
                        help="iterations of the pretrained and oracle baselines (default: "
                             "the run's)")
    parser.add_argument("--episodes-per-task", type=int, default=None,
                        help="evaluation episodes per task and step (default: the paper's test "
                             "batch of 4000 env steps, 40 episodes for navigation_2d; the "
                             "run's fast_batch_size otherwise)")
    parser.add_argument("--later-lr-scale", type=float, default=None,
                        help="evaluation step size of steps 2.. / fast_lr (default: 0.5, the "
                             "paper's)")
    parser.add_argument("--skip-training", action="store_true", help="only evaluate and report")
    parser.add_argument("training_flags", nargs=argparse.REMAINDER,
                        help="after --: flags for the first maml_trpo command")
    args = parser.parse_args()
    out = Path(args.out) / args.env
    extra = [f for f in args.training_flags if f != "--"]
    commands = []

    run_dir = find_run(out, args.env, args.seed)
    if run_dir is None and not args.skip_training:
        first = min(args.chunk, args.num_batches)
        run("maml_trpo", "--env", args.env, "--seed", str(args.seed), "--num-batches",
            str(first), "--output-dir", str(out), "--no-progress", *extra)
        run_dir = find_run(out, args.env, args.seed)
    if run_dir is None:
        raise SystemExit(f"no run of {args.env} with seed {args.seed} under {out}")
    commands.append(f"python -m metarl.run maml_trpo --env {args.env} --seed {args.seed} "
                    f"--num-batches {args.num_batches} {' '.join(extra)}".strip())
    while not args.skip_training and iteration_of(run_dir) < args.num_batches:
        target = min(iteration_of(run_dir) + args.chunk, args.num_batches)
        run("maml_trpo", "--resume", str(run_dir), "--num-batches", str(target), "--no-progress")

    evaluate = ["evaluate", "--run", str(run_dir), "--baselines", "--no-progress"]
    if args.pretrain_iterations is not None:
        evaluate += ["--baseline-iterations", str(args.pretrain_iterations)]
    episodes = (PAPER_TEST_EPISODES.get(args.env) if args.episodes_per_task is None
                else args.episodes_per_task)
    if episodes is not None:
        evaluate += ["--episodes-per-task", str(episodes)]
    if args.later_lr_scale is not None:
        evaluate += ["--later-lr-scale", str(args.later_lr_scale)]
    run(*evaluate)
    commands.append("python -m metarl.run " + " ".join(evaluate))
    result = json.loads((run_dir / "evaluation" / "curve.json").read_text())
    text = section(args.env, run_dir, result, commands, training_seconds(run_dir))
    (run_dir / "evaluation" / "results_section.md").write_text(text)
    figures = Path("docs/figures")
    if figures.is_dir():
        (figures / f"{args.env}.png").write_bytes((run_dir / "evaluation" / "curve.png").read_bytes())
    print(text)


if __name__ == "__main__":
    main()
