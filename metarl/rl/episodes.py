"""The time-major episode batch: ``[T, K, E, ...]`` = time, tasks, episodes per task.

``T`` is the horizon. An episode of length L occupies steps ``0 .. L-1``; ``mask`` is 1 there and
0 after (termination before the horizon, or a shorter horizon: fixed horizons are masks). Values
at masked steps are padding and carry no meaning. An episode of length 0 is an empty slot, so
tasks can hold different numbers of episodes (``metarl.rl.step_budget``); it contributes nothing
to any masked sum and does not count in ``returns_per_task``. ``terminated`` says whether an
episode ended by termination (its last state is terminal) rather than truncation; see
``metarl.rl.returns``. ``non_finite`` marks the episodes that ended at a non-finite state (the
env flagged a diverged state, or the policy's action was non-finite): terminated there, with
observation and reward 0 at that step, and counted so that the run can report them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor


@dataclass
class Episodes:
    """Episodes of K tasks, E per task, horizon T.

    Attributes:
        observations: ``[T, K, E, obs]`` observation at each step.
        actions: ``[T, K, E, act]`` action taken.
        rewards: ``[T, K, E]`` reward received.
        log_probs: ``[T, K, E]`` log-probability of the action under the sampling policy.
        mask: ``[T, K, E]`` floating, 1.0 for the first ``lengths[k, e]`` steps, 0.0 after.
        lengths: ``[K, E]`` integer episode lengths (valid steps), at most T.
        terminated: ``[K, E]`` bool, True where the episode ended by termination.
        non_finite: ``[K, E]`` bool, True where it ended at a non-finite state (then also
            terminated); default: none did.
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    log_probs: Tensor
    mask: Tensor
    lengths: Tensor
    terminated: Tensor
    non_finite: Tensor = field(default=None)  # type: ignore[assignment]  # None: all False

    def __post_init__(self) -> None:
        if self.non_finite is None:
            self.non_finite = torch.zeros_like(self.terminated, dtype=torch.bool)
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, Tensor):
                raise TypeError(f"Episodes.{f.name} must be a Tensor, got {type(value).__name__}")
        if self.rewards.dim() != 3:
            raise ValueError(f"rewards must be [T, K, E], got shape {tuple(self.rewards.shape)}")
        t, k, e = self.rewards.shape
        expected = {
            "observations": (t, k, e, None),
            "actions": (t, k, e, None),
            "log_probs": (t, k, e),
            "mask": (t, k, e),
            "lengths": (k, e),
            "terminated": (k, e),
            "non_finite": (k, e),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if len(actual) != len(shape) or any(
                s is not None and a != s for a, s in zip(actual, shape)
            ):
                want = ", ".join("*" if s is None else str(s) for s in shape)
                raise ValueError(
                    f"Episodes.{name} has shape {actual}; with rewards [T={t}, K={k}, E={e}] "
                    f"it must be [{want}]"
                )
        for name in ("observations", "actions", "rewards", "log_probs", "mask"):
            if not getattr(self, name).is_floating_point():
                raise TypeError(
                    f"Episodes.{name} must be floating point, got {getattr(self, name).dtype}"
                )
        if self.lengths.is_floating_point() or self.lengths.dtype == torch.bool:
            raise TypeError(f"Episodes.lengths must be an integer tensor, got {self.lengths.dtype}")
        for name in ("terminated", "non_finite"):
            if getattr(self, name).dtype != torch.bool:
                raise TypeError(f"Episodes.{name} must be bool, got {getattr(self, name).dtype}")
        if bool((self.non_finite & ~self.terminated).any()):
            raise ValueError("Episodes.non_finite marks episodes that are not terminated; an "
                             "episode that reaches a non-finite state ends there as terminated")
        steps = torch.arange(t, device=self.lengths.device).view(t, 1, 1)
        if not torch.equal(self.mask, (steps < self.lengths).to(self.mask)):
            raise ValueError(
                "Episodes.mask must be 1.0 for the first lengths[k, e] steps and 0.0 after; "
                f"it disagrees with lengths (min {int(self.lengths.min())}, "
                f"max {int(self.lengths.max())}, T={t})"
            )

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Episodes:
        """The same episodes with every tensor on ``device`` (one copy each; ``self`` where all
        are there already). ``non_blocking`` overlaps the copies from pinned memory."""
        device = torch.device(device)
        if all(getattr(self, f.name).device == device for f in fields(self)):
            return self
        return Episodes(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                           for f in fields(self)})

    @property
    def horizon(self) -> int:
        """T, the length of the time axis."""
        return self.rewards.shape[0]

    @property
    def num_tasks(self) -> int:
        """K."""
        return self.rewards.shape[1]

    @property
    def episodes_per_task(self) -> int:
        """E."""
        return self.rewards.shape[2]

    @property
    def num_steps(self) -> int:
        """Valid environment steps in the batch (the sum of ``lengths``)."""
        return int(self.lengths.sum())

    def non_finite_actions(self) -> Tensor:
        """``[K, E]`` bool: the episodes in which the policy took a non-finite action (at a
        valid step; masked steps hold zeros)."""
        return ~torch.isfinite(self.actions).all(dim=-1).all(dim=0)

    def returns_per_task(self) -> Tensor:
        """Mean undiscounted episode return of each task ``[K]``: ``mean_e Σ_t m_t r_t`` over
        its episodes (not its empty slots; NaN for a task with none)."""
        returns = torch.where(self.mask != 0, self.rewards, 0.0).sum(0)
        return returns.sum(-1) / (self.lengths > 0).sum(-1).to(returns)


def concat_episodes(batches: Sequence[Episodes]) -> Episodes:
    """The episodes of several batches of the same tasks and horizon, side by side: batch b's
    episode e of task k becomes episode ``b * E + e`` (with E per batch)."""
    per_episode = ("lengths", "terminated", "non_finite")  # [K, E]; the others [T, K, E, ...]
    return Episodes(**{f.name: torch.cat([getattr(b, f.name) for b in batches],
                                         dim=1 if f.name in per_episode else 2)
                       for f in fields(Episodes)})


def keep_episodes(episodes: Episodes, keep: Tensor) -> Episodes:
    """``episodes`` with the episodes where ``keep [K, E]`` is False emptied (length 0)."""
    if keep.shape != episodes.lengths.shape or keep.dtype != torch.bool:
        raise ValueError(f"keep must be a bool tensor of shape {tuple(episodes.lengths.shape)}, "
                         f"got {keep.dtype} {tuple(keep.shape)}")
    lengths = torch.where(keep, episodes.lengths, torch.zeros_like(episodes.lengths))
    steps = torch.arange(episodes.horizon, device=lengths.device).view(-1, 1, 1)
    return replace(episodes, lengths=lengths, mask=(steps < lengths).to(episodes.mask),
                   terminated=episodes.terminated & keep, non_finite=episodes.non_finite & keep)
