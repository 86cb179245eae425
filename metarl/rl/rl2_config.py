"""The options of an RL² run (Duan et al. 2016, trained with PPO, Schulman et al. 2017), with
their defaults and valid ranges.

The per-environment defaults live in ``experiments/rl2/{env}.yaml``: each spends per
meta-iteration the env steps MAML-TRPO's YAML spends (``trials_per_task x episodes_per_trial =
2 x fast_batch_size`` episodes per task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metarl.config import THREADS_MAX, ConfigError, option, seed_option
from metarl.device import RESUME_NOTE, device_option
from metarl.envs.family import TaskFamily
from metarl.envs.oracle import ORACLE_SUFFIX
from metarl.envs.registry import resolve
from metarl.rl.sampling_options import check_sampler, sampling_option, unused_ray_settings


@dataclass
class RL2Config:
    """RL²: a GRU policy meta-trained with PPO on trials of several episodes of one task."""

    env: str = option("navigation_2d", "task family: a short name (navigation_2d, "
                      "cheetah_vel, cheetah_dir, ant_vel, ant_dir, ant_goal), a Gymnasium id, "
                      f"or package.module:Class; NAME{ORACLE_SUFFIX} is NAME's oracle")
    env_options: dict[str, Any] = option({}, "an option of the env's constructor, repeatable "
                                         "(docs/tasks.md)", flag="--env-option")
    num_batches: int = option(500, "meta-iterations", minimum=0, exclusive_minimum=False)
    meta_batch_size: int = option(20, "tasks per meta-iteration", minimum=0)
    trials_per_task: int = option(20, "trials sampled per task and meta-iteration", minimum=0)
    episodes_per_trial: int = option(2, "episodes of one task in a trial, the policy's GRU "
                                     "state carried across them", minimum=0)
    hidden_size: int = option(64, "GRU state size (the RL2 paper: 256)", minimum=0)
    init_std: float = option(1.0, "initial standard deviation of the policy's actions",
                             minimum=0.0)
    init_mean_scale: float = option(1.0, "factor on the mean layer's initial weights (0.01 "
                                    "starts the mean near 0)", minimum=0.0,
                                    exclusive_minimum=False)
    normalize_actions: bool = option(False, "policy acts in [-1, 1], mapped onto the env's "
                                     "action bounds (rllab's normalize)")
    lr: float = option(3e-4, "Adam learning rate", minimum=0.0)
    ppo_epochs: int = option(5, "passes of Adam over each meta-iteration's trials", minimum=0)
    num_minibatches: int = option(4, "minibatches of trials per pass (each trial whole)",
                                  minimum=0)
    clip_eps: float = option(0.2, "PPO clipping range epsilon, in (0, 1)", minimum=0.0,
                             maximum=1.0, exclusive_maximum=True)
    gamma: float = option(0.99, "discount factor, in [0, 1]", minimum=0.0,
                          exclusive_minimum=False, maximum=1.0)
    gae_lambda: float = option(0.95, "GAE lambda over the whole trial, in [0, 1]", minimum=0.0,
                               exclusive_minimum=False, maximum=1.0)
    value_coef: float = option(0.5, "weight of the value head's squared error in the loss",
                               minimum=0.0, exclusive_minimum=False)
    normalize_values: bool = option(True, "the value head predicts the return standardised by "
                                    "the batch's mean and std of value targets (PopArt), so the "
                                    "value loss does not drown the policy's gradient")
    entropy_coef: float = option(0.0, "weight of the entropy bonus", minimum=0.0,
                                 exclusive_minimum=False)
    max_grad_norm: float = option(0.5, "clip the gradient's norm to this (0: no clipping)",
                                  minimum=0.0, exclusive_minimum=False)
    sampler: str = sampling_option("sampler")
    num_workers: int = sampling_option("num_workers")
    ray_address: str = sampling_option("ray_address")
    ray_actors: int = sampling_option("ray_actors")
    ray_cpus_per_actor: float = sampling_option("ray_cpus_per_actor")
    ray_retries: int = sampling_option("ray_retries")
    torch_threads: int = option(0, "PyTorch threads of the learner (0: PyTorch's default, one "
                                "per core); use 1 on a machine busy with other jobs", minimum=0,
                                exclusive_minimum=False, maximum=THREADS_MAX)
    device: str = device_option("cpu", "; the PPO update runs there, sampling on the CPU ("
                                + RESUME_NOTE + ")")
    checkpoint_every: int = option(10, "iterations between checkpoints (one is always written at "
                                   "the end)", minimum=0)
    seed: int = seed_option(0, "random seed (initialisation, tasks, trials, minibatches)")
    output_dir: str = option("runs", "folder in which run directories are created")

    def check(self) -> None:
        """Rules across fields: every minibatch holds at least one trial; ``sampler: ray``
        needs Ray installed."""
        check_sampler(self)
        trials = self.meta_batch_size * self.trials_per_task
        if self.num_minibatches > trials:
            raise ConfigError(f"num_minibatches={self.num_minibatches} is more than the "
                              f"{trials} trials of a meta-iteration (meta_batch_size x "
                              f"trials_per_task); choose at most {trials}")

    def unused_ray_settings(self) -> list[str]:
        """The Ray sampler's settings given away from their defaults while the local sampler
        samples (``sampling_options.unused_ray_settings``)."""
        return unused_ray_settings(self)

    @property
    def task(self) -> str:
        """The run-directory name component (``{algo}__{env}__{seed}__{time}``)."""
        return self.env.replace("/", "-").replace(":", "-")


#: Config keys a checkpoint must agree on to be loaded into a policy.
ARCHITECTURE_KEYS = ("env", "env_options", "hidden_size", "normalize_actions")


def task_family(config: RL2Config) -> TaskFamily:
    """The run's task family with its env options bound."""
    return resolve(config.env).with_options(**config.env_options)
