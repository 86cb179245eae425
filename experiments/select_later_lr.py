"""Choose the evaluation step size of steps 2.. on validation tasks; evaluate on the test tasks.

    python experiments/select_later_lr.py --run RUN_DIR [--scales 0.1 0.15 0.25 0.35 0.5]
        [--validation-seed SEED] [--episodes-per-task N] [-- EVALUATE FLAGS...]

The paper's protocol takes the first step with α = fast_lr and later ones with α/2
(``--later-lr-scale 0.5``). How far a later step should go depends on the meta-trained policy,
so this picks the scale from ``--scales`` that gives the best mean return over steps 2..K on
held-out tasks of another evaluation seed (``--validation-seed``, default the run's seed + 1;
an evaluation seed s draws its tasks from ``s + 2000029``, so validation and test tasks are
disjoint), then runs ``evaluate --baselines`` with it on the test tasks (the run's own seed)
into ``RUN/evaluation_later_lr``. Flags after ``--`` go to both evaluations (for example
``--steps 4`` or ``--baseline-iterations 100``); the pretrained and oracle baselines of an
earlier ``evaluate --baselines`` (``RUN/evaluation/pretrained``, ``RUN/evaluation/oracle``) are
reused unless ``--pretrained`` / ``--oracle`` or ``--baseline-iterations`` is given. Prints
the validation table and the test curve.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

#: Flags this script sets itself; given after ``--`` they would be overridden or override.
OWN_FLAGS = ("--seed", "--later-lr-scale", "--output", "--run", "--checkpoint")


def evaluate(run_dir: Path, out: Path, *flags: str) -> dict:
    """``evaluate`` into ``out``; exits with its status if it fails (it printed why)."""
    command = [sys.executable, "-m", "metarl.run", "evaluate", "--run", str(run_dir),
               "--output", str(out), "--no-progress", *flags]
    print("+", " ".join(command), flush=True)
    status = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    if status != 0:
        raise SystemExit(status)
    return json.loads((out / "curve.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a maml_trpo run directory")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.15, 0.25, 0.35, 0.5])
    parser.add_argument("--validation-seed", type=int, default=None)
    parser.add_argument("--episodes-per-task", type=int, default=None)
    parser.add_argument("evaluate_flags", nargs=argparse.REMAINDER,
                        help="after --: flags for evaluate")
    args = parser.parse_args()
    extra = [f for f in args.evaluate_flags if f != "--"]
    clashes = [f for f in extra if f.split("=")[0] in OWN_FLAGS + ("--baselines",
                                                                  "--no-baselines")]
    if clashes:
        parser.error(f"{', '.join(clashes)}: set by this script; valid flags after -- are "
                     "evaluate's others (--steps, --num-tasks, --baseline-iterations, ...)")
    config = yaml.safe_load((args.run / "config.yaml").read_text())
    if config.get("algo") != "maml_trpo":
        parser.error(f"--run {args.run} is a {config.get('algo')!r} run; this script chooses "
                     "the later step size of maml_trpo runs")
    validation_seed = (config["seed"] + 1 if args.validation_seed is None
                       else args.validation_seed)
    if validation_seed == config["seed"]:
        parser.error(f"--validation-seed={validation_seed} is the run's seed, whose tasks are "
                     "the test tasks; choose another")
    if args.episodes_per_task is not None:
        extra += ["--episodes-per-task", str(args.episodes_per_task)]
    for kind in ("pretrained", "oracle"):  # reuse the baselines of an earlier evaluation
        trained = sorted((args.run / "evaluation" / kind).glob("*/checkpoint.pt"))
        if trained and not {f"--{kind}", "--baseline-iterations"} & {
                f.split("=")[0] for f in extra}:
            extra += [f"--{kind}", str(trained[-1].parent)]
    root = args.run / "evaluation_later_lr"

    later_mean = {}
    print(f"validation (seed {validation_seed}): mean return after 0..K steps")
    for scale in args.scales:
        result = evaluate(args.run, root / "validation" / f"scale_{scale:g}", "--no-baselines",
                          "--seed", str(validation_seed), "--later-lr-scale", str(scale),
                          *extra)
        curve = result["methods"]["maml"]["mean"]
        if len(curve) < 3:
            parser.error(f"the curve has {len(curve) - 1} step(s); choosing the size of steps "
                         "2.. needs --steps >= 2")
        later_mean[scale] = sum(curve[2:]) / (len(curve) - 2)
        print(f"  scale {scale:g}: " + " ".join(f"{v:.2f}" for v in curve)
              + f"  (steps 2..: {later_mean[scale]:.2f})", flush=True)
    best = max(later_mean, key=later_mean.get)
    print(f"chosen later-lr-scale: {best:g}")
    result = evaluate(args.run, root, "--baselines", "--later-lr-scale", str(best), *extra)
    (root / "selection.json").write_text(json.dumps(
        {"validation_seed": validation_seed, "later_mean_by_scale": later_mean,
         "chosen": best}, indent=2) + "\n")
    for label, m in result["methods"].items():
        print(f"test {label}: " + " | ".join(f"{mu:.1f} ± {ci:.1f}"
                                             for mu, ci in zip(m["mean"], m["ci95"])))


if __name__ == "__main__":
    main()
