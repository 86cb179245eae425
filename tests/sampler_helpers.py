"""What the tests of the sharded samplers share: policies' parameters, an identity check, a
check that processes are gone, and slow or failing line families (importable by sampler workers
and Ray actors as ``sampler_helpers:ClassName``, ``tests/`` being on ``sys.path``)."""

import time
from dataclasses import fields
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from metarl.core.maml import stack_params
from metarl.rl.episodes import Episodes
from metarl.rl.policy import GaussianMLPPolicy
from metarl.rl.sampler import PolicySpec


class SlowLine(gym.Env):
    """A point on a line that never arrives; each step sleeps (time to kill or interrupt it)."""

    horizon = 100
    step_seconds = 0.02

    def __init__(self, task: dict | None = None):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.task = task or {"target": 0.0}
        self._x = 0.0

    def sample_tasks(self, n: int) -> list[dict]:
        return [{"target": float(t)} for t in self.np_random.uniform(-1, 1, size=n)]

    def set_task(self, task: dict) -> None:
        self.task = dict(task)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._x = 0.0
        return np.array([self._x]), {}

    def step(self, action):
        time.sleep(self.step_seconds)
        self._x += 1e-3 * float(action[0])
        return np.array([self._x]), -abs(self._x - self.task["target"]), False, False, {}


class BriefSlowLine(SlowLine):
    """SlowLine at half the time per step: a 1 s episode, still long enough to be killed in."""

    step_seconds = 0.01


class FailingLine(SlowLine):
    """Raises at its fourth step when its target is positive."""

    step_seconds = 0.0

    def step(self, action):
        self._steps = getattr(self, "_steps", 0) + 1
        if self._steps > 3 and self.task["target"] > 0:
            raise ValueError(f"boom at step {self._steps} for target {self.task['target']}")
        return super().step(action)


def params_for(spec: PolicySpec, num_tasks: int | None = None) -> dict:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(spec.obs_size, spec.act_size, spec.hidden_sizes)
    params = {name: p.detach() for name, p in policy.named_parameters()}
    if num_tasks is None:
        return params
    return {name: (p + 0.1 * torch.randn_like(p)).contiguous()
            for name, p in stack_params(params, num_tasks).items()}


def assert_identical(a: Episodes, b: Episodes) -> None:
    for f in fields(Episodes):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name


def assert_gone(pids: list[int], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    for pid in pids:
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, f"worker {pid} still exists"
            time.sleep(0.02)
