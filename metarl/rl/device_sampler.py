"""A sampler for a learner on another device: sampling stays on the CPU, episodes go to the
learner's device.

The samplers (``metarl.rl.sampler``, ``metarl.rl.workers``) step environments on the CPU and
take CPU float32 parameters. :class:`DeviceSampler` wraps one with the same interface,
``sample(tasks, params, seed) -> Episodes``, ``close()`` and the context-manager methods: it
copies the parameters (shared ``{name: [...]}`` or task-stacked ``{name: [K, ...]}``, detached)
to the CPU once per call and moves the episodes to the learner's device with one copy per tensor,
non-blocking on CUDA. The episodes are those the wrapped sampler draws, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from metarl.rl.episodes import Episodes


class DeviceSampler:
    """``sampler``'s episodes, on ``device``, from parameters on any device."""

    def __init__(self, sampler: Any, device: torch.device):
        self.sampler = sampler
        self.device = torch.device(device)

    @property
    def horizon(self) -> int:
        """The wrapped sampler's episode length T."""
        return self.sampler.horizon

    @property
    def episodes_per_task(self) -> int:
        """The wrapped sampler's E."""
        return self.sampler.episodes_per_task

    def sample(self, tasks: Sequence[dict], params: Mapping[str, Tensor], seed: int) -> Episodes:
        """The wrapped sampler's episodes of ``tasks`` under ``params`` (CPU float32 copies),
        on this sampler's device."""
        on_cpu = {name: p.detach().to("cpu", torch.float32) for name, p in params.items()}
        episodes = self.sampler.sample(tasks, on_cpu, seed=seed)
        return episodes.to(self.device, non_blocking=self.device.type == "cuda")

    def close(self) -> None:
        self.sampler.close()

    def __enter__(self) -> DeviceSampler:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def on_device(sampler: Any, device: torch.device) -> Any:
    """``sampler`` itself for a learner on the CPU, else a :class:`DeviceSampler` for
    ``device``."""
    return sampler if torch.device(device).type == "cpu" else DeviceSampler(sampler, device)
