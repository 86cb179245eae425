"""The options of a meta-RL run (MAML-TRPO: docs/protocol.md; ProMP), with their defaults and
valid ranges.

The per-environment defaults of the papers live in ``experiments/{algo}/{env}.yaml``.
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

#: How MAMLTRPO computes the KL's curvature products (``curvature``; ``metarl.rl.maml_trpo``).
CURVATURES = ("gauss_newton", "exact")


@dataclass
class MetaRLConfig:
    """The options every meta-RL run shares: the task family, the batches, the inner step, the
    returns, the policy, the sampler and the run. Each algorithm's config adds its outer step's
    options (``MAMLTRPOConfig``, ``PROMPConfig``); ``num_steps: 0`` trains the outer step alone
    on all tasks jointly (multi-task TRPO: the "pretrained" baseline).

    Constructed directly, a config holds the built-in defaults only: not the shipped
    ``experiments/{algo}/{env}.yaml`` of its env (``MAMLTRPOConfig(env="navigation_2d")``
    acts without ``normalize_actions``, where the command line's run normalises), and it is not
    validated. ``metarl.experiment.make_config("maml_trpo", env=...)`` builds the config the
    command line would, from the same layers, validated.
    """

    env: str = option("navigation_2d", "task family: a short name (navigation_2d, "
                      "cheetah_vel, cheetah_dir, ant_vel, ant_dir, ant_goal), a Gymnasium id, "
                      f"or package.module:Class; NAME{ORACLE_SUFFIX} is NAME's oracle (the "
                      "policy also observes the task)")
    env_options: dict[str, Any] = option({}, "an option of the env's constructor, repeatable; "
                                         "MuJoCo families: frame_skip, timestep, clock=paper "
                                         "(the MAML paper's control step) and contacts=rllab "
                                         "(docs/tasks.md)", flag="--env-option")
    num_batches: int = option(500, "meta-iterations", minimum=0, exclusive_minimum=False)
    meta_batch_size: int = option(20, "tasks per meta-iteration", minimum=0)
    fast_batch_size: int = option(20, "episodes per task, before and after adaptation", minimum=0)
    num_steps: int = option(1, "inner VPG steps (0: no adaptation, the outer step alone on all "
                            "tasks jointly)",
                            minimum=0, exclusive_minimum=False)
    fast_lr: float = option(0.1, "inner-loop learning rate (alpha)", minimum=0.0)
    first_order: bool = option(False, "first-order MAML: do not differentiate the inner update")
    gamma: float = option(0.99, "discount factor, in [0, 1]", minimum=0.0, exclusive_minimum=False,
                          maximum=1.0)
    gae_lambda: float = option(1.0, "GAE lambda, in [0, 1]", minimum=0.0, exclusive_minimum=False,
                               maximum=1.0)
    hidden_sizes: tuple[int, ...] = option((64, 64), "policy hidden layer sizes (paper: 100 100)",
                                           minimum=0)
    nonlinearity: str = option("tanh", "policy hidden activation (paper: relu)",
                               choices=("tanh", "relu"))
    init_std: float = option(1.0, "initial standard deviation of the policy's actions (rllab's "
                             "init_std); a smaller one keeps early exploration from ending "
                             "episodes at a termination bound (the ant's healthy height)",
                             minimum=0.0)
    init_mean_scale: float = option(1.0, "factor on the policy's initial output-layer weights "
                                    "(1: Xavier, as rllab); 0.01 starts the mean near 0, so the "
                                    "first actions are N(0, init_std^2) noise",
                                    minimum=0.0, exclusive_minimum=False)
    normalize_actions: bool = option(False, "policy acts in [-1, 1], mapped onto the env's "
                                     "action bounds (rllab's normalize, as in the MAML paper)")
    sampler: str = sampling_option("sampler")
    num_workers: int = sampling_option("num_workers")
    ray_address: str = sampling_option("ray_address")
    ray_actors: int = sampling_option("ray_actors")
    ray_cpus_per_actor: float = sampling_option("ray_cpus_per_actor")
    ray_retries: int = sampling_option("ray_retries")
    torch_threads: int = option(0, "PyTorch threads of the learner process (0: PyTorch's "
                                "default, one per core, fastest on a quiet machine); use 1 on a "
                                "machine busy with other jobs (measurements: docs/results.md, "
                                "Performance)", minimum=0, exclusive_minimum=False,
                                maximum=THREADS_MAX)
    device: str = device_option("cpu", "; the policy, adaptation and the outer step run there "
                                "(" + RESUME_NOTE + ")")
    checkpoint_every: int = option(10, "iterations between checkpoints (one is always written at "
                                   "the end)", minimum=0)
    seed: int = seed_option(0, "random seed (initialisation, tasks, episodes)")
    output_dir: str = option("runs", "folder in which run directories are created")

    def check(self) -> None:
        """Rules across fields: ``sampler: ray`` needs Ray installed."""
        check_sampler(self)

    def unused_ray_settings(self) -> list[str]:
        """The Ray sampler's settings given away from their defaults while the local sampler
        samples (``sampling_options.unused_ray_settings``)."""
        return unused_ray_settings(self)

    @property
    def task(self) -> str:
        """The run-directory name component (``{algo}__{env}__{seed}__{time}``)."""
        return self.env.replace("/", "-").replace(":", "-")


@dataclass
class MAMLTRPOConfig(MetaRLConfig):
    """MAML-TRPO (docs/protocol.md): the shared options and TRPO's. ``num_steps: 0`` trains
    plain multi-task TRPO (the "pretrained" baseline)."""

    max_kl: float = option(0.01, "TRPO trust region: mean KL bound (delta)", minimum=0.0)
    cg_iters: int = option(10, "conjugate-gradient iterations", minimum=0)
    cg_damping: float = option(1e-5, "damping added to the curvature products", minimum=0.0,
                               exclusive_minimum=False)
    ls_max_steps: int = option(15, "line-search backtracking steps", minimum=0)
    ls_backtrack_ratio: float = option(0.8, "line-search step shrink factor, in (0, 1)",
                                       minimum=0.0, maximum=1.0, exclusive_maximum=True)
    curvature: str = option("gauss_newton", "KL curvature products: gauss_newton (exact at the "
                            "current point, cheaper) or exact (double backprop)", choices=CURVATURES)
    hvp_subsample: float = option(0.2, "fraction of each task's episodes used for the curvature "
                                  "products, in (0, 1] (1.0: all; the line search always checks "
                                  "all of them)", minimum=0.0, maximum=1.0)


@dataclass
class PROMPConfig(MetaRLConfig):
    """ProMP (Rothfuss et al., ICLR 2019; ``metarl.rl.promp``): the shared options and those of
    its outer step, several Adam steps on a clipped surrogate with a KL penalty. Defaults: the
    authors' released run scripts (``experiments/promp/{env}.yaml`` says which)."""

    num_outer_steps: int = option(5, "outer Adam steps on each sampled meta-batch, the inner "
                                  "step recomputed from the pre-update episodes at each (the "
                                  "reference implementation's num_promp_steps)", minimum=0)
    outer_lr: float = option(1e-3, "outer Adam learning rate (beta)", minimum=0.0)
    clip_eps: float = option(0.3, "clipping range epsilon of the outer likelihood ratio, in "
                             "(0, 1): the ratio counts within [1 - eps, 1 + eps]", minimum=0.0,
                             maximum=1.0, exclusive_maximum=True)
    init_kl_coef: float = option(5e-4, "KL penalty coefficient eta on KL(pi_old || pi_theta) "
                                 "over the pre-update episodes (its starting value with "
                                 "--adaptive-kl; 0: no penalty)", minimum=0.0,
                                 exclusive_minimum=False)
    adaptive_kl: bool = option(False, "adapt eta after each meta-iteration: halve it when the "
                               "KL is below target_inner_kl / 1.5, double it above "
                               "target_inner_kl * 1.5 (PPO's rule)")
    target_inner_kl: float = option(0.01, "the KL the adaptive penalty aims at (with "
                                    "--adaptive-kl)", minimum=0.0)

    def check(self) -> None:
        """Rules across fields: those of every meta-RL run, and an adaptive penalty that can
        move (halving or doubling 0 leaves 0)."""
        super().check()
        if self.adaptive_kl and self.init_kl_coef == 0:
            raise ConfigError("adaptive_kl=True needs init_kl_coef > 0 (halving or doubling a "
                              "coefficient of 0 leaves it 0); give --init-kl-coef X or "
                              "--no-adaptive-kl")


#: Config keys a checkpoint must agree on to be loaded into a policy (the env it acts in, with
#: its options, and the policy's shape).
ARCHITECTURE_KEYS = ("env", "env_options", "hidden_sizes", "nonlinearity", "normalize_actions")


def task_family(config: MetaRLConfig) -> TaskFamily:
    """The run's task family, ``config.env`` with ``config.env_options`` bound: what every
    sampler, probe and evaluation of the run builds its envs from (``EnvOptionError`` for an
    option the family does not take)."""
    return resolve(config.env).with_options(**config.env_options)
