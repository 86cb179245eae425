"""Batches of a fixed number of env steps per task, drawn as rllab's sampler drew them.

The paper's test batches were 4000 env steps per task (docs/protocol.md). rllab's vectorised
sampler stepped ``S = steps // horizon`` environments of the task side by side (at most 100),
each starting a new episode as soon as its last one ended, and stopped after the first time step
at which the episodes completed so far held at least ``steps`` env steps; episodes still running
then were dropped. Where no episode ends early this is exactly S episodes. Where episodes end
early (navigation_2d's point reaching its goal, an ant falling) the batch holds more of them,
and more of the short ones: a slot whose episodes end sooner completes more of them in the same
time, so the mean return over the batch leans towards the episodes that reached the goal
quickly (on navigation_2d after adaptation, 0.3 to 1.3 better than a fixed number of episodes;
docs/results.md).

Here slot s's j-th episode is episode ``s`` of round j: each round samples one episode per slot
with the ordinary fixed-count sampler (round 0 with the given seed, so it is the fixed-count
batch itself), until every task's stopping time is known. The result is one ``Episodes`` batch
``[T, K, R * S]`` in which the dropped episodes have length 0, so tasks hold different numbers
of episodes (``Episodes``: a length-0 episode is an empty slot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from metarl.rl.episodes import Episodes, concat_episodes, keep_episodes

#: rllab's cap on the number of environments its vectorised sampler ran side by side.
MAX_SLOTS = 100


def slots_for(steps: int, horizon: int) -> int:
    """Environments rllab's sampler ran side by side for a batch of ``steps`` env steps."""
    if steps < 1 or horizon < 1:
        raise ValueError(f"steps={steps} and horizon={horizon} must be >= 1")
    return max(1, min(steps // horizon, MAX_SLOTS))


def completed_within_budget(lengths: np.ndarray, steps: int) -> np.ndarray | None:
    """Which episodes the sampler kept: ``[R, K, S]`` bool, or None if not yet known.

    Args:
        lengths: ``[R, K, S]`` episode lengths, round-major: slot s of task k ran episodes
            ``lengths[0, k, s], lengths[1, k, s], ...`` back to back.
        steps: the batch's env-step budget.

    Returns:
        The episodes completed by the first time step at which the completed episodes of the
        task hold ``>= steps`` env steps; None when for some task that time lies beyond what
        the R rounds cover (sample another round).
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 3 or (lengths < 1).any():
        raise ValueError(f"lengths must be [R, K, S] with every length >= 1, got shape "
                         f"{lengths.shape}, min {lengths.min() if lengths.size else None}")
    done_at = np.cumsum(lengths, axis=0)  # time step at which each episode completes
    keep = np.zeros(lengths.shape, dtype=bool)
    for k in range(lengths.shape[1]):
        ends, sizes = done_at[:, k].ravel(), lengths[:, k].ravel()
        order = np.argsort(ends, kind="stable")
        completed = np.cumsum(sizes[order])
        reached = np.flatnonzero(completed >= steps)
        # Known up to the time every slot has covered; beyond it a slot may not have finished.
        if reached.size == 0 or ends[order][reached[0]] > done_at[-1, k].min():
            return None
        keep[:, k] = done_at[:, k] <= ends[order][reached[0]]
    return keep


def sample_env_steps(sampler, tasks: Sequence[dict], params: Mapping[str, Tensor], seed: int,
                     steps: int, max_rounds: int = 1000) -> Episodes:
    """Episodes of every task, ``steps`` env steps each, as rllab's sampler drew them.

    ``sampler`` samples ``S = slots_for(steps, horizon)`` episodes per task (a
    :class:`~metarl.rl.sampler.BatchedSampler` or its process-sharded form). Round 0 uses
    ``seed``; round r > 0 a seed derived from ``(seed, r)``.
    """
    expected = slots_for(steps, sampler.horizon)
    if sampler.episodes_per_task != expected:
        raise ValueError(f"a batch of {steps} env steps with horizon {sampler.horizon} runs "
                         f"{expected} episodes side by side; the sampler samples "
                         f"{sampler.episodes_per_task} per task")
    rounds: list[Episodes] = []
    for r in range(max_rounds):
        rounds.append(sampler.sample(tasks, params, seed=round_seed(seed, r)))
        lengths = torch.stack([batch.lengths for batch in rounds]).cpu().numpy()
        keep = completed_within_budget(lengths, steps)
        if keep is not None:
            # [R, K, S] -> [K, R * S], episode r * S + s being slot s's r-th
            keep = torch.from_numpy(keep).permute(1, 0, 2).reshape(len(tasks), -1)
            keep = keep.to(rounds[0].lengths.device)
            return keep_episodes(concat_episodes(rounds), keep)
    raise RuntimeError(f"{max_rounds} rounds of {expected} episodes per task did not complete "
                       f"{steps} env steps")


def round_seed(seed: int, r: int) -> int:
    """The sampling seed of round ``r`` (round 0: ``seed`` itself)."""
    if r == 0:
        return seed
    return int(np.random.SeedSequence([seed, r]).generate_state(1)[0])
