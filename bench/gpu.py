"""The learner on a device (``--device``): Omniglot's batched meta-step against a per-task loop,
and one cheetah_vel MAML-TRPO step.

    python bench/gpu.py [--device auto] [--part both] [--rounds 3] [--threads 1]
        [--data-dir data/omniglot] [--meta-batch-size 32] [--tasks 40]
        [--episodes 20]

(a) Omniglot 5-way 1-shot, second order (one inner step of lr 0.4), ``--meta-batch-size``
tasks: one meta-step (meta-loss and backward) of ``MetaLearner.meta_loss`` (off the CPU every
task in one grouped pass, ``omniglot.model.task_slices``) and of ``omniglot.maml.meta_loss_loop``
(a Python loop over tasks) on the same batch and device; ``speedup`` is loop / batched.

(b) One ``MAMLTRPO`` step of cheetah_vel's shipped config (``experiments/maml_trpo/
cheetah_vel.yaml``) on episodes of its sizes, ``--tasks`` x ``--episodes`` x 200 steps, before
and after adaptation. The episodes are synthetic (observations and rewards drawn at random,
actions drawn from the policy, before and after its inner step, with their log-probabilities),
so no physics is run: only the learner is timed. ``transfer_s``: moving both batches from the
CPU to the device; ``process_s``: baselines, GAE and advantages of both; ``adaptation_s``: the
inner step; ``trpo_step_s``: ``MAMLTRPO.step`` (meta-gradient, conjugate gradient on the
curvature products, line search); ``learner_s``: the three together.

Each is timed ``--rounds`` times after one warm-up, synchronising the device around every
timing; medians. The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import common  # bench/common.py: bench/ is first on sys.path when run as a script

from metarl.scripts import non_negative_int, positive_int, run_script


def timer(device):
    """``seconds(fn)``: wall seconds of ``fn()`` with the device idle before and after."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def seconds(fn) -> float:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - start

    return seconds


def median_seconds(seconds, fn, rounds: int) -> float:
    """The median of ``rounds`` timings of ``fn`` after one warm-up call."""
    fn()
    return round(statistics.median(seconds(fn) for _ in range(rounds)), 4)


def omniglot(args, device) -> dict:
    import torch

    from metarl.core.maml import parameters_of
    from metarl.device import to_device
    from metarl.supervised.omniglot.data import Episode
    from metarl.supervised.omniglot.maml import meta_loss_loop
    from metarl.supervised.omniglot.problem import OmniglotConfig, OmniglotProblem
    from metarl.supervised.trainer import MetaLearner

    config = OmniglotConfig(data_dir=args.data_dir, ways=5, shots=1, queries=15,
                            meta_batch_size=args.meta_batch_size, device=str(device))
    problem = OmniglotProblem(config)
    learner = MetaLearner(problem, config)
    support, query = to_device(problem.meta_batch(args.meta_batch_size,
                                                  torch.Generator().manual_seed(0)), device)
    episode = Episode(support[0], support[1], query[0], query[1])
    params = parameters_of(learner.model)

    def batched() -> None:
        learner.model.zero_grad(set_to_none=True)
        learner.meta_loss(support, query)[0].backward()

    def loop() -> None:
        learner.model.zero_grad(set_to_none=True)
        meta_loss_loop(learner.model, params, episode, step_size=config.fast_lr) \
            .loss.mean().backward()

    seconds = timer(device)
    ours = median_seconds(seconds, batched, args.rounds)
    plain = median_seconds(seconds, loop, args.rounds)
    return {"omniglot_seconds_per_meta_step": ours, "omniglot_loop_seconds_per_meta_step": plain,
            "speedup": round(plain / ours, 3), "meta_batch_size": args.meta_batch_size}


def synthetic_episodes(policy, params, obs_size: int, num_tasks: int, episodes: int,
                       horizon: int, generator):
    """Episodes ``[horizon, num_tasks, episodes]`` on the CPU: observations and rewards drawn
    from N(0, 1), actions from the policy with task-stacked ``params`` (on the CPU), and their
    log-probabilities; every episode runs to the horizon."""
    import torch

    from metarl.rl.episodes import Episodes

    obs = torch.randn(horizon, num_tasks, episodes, obs_size, generator=generator)
    with torch.no_grad():
        mean, log_std = policy.mean_and_log_std(params, obs)
        actions = mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
        log_probs = policy.log_prob(params, obs, actions)
    lengths = torch.full((num_tasks, episodes), horizon, dtype=torch.int64)
    return Episodes(observations=obs, actions=actions,
                    rewards=torch.randn(horizon, num_tasks, episodes, generator=generator),
                    log_probs=log_probs, mask=torch.ones(horizon, num_tasks, episodes),
                    lengths=lengths, terminated=torch.zeros(num_tasks, episodes, dtype=torch.bool))


def trpo_step(args, device) -> dict:
    import copy

    import torch

    from metarl import experiment
    from metarl.core.maml import parameters_of, stack_params
    from metarl.rl.config import task_family
    from metarl.rl.maml_trpo import MAMLTRPO
    from metarl.rl.trainer import build_policy, env_sizes

    config = experiment.make_config("maml_trpo", env="cheetah_vel", device=str(device),
                                    meta_batch_size=args.tasks, fast_batch_size=args.episodes)
    horizon = 200
    obs_size, act_size = env_sizes(task_family(config))  # the family, options bound
    cpu_policy = build_policy(config, obs_size, act_size)
    generator = torch.Generator().manual_seed(0)
    theta = {k: v.detach() for k, v in stack_params(parameters_of(cpu_policy), args.tasks).items()}
    train_cpu = synthetic_episodes(cpu_policy, theta, obs_size, args.tasks, args.episodes,
                                   horizon, generator)
    cpu_learner = MAMLTRPO(cpu_policy, config)
    adapted = cpu_learner.adapt(parameters_of(cpu_policy), cpu_learner.process(train_cpu))
    valid_cpu = synthetic_episodes(cpu_policy, {k: v.detach() for k, v in adapted.items()},
                                   obs_size, args.tasks, args.episodes, horizon, generator)

    state = copy.deepcopy(cpu_policy.state_dict())
    policy = cpu_policy.to(device)
    learner = MAMLTRPO(policy, config)
    seconds = timer(device)
    batches = {}

    def transfer() -> None:
        batches["train"] = train_cpu.to(device, non_blocking=True)
        batches["valid"] = valid_cpu.to(device, non_blocking=True)

    def process() -> None:
        batches["train_data"] = learner.process(batches["train"])
        batches["valid_data"] = learner.process(batches["valid"])

    def adapt() -> None:
        batches["adapted"] = learner.adapt(parameters_of(policy), batches["train_data"])

    def step() -> None:
        policy.load_state_dict(state)  # every round steps from the same θ
        adapt()
        learner.step(batches["train_data"], batches["valid_data"],
                     torch.Generator().manual_seed(1), adapted=batches["adapted"])

    parts = {}
    for name, fn in (("transfer_s", transfer), ("process_s", process),
                     ("adaptation_s", adapt)):
        parts[name] = median_seconds(seconds, fn, args.rounds)
    parts["trpo_step_s"] = round(median_seconds(seconds, step, args.rounds)
                                 - parts["adaptation_s"], 4)  # the step without its adapt()
    parts["learner_s"] = round(parts["process_s"] + parts["adaptation_s"]
                               + parts["trpo_step_s"], 4)
    return {**parts, "tasks": args.tasks, "episodes": args.episodes, "horizon": horizon,
            "env_steps": 2 * args.tasks * args.episodes * horizon,
            "hidden_sizes": list(config.hidden_sizes), "hvp_subsample": config.hvp_subsample,
            "curvature": config.curvature, "cg_iters": config.cg_iters}


def main() -> None:
    import torch

    from metarl.device import resolve_device

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--part", choices=("both", "omniglot", "trpo"), default="both",
                        help="what to time (default: both)")
    parser.add_argument("--rounds", type=positive_int, default=3,
                        help="timed rounds (default: 3)")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch threads, 0: one per core (default: 1)")
    parser.add_argument("--data-dir", default="data/omniglot",
                        help="the Omniglot zips (default: data/omniglot)")
    parser.add_argument("--meta-batch-size", type=positive_int, default=32,
                        help="Omniglot tasks per meta-step (default: 32)")
    parser.add_argument("--tasks", type=positive_int, default=40,
                        help="TRPO tasks (default: 40)")
    parser.add_argument("--episodes", type=positive_int, default=20,
                        help="TRPO episodes per task (default: 20)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    result = {"device": str(device), "rounds": args.rounds}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    if args.part in ("both", "omniglot"):
        result.update(omniglot(args, device))
    if args.part in ("both", "trpo"):
        result.update(trpo_step(args, device))
    result.update(common.machine())
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
