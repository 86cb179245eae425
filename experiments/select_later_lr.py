"""Choose the evaluation step size of steps 2.. on validation tasks, then evaluate on the test tasks.

    python experiments/select_later_lr.py --run RUN_DIR [--scales 0.1 0.15 0.25 0.35 0.5]
        [--validation-seed 1] [--episodes-per-task N] [-- EVALUATE FLAGS...]

The paper's protocol takes the first step with α = fast_lr and later ones with α/2
(``--later-lr-scale 0.5``). How far a later step should go depends on the meta-trained policy,
so this picks the scale from ``--scales`` that gives the best mean return over steps 2..K on
held-out tasks of another evaluation seed (``--validation-seed``; evaluation seeds draw their
tasks from ``seed + 2000029``, so validation and test tasks are disjoint), then runs
``evaluate --baselines`` with it on the test tasks (the run's own seed) into
``RUN/evaluation_later_lr``. Flags after ``--`` go to both evaluations (for example
``--baseline-iterations 100`` or ``--pretrained DIR``). Prints the validation table and the test
curve.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def evaluate(run_dir: Path, out: Path, *flags: str) -> dict:
    command = [sys.executable, "-m", "metarl.run", "evaluate", "--run", str(run_dir),
               "--output", str(out), "--no-progress", *flags]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "curve.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a maml_trpo run directory")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.15, 0.25, 0.35, 0.5])
    parser.add_argument("--validation-seed", type=int, default=1)
    parser.add_argument("--episodes-per-task", type=int, default=None)
    parser.add_argument("evaluate_flags", nargs=argparse.REMAINDER,
                        help="after --: flags for evaluate")
    args = parser.parse_args()
    extra = [f for f in args.evaluate_flags if f != "--"]
    if args.episodes_per_task is not None:
        extra += ["--episodes-per-task", str(args.episodes_per_task)]
    root = args.run / "evaluation_later_lr"

    later_mean = {}
    print("validation (seed {}): mean return after 0..K steps".format(args.validation_seed))
    for scale in args.scales:
        result = evaluate(args.run, root / "validation" / f"scale_{scale:g}", "--no-baselines",
                          "--seed", str(args.validation_seed), "--later-lr-scale", str(scale),
                          *[f for f in extra if f not in ("--baselines",)])
        curve = result["methods"]["maml"]["mean"]
        later_mean[scale] = sum(curve[2:]) / max(len(curve) - 2, 1)
        print(f"  scale {scale:g}: " + " ".join(f"{v:.2f}" for v in curve)
              + f"  (steps 2..: {later_mean[scale]:.2f})", flush=True)
    best = max(later_mean, key=later_mean.get)
    print(f"chosen later-lr-scale: {best:g}")
    result = evaluate(args.run, root, "--baselines", "--later-lr-scale", str(best), *extra)
    (root / "selection.json").write_text(json.dumps(
        {"validation_seed": args.validation_seed, "later_mean_by_scale": later_mean,
         "chosen": best}, indent=2) + "\n")
    for label, m in result["methods"].items():
        print(f"test {label}: " + " | ".join(f"{mu:.1f} ± {ci:.1f}"
                                             for mu, ci in zip(m["mean"], m["ci95"])))


if __name__ == "__main__":
    main()
