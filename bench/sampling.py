"""Sampling one meta-batch: env-steps per second of the sampler, next to raw MuJoCo physics,
or the Ray sampler next to the local process sampler.

    python bench/sampling.py --env cheetah_vel [--num-workers N] [--rounds 5]
    python bench/sampling.py --env cheetah_vel --sampler ray [--ray-address ADDRESS]

The paper's defaults (docs/protocol.md): navigation_2d 20 tasks x 20 episodes x 100 steps, the
MuJoCo families 40 x 20 x 200; a 64-64 tanh Gaussian MLP policy with task-stacked parameters
(each task its own, as after adaptation). Measured in one run, in alternating rounds:

- ``sampler``: ``make_sampler(...).sample(tasks, params, seed)`` -- policy, noise, env steps,
  bookkeeping and the ``Episodes`` batch; counts the valid env-steps (``Episodes.num_steps``).
  Worker start-up is timed separately (``startup_s``) and one warm-up sample is not timed.
- ``raw_physics`` (MuJoCo families): ``mujoco.rollout`` of the same model, as many instances
  and control steps (``frame_skip`` substeps each), open loop (random controls precomputed; no
  policy, observations or rewards), on the sampler's total physics threads but at most one per
  core -- the ceiling.

Each round's ratio compares a sampler round with the raw round right after it, so load from
other processes on the machine affects both alike; medians over rounds are reported. On a
machine shared with other work, ``cpu_ratio_vs_raw`` (raw physics CPU-seconds per env-step over
the sampler's, all its processes and threads counted) is the steadier figure: the ratio that
perfect packing onto the cores would reach.

With ``--sampler ray``: the Ray sampler (a local Ray runtime, or the cluster at
``--ray-address``; default actors: one per CPU) and ``make_sampler``'s process sampler on the same
sizes, in alternating rounds (each round's ``time_ray / time_process`` ratio; the median is
``overhead_ratio``), with what the Ray sampler moves per call: the parameters put once
(``params_bytes``), the episodes returned (``episode_bytes``), and the driver's seconds putting,
waiting for the actors and copying their arrays into the meta-batch.

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import common  # bench/common.py: bench/ is first on sys.path when run as a script
import mujoco
import mujoco.rollout
import torch

from metarl import envs
from metarl.envs.base import usable_cores
from metarl.rl import policy as policy_module
from metarl.rl import sampler as sampler_module
from metarl.rl import workers as workers_module
from metarl.scripts import non_negative_int, positive_int, run_script

cpu_seconds, time_raw_physics = common.cpu_seconds, common.time_raw_physics

DEFAULT_SIZES = {"navigation_2d": (20, 20)}  # (tasks, episodes per task); others: (40, 20)


def main() -> None:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="task family, e.g. cheetah_vel")
    parser.add_argument("--num-workers", type=positive_int, default=None,
                        help="processes (default: make_sampler's default; 1 = in-process)")
    parser.add_argument("--num-threads", type=positive_int, default=None,
                        help="physics threads/process")
    parser.add_argument("--num-tasks", type=positive_int, default=None,
                        help="default: 20 for navigation_2d, else 40")
    parser.add_argument("--episodes-per-task", type=positive_int, default=None,
                        help="default: 20")
    parser.add_argument("--hidden-sizes", type=positive_int, nargs="+", default=[64, 64])
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--sampler", choices=("local", "ray"), default="local",
                        help="ray: compare the Ray sampler with the local process sampler")
    parser.add_argument("--ray-address", default=None,
                        help="with --sampler ray: the cluster to join (default: a local runtime)")
    parser.add_argument("--ray-actors", type=positive_int, default=None,
                        help="with --sampler ray: actors (default: one per CPU of the cluster)")
    args = parser.parse_args()

    family = envs.resolve(args.env)
    default_tasks, default_episodes = DEFAULT_SIZES.get(args.env, (40, 20))
    num_tasks = default_tasks if args.num_tasks is None else args.num_tasks
    episodes = default_episodes if args.episodes_per_task is None else args.episodes_per_task
    probe = family.make_batched(1, num_threads=1)
    spec = sampler_module.PolicySpec(probe.observation_size, probe.action_size,
                                     tuple(args.hidden_sizes), "tanh")
    physics = getattr(probe, "physics", None)
    probe.close()

    torch.manual_seed(args.seed)
    policy = policy_module.GaussianMLPPolicy(spec.obs_size, spec.act_size, spec.hidden_sizes)
    params = {name: (p.detach() + 0.01 * torch.randn(num_tasks, *p.shape)).contiguous()
              for name, p in policy.named_parameters()}  # task-stacked: each task its own
    tasks = family.sample_tasks(num_tasks, args.seed)
    if args.sampler == "ray":
        compare_ray(args, spec, tasks, params, episodes)
        return

    start = time.perf_counter()
    sampler = workers_module.make_sampler(
        args.env, spec, num_tasks=num_tasks, episodes_per_task=episodes,
        num_workers=args.num_workers, num_threads=args.num_threads)
    with sampler:
        startup = time.perf_counter() - start
        layout = describe(sampler)
        sampler.sample(tasks, params, args.seed)  # warm-up, not timed
        pids = getattr(sampler, "pids", [])
        # The ceiling: raw physics on as many threads as the sampler runs, at most one per core
        # (2 workers x 2 threads are compared with raw physics on 2 threads, not 4).
        raw_threads = min(layout["total_threads"], usable_cores())
        seconds, rates, raw, ratios, cpu, cpu_ratios = [], [], [], [], [], []
        for r in range(args.rounds):
            start, cpu_start = time.perf_counter(), cpu_seconds(pids)
            batch = sampler.sample(tasks, params, args.seed + 1 + r)
            seconds.append(time.perf_counter() - start)
            cpu.append((cpu_seconds(pids) - cpu_start) / batch.num_steps)
            rates.append(batch.num_steps / seconds[-1])
            if physics is not None:
                raw_rate, raw_cpu = time_raw_physics(
                    physics.model, num_tasks * episodes, batch.horizon, physics.frame_skip,
                    raw_threads, r)
                raw.append(raw_rate)
                ratios.append(rates[-1] / raw_rate)
                cpu_ratios.append(raw_cpu / cpu[-1])

    median = statistics.median
    result = {
        "env": args.env,
        "num_tasks": num_tasks,
        "episodes_per_task": episodes,
        "horizon": batch.horizon,
        "hidden_sizes": list(spec.hidden_sizes),
        **layout,
        "env_steps_per_s": round(median(rates)),
        "raw_physics_steps_per_s": round(median(raw)) if raw else None,
        "raw_physics_threads": raw_threads if raw else None,
        "ratio_vs_raw": round(median(ratios), 3) if ratios else None,
        "seconds_per_meta_batch": round(median(seconds), 4),
        "cpu_us_per_env_step": round(1e6 * median(cpu), 2),
        "cpu_ratio_vs_raw": round(median(cpu_ratios), 3) if cpu_ratios else None,
        "startup_s": round(startup, 3),
        "rounds_env_steps_per_s": [round(x) for x in rates],
        "rounds_raw_physics_steps_per_s": [round(x) for x in raw],
        "rounds_ratio": [round(x, 3) for x in ratios],
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cores": usable_cores(),
        "torch": torch.__version__,
        "mujoco": mujoco.__version__,
    }
    raw_text = (f", raw physics {result['raw_physics_steps_per_s']} steps/s, ratio "
                f"{result['ratio_vs_raw']}" if raw else "")
    print(f"{args.env}: {result['seconds_per_meta_batch']} s per meta-batch of {num_tasks} x "
          f"{episodes} episodes, {result['env_steps_per_s']} env-steps/s{raw_text} "
          f"({layout['num_workers']} process(es) x {layout['num_threads']} physics "
          "thread(s))")
    print(json.dumps(result))


def compare_ray(args, spec, tasks: list[dict], params: dict, episodes: int) -> None:
    """The Ray sampler against the local process sampler, alternating rounds; one JSON line."""
    from metarl.rl.ray_sampler import RaySampler

    started = time.perf_counter()
    ray_sampler = RaySampler(args.env, spec, num_tasks=len(tasks), episodes_per_task=episodes,
                             address=args.ray_address, num_actors=args.ray_actors)
    ray_startup = time.perf_counter() - started
    started = time.perf_counter()
    local = workers_module.make_sampler(args.env, spec, num_tasks=len(tasks),
                                        episodes_per_task=episodes, num_workers=args.num_workers,
                                        num_threads=args.num_threads)
    local_startup = time.perf_counter() - started
    times = {"ray": [], "local": []}
    transfers = []
    with ray_sampler, local:
        layout = describe(local)
        for sampler in (ray_sampler, local):
            sampler.sample(tasks, params, args.seed)  # warm-up, not timed
        for r in range(args.rounds):
            batches = {}
            for name, sampler in (("ray", ray_sampler), ("local", local)):
                start = time.perf_counter()
                batches[name] = sampler.sample(tasks, params, args.seed + 1 + r)
                times[name].append(time.perf_counter() - start)
            transfers.append(ray_sampler.transfer)
            if not all(torch.equal(getattr(batches["ray"], f), getattr(batches["local"], f))
                       for f in ("observations", "actions", "rewards", "lengths")):
                raise SystemExit("error: the Ray sampler's episodes differ from the local ones")
        nodes = len({where["node_id"] for where in ray_sampler.placement})
        actors, cluster_cpus = ray_sampler.num_actors, ray_sampler.ray.cluster_resources()["CPU"]

    median = statistics.median
    ratios = [r / p for r, p in zip(times["ray"], times["local"])]
    last = transfers[-1]
    result = {
        "env": args.env,
        "num_tasks": len(tasks),
        "episodes_per_task": episodes,
        "horizon": batches["local"].horizon,
        "hidden_sizes": list(spec.hidden_sizes),
        "overhead_ratio": round(median(ratios), 3),
        "seconds_ray": round(median(times["ray"]), 3),
        "seconds_local": round(median(times["local"]), 3),
        "rounds_ratio": [round(x, 3) for x in ratios],
        "ray_actors": actors,
        "ray_nodes": nodes,
        "ray_cluster_cpus": cluster_cpus,
        "local_workers": layout["num_workers"],
        "local_threads": layout["num_threads"],
        "params_bytes": last.params_bytes,
        "episode_bytes": last.episode_bytes,
        "put_s": round(median(t.put_s for t in transfers), 4),
        "copy_s": round(median(t.copy_s for t in transfers), 4),
        "wait_s": round(median(t.wait_s for t in transfers), 4),
        "actor_s": round(median(t.actor_s for t in transfers), 4),
        "startup_ray_s": round(ray_startup, 2),
        "startup_local_s": round(local_startup, 2),
        "identical_episodes": True,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cores": usable_cores(),
        "torch": torch.__version__,
    }
    print(f"{args.env}: Ray {result['seconds_ray']} s, local processes "
          f"{result['seconds_local']} s per meta-batch of {len(tasks)} x {episodes} episodes: "
          f"overhead ratio {result['overhead_ratio']} ({actors} actors on {nodes} node(s); "
          f"{last.params_bytes / 1e6:.2f} MB of parameters out, {last.episode_bytes / 1e6:.1f} "
          f"MB of episodes back, {result['copy_s']} s copying them)")
    print(json.dumps(result))


def describe(sampler) -> dict:
    """Process/thread layout of a sampler made by ``make_sampler``."""
    if isinstance(sampler, sampler_module.BatchedSampler):
        workers, threads = 1, sampler.num_threads
    else:
        workers, threads = sampler.num_workers, sampler.num_threads
    return {"num_workers": workers, "num_threads": threads,
            "total_threads": workers * max(1, threads)}


if __name__ == "__main__":
    sys.exit(run_script(main))
