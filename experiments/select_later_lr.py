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

from metarl.config import ConfigError, read_yaml
from metarl.scripts import non_negative_int, positive_float, positive_int, run_script

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


def run_config(run_dir: Path) -> dict:
    """The ``config.yaml`` of the maml_trpo run ``run_dir``; a ConfigError naming what is
    missing or wrong if ``run_dir`` is not one."""
    hint = "give a maml_trpo run directory"
    if not run_dir.exists():
        raise ConfigError(f"--run {run_dir}: no such folder ({hint})")
    if not run_dir.is_dir():
        raise ConfigError(f"--run {run_dir} is a file ({hint})")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--run {run_dir}: no config.yaml ({hint})")
    config = read_yaml(run_dir / "config.yaml")
    if "algo" not in config:
        raise ConfigError(f"--run {run_dir}: its config.yaml names no algo (it is empty or not "
                          f"a run's config; {hint})")
    if config["algo"] != "maml_trpo":
        raise ConfigError(f"--run {run_dir} is a {config['algo']!r} run, by its "
                          "config.yaml; this script chooses the later step size of maml_trpo "
                          "runs")
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"--run {run_dir}: config.yaml's seed is {seed!r}, not a seed")
    return config


def flag_value(flags: list[str], name: str) -> str | None:
    """The value given to ``name`` in ``flags`` (``NAME V`` or ``NAME=V``; the last wins)."""
    value = None
    for i, flag in enumerate(flags):
        if flag == name and i + 1 < len(flags):
            value = flags[i + 1]
        elif flag.startswith(name + "="):
            value = flag.split("=", 1)[1]
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a maml_trpo run directory")
    parser.add_argument("--scales", type=positive_float, nargs="+",
                        default=[0.1, 0.15, 0.25, 0.35, 0.5],
                        help="the later-lr-scales to try, finite numbers > 0")
    parser.add_argument("--validation-seed", type=non_negative_int, default=None)
    parser.add_argument("--episodes-per-task", type=positive_int, default=None)
    parser.add_argument("evaluate_flags", nargs=argparse.REMAINDER,
                        help="after --: flags for evaluate")
    args = parser.parse_args(argv)
    extra = [f for f in args.evaluate_flags if f != "--"]
    clashes = [f for f in extra if f.split("=")[0] in OWN_FLAGS + ("--baselines",
                                                                  "--no-baselines")]
    if clashes:
        parser.error(f"{', '.join(clashes)}: set by this script; valid flags after -- are "
                     "evaluate's others (--steps, --num-tasks, --baseline-iterations, ...)")
    steps = flag_value(extra, "--steps")
    if steps is not None and not (steps.isdigit() and int(steps) >= 2):
        parser.error(f"--steps {steps}: choosing the size of steps 2.. needs --steps >= 2")
    repeated = sorted({f"{s:g}" for s in args.scales if args.scales.count(s) > 1})
    if repeated:
        parser.error(f"--scales {' '.join(repeated)}: given twice; each scale is evaluated once")
    config = run_config(args.run)
    validation_seed = (config["seed"] + 1 if args.validation_seed is None
                       else args.validation_seed)
    if validation_seed == config["seed"]:
        parser.error(f"--validation-seed={validation_seed} is the run's seed, whose tasks are "
                     "the test tasks; choose another")
    if args.episodes_per_task is not None:
        extra += ["--episodes-per-task", str(args.episodes_per_task)]
    baseline_flags = ("--pretrained", "--oracle", "--baseline-iterations")
    baseline_extra = []  # for the test evaluation only: the validation runs have no baselines
    i = 0
    while i < len(extra):
        name = extra[i].split("=")[0]
        if name in baseline_flags:
            take = 1 if "=" in extra[i] else 2
            baseline_extra += extra[i:i + take]
            del extra[i:i + take]
        else:
            i += 1
    for kind in ("pretrained", "oracle"):  # reuse the baselines of an earlier evaluation
        trained = sorted((args.run / "evaluation" / kind).glob("*/checkpoint.pt"))
        if trained and not {f"--{kind}", "--baseline-iterations"} & {
                f.split("=")[0] for f in baseline_extra}:
            baseline_extra += [f"--{kind}", str(trained[-1].parent)]
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
    result = evaluate(args.run, root, "--baselines", "--later-lr-scale", str(best), *extra,
                      *baseline_extra)
    (root / "selection.json").write_text(json.dumps(
        {"validation_seed": validation_seed, "later_mean_by_scale": later_mean,
         "chosen": best}, indent=2) + "\n")
    for label, m in result["methods"].items():
        print(f"test {label}: " + " | ".join(f"{mu:.1f} ± {ci:.1f}"
                                             for mu, ci in zip(m["mean"], m["ci95"])))


if __name__ == "__main__":
    sys.exit(run_script(main))
