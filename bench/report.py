"""The whole performance table in one run: every built-in env through every benchmark.

    python bench/report.py [--envs navigation_2d cheetah_vel ...] [--iterations 2]

For each env it runs, as separate processes (so one benchmark's threads and workers do not
linger into the next): ``bench/envs.py`` (batched env-steps/s against raw physics),
``bench/sampling.py`` (seconds per sampled meta-batch) and ``bench/meta_iteration.py``
(seconds per meta-iteration and its split), reads the JSON line each prints last, and prints
a Markdown table, then all results as one JSON object on the last line. MuJoCo envs take
minutes each on 2 cores. An env name no benchmark could run stops it before any runs, in one
line; a benchmark that fails is reported under the table, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from metarl.scripts import positive_int, run_script

HERE = Path(__file__).resolve().parent
BUILTIN = ["navigation_2d", "cheetah_vel", "cheetah_dir", "ant_vel", "ant_dir", "ant_goal"]


def run(script: str, *args: str) -> dict:
    """The last-line JSON of ``python bench/SCRIPT args``; an error dict if it fails."""
    command = [sys.executable, str(HERE / script), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"{script} exited {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def cell(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def check_envs(names: list[str]) -> None:
    """Resolve every env name before any benchmark runs: ``UnknownEnvError`` (one line naming
    the env and the known families, by :func:`run_script`) for a name no benchmark could run."""
    from metarl import envs

    for name in names:
        envs.resolve(name)


def main() -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=BUILTIN)
    parser.add_argument("--iterations", type=positive_int, default=2,
                        help="timed meta-iterations")
    args = parser.parse_args()
    check_envs(args.envs)

    results = {}
    for env in args.envs:
        results[env] = {
            "envs": run("envs.py", "--env", env),
            "sampling": run("sampling.py", "--env", env),
            "meta_iteration": run("meta_iteration.py", "--env", env,
                                  "--iterations", str(args.iterations)),
        }
        print(f"{env}: done", file=sys.stderr, flush=True)

    header = ("| env | batched env-steps/s | vs raw physics | vs SyncVectorEnv | s per meta-batch "
              "| s per meta-iteration | sampling s | adaptation s | TRPO s | vs raw physics |")
    print(header)
    print("|---" * 10 + "|")
    for env, r in results.items():
        e, s, m = r["envs"], r["sampling"], r["meta_iteration"]
        print(f"| {env} | {cell(e.get('batched_steps_per_s'))} | {cell(e.get('ratio_vs_raw'))} "
              f"| {cell(e.get('ratio_vs_sync_vector'))} | {cell(s.get('seconds_per_meta_batch'))} "
              f"| {cell(m.get('seconds_per_iteration'))} | {cell(m.get('sampling_s'))} "
              f"| {cell(m.get('adaptation_s'))} | {cell(m.get('trpo_s'))} "
              f"| {cell(m.get('ratio_to_raw_physics'))} |")
        for part in (e, s, m):
            if "error" in part:
                print(f"  {env}: {part['error']}")
    print(json.dumps(results))
    return 1 if any_failed(results) else 0


def any_failed(results: dict) -> bool:
    """Whether a benchmark of any env failed (its result is an error dict)."""
    return any("error" in part for parts in results.values() for part in parts.values())


if __name__ == "__main__":
    sys.exit(run_script(main))
