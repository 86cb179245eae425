"""The scalars a run logged to TensorBoard, read back (for tables and reports over runs).

A resumed run opens a new event file that purges what the run logged after its last
checkpoint, then logs those iterations again; reading the run directory as one (TensorBoard's
``EventAccumulator``) drops the purged values, and of any step still written twice the last
write wins, so each iteration has the value TensorBoard shows.
"""

from __future__ import annotations

from pathlib import Path


class MissingScalarError(LookupError):
    """A run directory has no scalar of the requested tag; the message names the tags it has."""


def logged_scalars(run_dir: str | Path) -> dict[str, dict[int, float]]:
    """``{tag: {step: value}}`` of every scalar logged in ``run_dir``, steps in order; empty
    when the directory holds no event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    scalars = {}
    for tag in events.Tags()["scalars"]:
        latest = {event.step: float(event.value) for event in events.Scalars(tag)}
        scalars[tag] = dict(sorted(latest.items()))
    return scalars


def logged_scalar(run_dir: str | Path, tag: str) -> dict[int, float]:
    """``{step: value}`` of one scalar of ``run_dir``; MissingScalarError naming the logged
    tags if the run has none of ``tag``."""
    scalars = logged_scalars(run_dir)
    if tag not in scalars:
        logged = ", ".join(sorted(scalars)) or "nothing"
        raise MissingScalarError(f"{run_dir}: no scalar {tag!r}; logged: {logged}")
    return scalars[tag]


def training_seconds(run_dir: str | Path) -> float:
    """The run's summed ``time/iteration_s`` over all its chunks (0.0 if it logged none)."""
    return sum(logged_scalars(run_dir).get("time/iteration_s", {}).values())
