"""Whether two installs simulate the MuJoCo families alike: one fixed rollout per family and clock.

    python experiments/physics_drift.py OUT.npz [--families cheetah_vel ...]   # record
    python experiments/physics_drift.py --compare A.npz B.npz   # compare two records

Each record plays, for every built-in MuJoCo family on Gymnasium v5's clock and on the paper's
(``clock=paper``), one episode of up to 200 actions drawn uniformly from the action bounds (numpy
seed 0) from ``reset(seed=0)`` with the family's first task of ``sample_tasks(1, seed=0)``, and
saves the observations, the rewards and the MuJoCo version. ``--compare`` prints, per family and
clock, the largest observation difference after 1, 10 and 30 actions, the two episodes' lengths
and returns, as a Markdown table. Rollouts under random actions are chaotic: a difference of
rounding size (1e-15) after one action that grows later is the same physics; a larger one after
the first action is a change of the simulator. docs/results.md quotes the comparison of MuJoCo
3.17 and 4.0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mujoco
import numpy as np

from metarl import envs
from metarl.files import atomic_open, ensure_dir
from metarl.scripts import run_script

FAMILIES = ("cheetah_vel", "cheetah_dir", "ant_vel", "ant_dir", "ant_goal")
CLOCKS = ("v5", "paper")
HORIZON = 200
CHECKPOINTS = (1, 10, 30)


def rollout(name: str, clock: str) -> tuple[np.ndarray, np.ndarray]:
    """Observations ``[1 + steps, obs]`` and rewards ``[steps]`` of the fixed episode."""
    family = envs.resolve(name).with_options(clock=clock)
    env = family.make()
    env.unwrapped.set_task(family.sample_tasks(1, seed=0)[0])
    obs, _ = env.reset(seed=0)
    actions = np.random.default_rng(0)
    observations, rewards = [obs], []
    for _ in range(HORIZON):
        obs, reward, terminated, truncated, _ = env.step(
            actions.uniform(env.action_space.low, env.action_space.high))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    env.close()
    return np.array(observations), np.array(rewards)


def record_path(out: str) -> Path:
    """``out`` as the record's path, checked before any rollout: a file name ending in .npz in
    a folder that can be written (created if missing); SystemExit or OutputPathError if not."""
    path = Path(out)
    if path.is_dir():
        raise SystemExit(f"error: OUT {out} is a folder; give a file name ending in .npz "
                         f"(e.g. {path / 'record.npz'})")
    if path.suffix != ".npz":
        raise SystemExit(f"error: OUT {out}: give a file name ending in .npz (e.g. "
                         f"{path.name}.npz)")
    ensure_dir(path.parent)
    return path


def record(path: Path, families: tuple[str, ...] = FAMILIES) -> None:
    """Play the fixed episodes of ``families`` on both clocks and save them to ``path``
    (atomically: a failed write leaves any earlier record there intact)."""
    arrays = {"mujoco": np.array(mujoco.__version__), "families": np.array(families)}
    for name in families:
        for clock in CLOCKS:
            arrays[f"{name}:{clock}:obs"], arrays[f"{name}:{clock}:rewards"] = rollout(name, clock)
    check_record(arrays, str(path))
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    print(f"recorded MuJoCo {mujoco.__version__} rollouts in {path}")


def check_record(arrays: dict[str, np.ndarray], source: str) -> None:
    """SystemExit unless ``arrays`` is a whole record: the MuJoCo version, the families and
    finite observations and rewards of each family on each clock."""
    for key in ("mujoco", "families"):
        if key not in arrays:
            raise SystemExit(f"error: {source} is not a physics_drift record (no {key!r} entry)")
    if arrays["families"].ndim != 1 or arrays["families"].dtype.kind != "U":
        raise SystemExit(f"error: {source} is not a physics_drift record ('families' is not a "
                         "list of names)")
    for name in arrays["families"]:
        for clock in CLOCKS:
            for part in ("obs", "rewards"):
                key = f"{name}:{clock}:{part}"
                if key not in arrays:
                    raise SystemExit(f"error: {source} lacks {key!r}; record it again")
                if not np.issubdtype(arrays[key].dtype, np.number):
                    raise SystemExit(f"error: {source}: {key!r} is not numbers; record it again")
                if not np.isfinite(arrays[key]).all():
                    raise SystemExit(f"error: {source}: {key!r} holds a non-finite value (the "
                                     "simulation diverged)")


def load_record(path: str) -> dict[str, np.ndarray]:
    """The arrays of the record ``path``; SystemExit with one line if it is missing or not a
    whole record."""
    if not Path(path).is_file():
        raise SystemExit(f"error: {path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        arrays = dict(loaded) if isinstance(loaded, np.lib.npyio.NpzFile) else {}
    # Only np.load and the reading of its members are in this try, so whatever they raise on
    # bytes that are not an .npz archive (EOFError, ValueError, BadZipFile, zlib.error, ...)
    # means one thing: the file is no record.
    except Exception as error:
        reason = str(error).split(". ")[0] or type(error).__name__
        raise SystemExit(f"error: {path} is not a physics_drift record (not an .npz archive "
                         f"numpy can read: {reason})") from None
    if not arrays:
        raise SystemExit(f"error: {path} is not a physics_drift record (an .npy array, not an "
                         ".npz archive)")
    check_record(arrays, path)
    return arrays


def compare(first: str, second: str) -> None:
    """Print the Markdown table of the families both records hold."""
    a, b = load_record(first), load_record(second)
    families = [name for name in a["families"] if name in set(b["families"])]
    if not families:
        raise SystemExit(f"error: {first} and {second} have no family in common")
    va, vb = str(a["mujoco"]), str(b["mujoco"])
    header = " | ".join(f"obs diff after {k}" for k in CHECKPOINTS)
    print(f"| family | clock | {header} | length {va} / {vb} | return {va} / {vb} |")
    print("|---|---|" + "---|" * (len(CHECKPOINTS) + 2))
    for name in families:
        for clock in CLOCKS:
            oa, ob = a[f"{name}:{clock}:obs"], b[f"{name}:{clock}:obs"]
            ra, rb = a[f"{name}:{clock}:rewards"], b[f"{name}:{clock}:rewards"]
            diffs = [f"{np.abs(oa[k] - ob[k]).max():.1e}" if k < min(len(oa), len(ob)) else "—"
                     for k in CHECKPOINTS]
            print(f"| {name} | {clock} | {' | '.join(diffs)} | {len(ra)} / {len(rb)} | "
                  f"{ra.sum():.1f} / {rb.sum():.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?",
                        help="record this install's rollouts to OUT.npz (a name ending in .npz)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two records")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                        help="families to record (default: all five)")
    args = parser.parse_args(argv)
    if (args.out is None) == (args.compare is None):
        parser.error("give OUT.npz to record, or --compare A.npz B.npz")
    if args.compare:
        compare(*args.compare)
    else:
        record(record_path(args.out), tuple(args.families))
    return 0


if __name__ == "__main__":
    sys.exit(run_script(main))
