"""Batched RL² trials: J episodes of one task in a row, the policy's GRU state carried across them.

A *trial* (Duan et al. 2016, "RL²", §2) is ``J = episodes_per_trial`` consecutive episodes of one
task; the policy's hidden state starts at 0 with the trial and persists across its episode
boundaries, so what it learnt in episode j shapes how it acts in episode j + 1. One call of
:meth:`TrialSampler.sample` runs ``M = trials_per_task`` trials of each of K tasks together, one
row per trial (row ``k·M + m`` is trial m of task k), in lock-step::

    h = 0 [K·M, hidden];  a_prev, r_prev, d_prev = 0
    for j in 0 .. J-1:                                  (episode slot j of every trial)
        o = env.reset(seeds of episode j)               every instance, the state h kept
        for s in 0 .. H-1:                              (t = j·H + s; H = the env's horizon)
            x_t = [o, a_prev, r_prev, d_prev]
            h   = GRU(x_t, h)                           one call for all K·M rows
            a_t = μ(h) + σ ε_t;  V_t = V(h)
            o, r_t, ... = env.step(clip(a_t))           one batched env step
            a_prev, r_prev, d_prev = a_t, r_t, [the episode ended at t]

Layout: time-major ``[T, K, M, ...]`` with ``T = J·H``: episode j of a trial occupies the slot
``j·H .. (j+1)·H - 1``, and an episode of length L < H (terminated early) leaves the rest of its
slot masked (``mask`` 0, zeros in every array); a row whose episode has ended is not stepped
and its GRU state is held (as by ``GRUGaussianPolicy.step``'s ``alive``) until the next slot
starts.
Fixed slots keep every row at the same time index, so the env resets all instances at once and
the whole batch steps together; the masked gaps carry nothing, so the trial seen by the policy
is its episodes back to back.

Per step the sampler calls the kernels of the policy's ``step`` and ``heads`` directly (one
``torch.gru_cell``, two ``linear``), writes into buffers allocated once per call (the input
``x_t`` into one carried ``[K·M, input]`` buffer), and restores a held row's state by index
rather than masking every row: the same numbers as the policy's own methods, with less
Python per step, which is most of a step's cost where the env's is small (navigation_2d).

Seeding, as :mod:`metarl.rl.sampler`'s: task k (``task_offset + k``) draws reset seeds and action
noise from ``episode_seeds(seed, k, M·J, H, act)``; episode j of trial m takes entry ``m·J + j``.
A trial therefore depends only on ``(seed, task index, m)`` and the policy, however the tasks are
split: :mod:`metarl.rl.trial_shards` samples them over worker processes or Ray actors, with the
same seeds and tasks. The policy steps all of a sampler's rows in one ``GRUCell`` call, whose
kernels round differently for different row counts, so a sharded sample equals the in-process
one to float32 rounding of the policy, not bit for bit (a run resumed with another
``--num-workers`` continues on a path that differs in the last bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from metarl import envs
from metarl.config import ConfigError
from metarl.envs.base import non_finite_output_error, storable, usable_cores
from metarl.envs.registry import NotATaskFamilyError, TaskFamily
from metarl.nonfinite import require_finite
from metarl.rl.policy import HALF_LOG_2PI
from metarl.rl.recurrent_policy import GRUGaussianPolicy
from metarl.rl.sampler import episode_seeds


@dataclass
class Trials:
    """M trials of each of K tasks, J episodes of horizon H each: ``T = J·H`` steps.

    Attributes:
        inputs: ``[T, K, M, obs + act + 2]`` the policy's input ``[o_t, a_{t-1}, r_{t-1},
            d_{t-1}]`` at each step (``recurrent_policy.policy_inputs``).
        actions: ``[T, K, M, act]`` the action sampled (unclipped).
        rewards: ``[T, K, M]``.
        log_probs: ``[T, K, M]`` log-probability of the action under the sampling policy.
        values: ``[T, K, M]`` the value head's estimate at each step (for GAE).
        mask: ``[T, K, M]`` float, 1.0 at the steps an episode took, 0.0 in the rest of a slot.
        lengths: ``[J, K, M]`` int64, the length of episode j of each trial (at most H).
        terminated: ``[J, K, M]`` bool, episode ended by termination (not the horizon).
        non_finite: ``[J, K, M]`` bool, episode ended at a state the env flagged non-finite.
        hidden: ``[T, K, M, hidden]`` the GRU state after each step (held through masked
            steps), or None where the sampler was not asked to keep it.
    """

    inputs: Tensor
    actions: Tensor
    rewards: Tensor
    log_probs: Tensor
    values: Tensor
    mask: Tensor
    lengths: Tensor
    terminated: Tensor
    non_finite: Tensor
    hidden: Tensor | None = field(default=None)

    def __post_init__(self) -> None:
        if self.rewards.dim() != 3:
            raise ValueError(f"rewards must be [T, K, M], got {tuple(self.rewards.shape)}")
        t, k, m = self.rewards.shape
        if self.lengths.dim() != 3 or t % max(self.lengths.shape[0], 1):
            raise ValueError(f"lengths must be [J, K, M] with J dividing T={t}, got "
                             f"{tuple(self.lengths.shape)}")
        j = self.lengths.shape[0]
        expected = {"inputs": (t, k, m, None), "actions": (t, k, m, None),
                    "log_probs": (t, k, m), "values": (t, k, m), "mask": (t, k, m),
                    "lengths": (j, k, m), "terminated": (j, k, m), "non_finite": (j, k, m)}
        if self.hidden is not None:
            expected["hidden"] = (t, k, m, None)
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if len(actual) != len(shape) or any(s is not None and a != s
                                                for a, s in zip(actual, shape)):
                want = ", ".join("*" if s is None else str(s) for s in shape)
                raise ValueError(f"Trials.{name} has shape {actual}; with rewards [T={t}, K={k}, "
                                 f"M={m}] and J={j} episodes per trial it must be [{want}]")
        if not torch.equal(self.mask, slot_mask(self.lengths, t // j).to(self.mask)):
            raise ValueError("Trials.mask must be 1.0 for the first lengths[j] steps of each "
                             "episode slot and 0.0 after")

    @property
    def horizon(self) -> int:
        """H, the length of one episode slot."""
        return self.rewards.shape[0] // self.episodes_per_trial

    @property
    def episodes_per_trial(self) -> int:
        """J."""
        return self.lengths.shape[0]

    @property
    def num_tasks(self) -> int:
        """K."""
        return self.rewards.shape[1]

    @property
    def trials_per_task(self) -> int:
        """M."""
        return self.rewards.shape[2]

    @property
    def num_steps(self) -> int:
        """Env steps taken (the sum of ``lengths``)."""
        return int(self.lengths.sum())

    def episode_returns(self) -> Tensor:
        """Undiscounted return of each episode of each trial ``[J, K, M]``: ``Σ_s m r`` over its
        slot."""
        j, h = self.episodes_per_trial, self.horizon
        masked = torch.where(self.mask != 0, self.rewards, 0.0)
        return masked.reshape(j, h, *masked.shape[1:]).sum(1)

    def returns_per_episode(self) -> Tensor:
        """Mean return of episode j of the trials of each task ``[J, K]`` (the adaptation curve
        of a task: episode 0 knows nothing of it, later ones what the trial has shown)."""
        return self.episode_returns().mean(-1)

    def to(self, device: torch.device | str) -> Trials:
        """The same trials with every tensor on ``device``."""
        return Trials(**{f.name: None if getattr(self, f.name) is None
                         else getattr(self, f.name).to(device) for f in fields(self)})


def slot_mask(lengths: Tensor, horizon: int) -> Tensor:
    """``mask [J·H, *B]`` float from episode ``lengths [J, *B]`` (``B``: ``K, M``, or rows):
    step ``s`` of slot ``j`` is valid where ``s < lengths[j]``."""
    steps = torch.arange(horizon, device=lengths.device)
    steps = steps.view(1, horizon, *[1] * (lengths.dim() - 1))
    mask = (steps < lengths.unsqueeze(1)).to(torch.float32)  # [J, H, *B]
    return mask.reshape(-1, *lengths.shape[1:])


def action_map(family: TaskFamily, env: envs.BatchedTaskEnv, normalize_actions: bool
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(scale, offset)`` of the map [-1, 1] -> [low, high] of ``env``'s actions with
    ``normalize_actions`` (else ``(None, None)``); a ConfigError where the bounds are not
    finite."""
    if not normalize_actions:
        return None, None
    low, high = np.asarray(env.action_low), np.asarray(env.action_high)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ConfigError(f"normalize_actions=True needs finite action bounds, but "
                          f"{family.name} has low={low.tolist()}, high={high.tolist()}; use "
                          f"--no-normalize-actions")
    return (high - low) / 2.0, (high + low) / 2.0


class _StepKernels:
    """``GRUGaussianPolicy.step`` (without ``alive``) and the mean and value of ``.heads`` as the
    ATen calls those methods make (``torch.gru_cell``, ``linear``) on the policy's own
    parameters, without the module machinery around them (``__call__``, shape checks): the same
    kernels on the same rows, so the same bits, for less Python per step.
    ``tests/rl/test_rl2.py`` holds the sampled states, actions and values to the policy's own
    methods bit for bit."""

    def __init__(self, policy: GRUGaussianPolicy):
        gru = policy.gru
        self._gru = (gru.weight_ih, gru.weight_hh, gru.bias_ih, gru.bias_hh)
        self._mean = (policy.mean.weight, policy.mean.bias)
        self._value = (policy.value.weight, policy.value.bias)

    def state(self, x: Tensor, h: Tensor) -> Tensor:
        """``h_t = GRU(x_t, h_{t-1})``: ``[N, input] x [N, hidden] -> [N, hidden]``."""
        return torch.gru_cell(x, h, *self._gru)

    def mean(self, h: Tensor) -> Tensor:
        """``μ = W_μ h + b_μ``: ``[N, hidden] -> [N, act]``."""
        return F.linear(h, *self._mean)

    def value(self, h: Tensor) -> Tensor:
        """``V = w_V · h + b_V``: ``[N, hidden] -> [N]``."""
        return F.linear(h, *self._value).squeeze(-1)


class _Workspace:
    """What one ``TrialSampler.sample`` call writes, allocated once per call: ``N = K·M`` rows,
    ``T = J·H`` steps.

    Copies into ``x`` and into the buffers go through numpy views of the same memory (less
    overhead per call than torch's; the same float64 -> float32 rounding).

    Attributes:
        buf: ``inputs [T, N, input]``, ``actions [T, N, act]`` (unclipped), ``rewards [T, N]``,
            ``values [T, N]``; ``log_probs [T, N]`` once ``_finish`` has run.
        hidden: ``[T, N, hidden]`` the GRU state after each step, or None (not kept).
        lengths, terminated, non_finite: ``[J, N]`` int64, bool, bool (as ``Trials``').
        inputs, actions, rewards, values: numpy views of ``buf``'s.
        x: ``[N, input]`` the policy's input ``x_t = [o_t | a_{t-1} | r_{t-1} | d_{t-1}]``, one
            buffer, the last three parts carried; ``x_np`` its numpy view, and ``x_obs [N, obs],
            x_action [N, act], x_reward [N], x_done [N]`` views of its parts.
        low, high: ``[N, act]`` the env's action bounds per row; scale, offset: ``[N, act]`` the
            map [-1, 1] -> [low, high] per row, or None (actions not normalised).
        scaled, clipped: ``[N, act]`` float64, the env's action as it is mapped and clipped.
        row_index: ``[N]`` ``0 .. N - 1``.
    """

    def __init__(self, sampler: TrialSampler, policy: GRUGaussianPolicy, keep_hidden: bool):
        rows, j, act, obs = (sampler.rows, sampler.episodes_per_trial, sampler.act_size,
                             sampler.obs_size)
        t_len = j * sampler.horizon
        self.buf = {"inputs": torch.zeros(t_len, rows, policy.input_size),
                    "actions": torch.zeros(t_len, rows, act),
                    "rewards": torch.zeros(t_len, rows), "values": torch.zeros(t_len, rows)}
        self.hidden = torch.zeros(t_len, rows, policy.hidden_size) if keep_hidden else None
        self.lengths = np.zeros((j, rows), dtype=np.int64)
        self.terminated = np.zeros((j, rows), dtype=bool)
        self.non_finite = np.zeros((j, rows), dtype=bool)
        self.x = torch.zeros(rows, policy.input_size)
        self.inputs, self.actions, self.rewards, self.values, self.x_np = (
            tensor.numpy() for tensor in (self.buf["inputs"], self.buf["actions"],
                                          self.buf["rewards"], self.buf["values"], self.x))
        self.x_obs, self.x_action = self.x_np[:, :obs], self.x_np[:, obs:obs + act]
        self.x_reward, self.x_done = self.x_np[:, obs + act], self.x_np[:, obs + act + 1]
        # the bounds (and the [-1, 1] map) per row: ufuncs over [K·M, act] arrays without
        # broadcasting run as one flat loop, not one short loop per row
        self.low, self.high = np.tile(sampler._low, (rows, 1)), np.tile(sampler._high, (rows, 1))
        self.scale = self.offset = None
        if sampler._scale is not None:
            self.scale = np.tile(sampler._scale, (rows, 1))
            self.offset = np.tile(sampler._offset, (rows, 1))
        self.scaled, self.clipped = np.empty((rows, act)), np.empty((rows, act))  # float64
        self.row_index = np.arange(rows)


class TrialSampler:
    """Samples ``trials_per_task`` trials of ``episodes_per_trial`` episodes on each of
    ``num_tasks`` tasks in this process.

    Args:
        env: task family name (``metarl.envs.registry.resolve``) or a resolved ``TaskFamily``.
        num_tasks: K, tasks per ``sample`` call.
        trials_per_task: M.
        episodes_per_trial: J.
        normalize_actions: the policy acts in [-1, 1], mapped affinely onto the env's bounds
            before clipping (as ``PolicySpec.normalize_actions``).
        num_threads: physics threads of the batched env (None: the usable cores).
        task_offset: index of the first task in the meta-batch (for seeding).
    """

    def __init__(self, env: str | TaskFamily, *, num_tasks: int, trials_per_task: int,
                 episodes_per_trial: int, normalize_actions: bool = False,
                 num_threads: int | None = None, task_offset: int = 0):
        for name, value in (("num_tasks", num_tasks), ("trials_per_task", trials_per_task),
                            ("episodes_per_trial", episodes_per_trial)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.family = env if isinstance(env, TaskFamily) else envs.resolve(env)
        self.num_tasks, self.trials_per_task = int(num_tasks), int(trials_per_task)
        self.episodes_per_trial, self.task_offset = int(episodes_per_trial), int(task_offset)
        num_threads = usable_cores() if num_threads is None else int(num_threads)
        self._env: envs.BatchedTaskEnv | None = self.family.make_batched(
            self.num_tasks * self.trials_per_task, num_threads=num_threads)
        env = self._env
        self.obs_size, self.act_size = int(env.observation_size), int(env.action_size)
        self.horizon = int(env.horizon)
        self._low, self._high = np.asarray(env.action_low), np.asarray(env.action_high)
        try:
            self._scale, self._offset = action_map(self.family, env, normalize_actions)
        except ConfigError:
            self.close()
            raise

    @property
    def rows(self) -> int:
        """K·M, the trials stepped together."""
        return self.num_tasks * self.trials_per_task

    def sample(self, tasks: Sequence[dict], policy: GRUGaussianPolicy, seed: int, *,
               keep_hidden: bool = False) -> Trials:
        """Run M trials of every task with ``policy`` (on the CPU); see the module docstring.

        ``keep_hidden``: also return the GRU state after every step (``Trials.hidden``)."""
        if self._env is None:
            raise RuntimeError("TrialSampler.sample() after close()")
        tasks = list(tasks)
        if len(tasks) != self.num_tasks:
            raise ValueError(f"sampler was built for {self.num_tasks} tasks, got {len(tasks)}")
        if (policy.obs_size, policy.act_size) != (self.obs_size, self.act_size):
            raise NotATaskFamilyError(
                f"{self.family.name}'s batched env has observations of size {self.obs_size} and "
                f"actions of size {self.act_size}; the policy takes {policy.obs_size} and "
                f"{policy.act_size}")
        require_finite(dict(policy.named_parameters()), "the policy to sample with")
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small ops; a second thread only competes with the physics
        try:
            with torch.no_grad():
                return self._sample(tasks, policy, seed, keep_hidden)
        finally:
            torch.set_num_threads(threads)

    def _sample(self, tasks: list[dict], policy: GRUGaussianPolicy, seed: int,
                keep_hidden: bool) -> Trials:
        """``sample``'s work (under ``no_grad``, on one thread): every episode slot in turn
        (``_episode``), then ``_finish``."""
        seeds, noise = self._seeds(seed)
        kernels = _StepKernels(policy)
        step_noise = (policy.log_std.exp() * noise).numpy()  # σ ε_t [T, K·M, act]
        work = _Workspace(self, policy, keep_hidden)
        h = policy.initial_state(self.rows)
        self._env.set_tasks([task for task in tasks for _ in range(self.trials_per_task)])
        for slot in range(self.episodes_per_trial):
            h = self._episode(slot, seeds[:, slot], h, kernels, step_noise, work)
        return self._finish(work, noise, policy)

    def _episode(self, slot: int, seeds: np.ndarray, h: Tensor, kernels: _StepKernels,
                 step_noise: np.ndarray, work: _Workspace) -> Tensor:
        """Episode slot ``slot`` of every trial: reset every instance with ``seeds [K·M]``, step
        it (``_steps``) and carry each trial's last step into its next input; returns the GRU
        state ``h [K·M, hidden]`` after it."""
        obs = self._env.reset(seeds.tolist())
        if not storable(obs).all():
            raise non_finite_output_error(self.family.name, "reset",
                                          int((~storable(obs).all(1)).sum()), self.rows)
        h = self._steps(slot, obs, h, kernels, step_noise, work)
        # each trial's next input: its episode's last step, which ended it
        last = slot * self.horizon + work.lengths[slot] - 1
        work.x_action[...] = work.actions[last, work.row_index]
        work.x_reward[...] = work.rewards[last, work.row_index]
        work.x_done[...] = 1.0
        return h

    def _steps(self, slot: int, obs: np.ndarray, h: Tensor, kernels: _StepKernels,
               step_noise: np.ndarray, work: _Workspace) -> Tensor:
        """The steps ``t = slot·H .. slot·H + H - 1`` of every row from its reset ``obs [K·M,
        obs]``, until the horizon or every episode has ended, written into ``work``; returns
        ``h [K·M, hidden]`` after the last. What the loop touches is bound to local names
        here, once per slot: no attribute look-ups per step."""
        env_step, checked, h_len = self._env.step, self._checked, self.horizon
        state, mean, value = kernels.state, kernels.mean, kernels.value
        x, x_np, x_obs, x_action, x_reward, x_done = (work.x, work.x_np, work.x_obs,
                                                      work.x_action, work.x_reward, work.x_done)
        inputs, actions, rewards, values, hidden = (work.inputs, work.actions, work.rewards,
                                                     work.values, work.hidden)
        low, high, scale, offset, scaled, clipped = (work.low, work.high, work.scale,
                                                     work.offset, work.scaled, work.clipped)
        # this slot's rows of the [J, K·M] arrays
        lengths, terminated, non_finite = (work.lengths[slot], work.terminated[slot],
                                           work.non_finite[slot])
        alive = np.ones(len(obs), dtype=bool)
        held = None  # the rows whose episode has ended (their state held); None before
        for s in range(h_len):
            t = slot * h_len + s
            x_obs[...] = obs
            inputs[t] = x_np  # masked steps are zeroed at the end
            new = state(x, h)
            if held is not None:  # as torch.where(alive, new, h), for fewer rows
                new.index_copy_(0, held, h.index_select(0, held))
            h = new
            a = np.add(mean(h).numpy(), step_noise[t], out=actions[t])  # μ + σε
            values[t] = value(h).numpy()
            if hidden is not None:
                hidden[t] = h
            env_action = a  # float32; the ufuncs below compute in float64
            if scale is not None:  # [-1, 1] -> [low, high]
                env_action = np.multiply(env_action, scale, out=scaled)
                env_action += offset
            # np.clip(env_action, low, high) without its Python wrapper
            np.minimum(np.maximum(env_action, low, out=clipped), high, out=clipped)
            obs, reward, term, trunc, info = env_step(clipped)
            obs, reward, flagged = checked(obs, reward, info, alive, clipped, s)
            rewards[t] = reward
            ended = term if flagged is None else term | flagged
            done = ended | trunc
            # a_t, r_t, d_t into the next input, for every row: a row whose episode has
            # ended gets its last step's back in _episode, before it is stepped again
            x_action[...] = a
            x_reward[...] = rewards[t]
            x_done[...] = done
            lengths += alive
            if done.any():
                terminated |= alive & ended
                if flagged is not None:
                    non_finite |= flagged
                alive &= ~done
                if not alive.any():
                    if hidden is not None:
                        hidden[t + 1:(slot + 1) * h_len] = h
                    break
                held = torch.from_numpy(np.flatnonzero(~alive))
        return h

    def _finish(self, work: _Workspace, noise: Tensor, policy: GRUGaussianPolicy) -> Trials:
        """The sampled ``work`` as ``Trials``: the log-probabilities from the noise ``ε [T,
        K·M, act]``, and zeros at the masked steps."""
        # log π(a|·) with a = μ + σε:  -½ Σ_d ε_d² - Σ_d log σ_d - (act/2) log 2π
        work.buf["log_probs"] = (-0.5 * noise.square().sum(-1)
                                 - (policy.log_std.sum() + self.act_size * HALF_LOG_2PI))
        lengths = torch.from_numpy(work.lengths)
        # zeros at the masked steps, written by index: few where most episodes run the horizon
        steps_masked = (slot_mask(lengths, self.horizon) == 0).nonzero(as_tuple=True)  # (t, row)
        for x_buf in work.buf.values():
            x_buf[steps_masked] = 0.0
        return self._trials(work.buf, work.hidden, lengths, work.terminated, work.non_finite)

    def _seeds(self, seed: int) -> tuple[np.ndarray, Tensor]:
        """Reset seeds ``[K·M, J]`` and action noise ``ε [T, K·M, act]`` (float32)."""
        k, m, j, h_len, act = (self.num_tasks, self.trials_per_task, self.episodes_per_trial,
                               self.horizon, self.act_size)
        seeds = np.empty((k, m * j), dtype=np.int64)
        noise = np.empty((k, m * j, h_len, act), dtype=np.float32)
        for task in range(k):  # once per call, not per step
            reset, noise[task] = episode_seeds(seed, self.task_offset + task, m * j, h_len, act)
            seeds[task] = reset
        # episode m·J + j of a task is episode j of its trial m
        noise = noise.reshape(k * m, j * h_len, act).transpose(1, 0, 2)
        return seeds.reshape(k * m, j), torch.from_numpy(np.ascontiguousarray(noise))

    def _checked(self, obs: np.ndarray, reward: np.ndarray, info: dict, alive: np.ndarray,
                 clipped: np.ndarray, s: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``(obs, reward, flagged)``: a state the env flagged non-finite (or NaN/inf it
        returned there) zeroed and flagged (``flagged`` None where there was none); NaN/inf
        after a finite action the env did not flag is the family's fault
        (``NotATaskFamilyError``), as in ``BatchedSampler``."""
        declared = np.asarray(info.get("non_finite", False))
        if storable(reward).all() and storable(obs).all() and not declared.any():
            return obs, reward, None
        declared = np.broadcast_to(declared, alive.shape)
        bad = ~(storable(reward) & storable(obs).all(axis=1))
        undeclared = alive & bad & ~declared & np.isfinite(clipped).all(axis=1)
        if undeclared.any():
            raise non_finite_output_error(self.family.name, "step", int(undeclared.sum()),
                                          len(alive), at=np.array([s + 1]))
        flagged = declared | bad
        return (np.where(flagged[:, None], 0.0, obs), np.where(flagged, 0.0, reward),
                alive & flagged)

    def _trials(self, buf: dict[str, Tensor], hidden: Tensor | None, lengths: Tensor,
                terminated: np.ndarray, non_finite: np.ndarray) -> Trials:
        k, m = self.num_tasks, self.trials_per_task

        def split(x: Tensor) -> Tensor:  # [T or J, K·M, ...] -> [T or J, K, M, ...]
            return x.reshape(x.shape[0], k, m, *x.shape[2:])

        lengths_t = split(lengths)
        return Trials(**{name: split(x) for name, x in buf.items()},
                      mask=slot_mask(lengths_t, self.horizon), lengths=lengths_t,
                      terminated=split(torch.from_numpy(terminated)),
                      non_finite=split(torch.from_numpy(non_finite)),
                      hidden=None if hidden is None else split(hidden))

    def close(self) -> None:
        """Release the batched env (idempotent)."""
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self) -> TrialSampler:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
