"""A MAML-TRPO meta-iteration sampled on Ray: what it moves, and its time projected to N nodes.

    python bench/scaling.py --env cheetah_vel [--iterations 2] [--ray-address ADDRESS]
                            [--bandwidth-gbit 10] [--nodes 1 2 4 8 16]

Runs real meta-iterations of ``MetaRLTrainer`` with the shipped config
``experiments/maml_trpo/{env}.yaml`` and ``sampler: ray`` (a local Ray runtime, or the cluster at
``--ray-address``), after one warm-up iteration, and measures per iteration (medians):

- ``sampling_s``: both meta-batches, on this machine's ``cores`` (the throughput of one node);
- ``learner_s``: adaptation and the TRPO step (meta-gradient, conjugate gradient with curvature
  products, line search), all on the driver;
- what the Ray sampler moves per iteration: parameter bytes put (once per call; every node
  reads them once) and episode bytes returned to the driver, and the driver's seconds putting
  and copying them.

The projection for ``n`` nodes of this machine's kind, the learner unchanged::

    T(n) = learner_s + sampling_s / n + calls * per_call_s
           + ((n - 1) / n * episode_bytes + (n - 1) * params_bytes) / bandwidth

where ``per_call_s`` is the measured Ray cost per sample call on one node (the calls' wall
time minus the slowest actor's sampling time; it includes moving the bytes within the node),
and the network carries the episodes of the other ``n - 1`` nodes' actors to the driver and one
copy of the parameters to each of those nodes. ``speedup(n) = T(1) / T(n)``; the learner's
share bounds it at ``T(1) / learner_s`` (Amdahl).

A second projection, ``distributed``, models the learner's episode work done where the episodes
were sampled (each node's inner-step gradients and curvature products over its own tasks,
summed across nodes in every conjugate-gradient iteration; not implemented in metarl today):
the learner's time divides by ``n`` like sampling, the episodes never travel, and each of the
``rounds = cg_iters + ls_max_steps + 2`` reductions costs a round trip of one parameter-sized
vector per node (``--latency-ms``, default 1)::

    T_distributed(n) = (learner_s + sampling_s) / n + calls * per_call_s
                       + rounds * (latency + n * vector_bytes / bandwidth)

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import common  # bench/common.py: bench/ is first on sys.path when run as a script

from metarl.scripts import finite_float, non_negative_int, positive_float, positive_int, run_script


def non_negative_float(text: str) -> float:
    """An argparse type: a finite float >= 0 (``--latency-ms 0``: no latency)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def main() -> None:
    from metarl.config import resolve
    from metarl.rl.config import MAMLTRPOConfig
    from metarl.rl.trainer import MetaRLTrainer

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--iterations", type=positive_int, default=2, help="timed iterations")
    parser.add_argument("--ray-address", default="", help="cluster to join (default: local)")
    parser.add_argument("--bandwidth-gbit", type=positive_float, default=10.0,
                        help="network bandwidth into the driver's node, Gbit/s, for the "
                             "projection (default: 10)")
    parser.add_argument("--nodes", type=positive_int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--latency-ms", type=non_negative_float, default=1.0,
                        help="round-trip time between nodes, for the distributed projection")
    parser.add_argument("--torch-threads", type=non_negative_int, default=None,
                        help="PyTorch threads of the learner (0: PyTorch's default)")
    args = parser.parse_args()
    flags = {"env": args.env, "sampler": "ray", "ray_address": args.ray_address}
    if args.torch_threads is not None:
        flags["torch_threads"] = args.torch_threads
    config = resolve(MAMLTRPOConfig, algo="maml_trpo", task=args.env, config_file=None,
                     flags=flags)

    rows = []
    with MetaRLTrainer(config) as trainer:
        calls = record_transfers(trainer.sampler)
        trainer.step()  # warm-up: actor start, first allocations
        for _ in range(args.iterations):
            calls.clear()
            values = trainer.step()
            rows.append({
                "sampling_s": values["time/sampling_s"],
                "learner_s": values["time/adaptation_s"] + values["time/optimisation_s"],
                "iteration_s": values["time/iteration_s"],
                "params_bytes": sum(c["params_bytes"] for c in calls),
                "episode_bytes": sum(c["episode_bytes"] for c in calls),
                "move_s": sum(c["put_s"] + c["copy_s"] for c in calls),
                "per_call_s": statistics.mean(c["wall_s"] - c["actor_s"] for c in calls),
                "calls": len(calls),
            })
        actors = trainer.sampler.num_actors

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    measured = {key: median(key) for key in rows[0]}
    bandwidth = args.bandwidth_gbit * 1e9 / 8  # bytes per second
    one = projected(measured, 1, bandwidth)
    vector_bytes = 4 * sum(p.numel() for p in trainer.policy.parameters())
    rounds = config.cg_iters + config.ls_max_steps + 2
    table = []
    for n in args.nodes:
        spread = distributed(measured, n, bandwidth, rounds, args.latency_ms / 1e3,
                             vector_bytes)
        table.append({"nodes": n, "seconds": round(projected(measured, n, bandwidth), 3),
                      "speedup": round(one / projected(measured, n, bandwidth), 2),
                      "distributed_seconds": round(spread, 3),
                      "distributed_speedup": round(one / spread, 2)})
    result = {
        "env": args.env,
        "meta_batch_size": config.meta_batch_size, "fast_batch_size": config.fast_batch_size,
        "hidden_sizes": list(config.hidden_sizes), "actors": actors,
        "iteration_s": round(measured["iteration_s"], 3),
        "sampling_s": round(measured["sampling_s"], 3),
        "learner_s": round(measured["learner_s"], 3),
        "learner_share": round(measured["learner_s"] / measured["iteration_s"], 3),
        "params_bytes_per_iteration": int(measured["params_bytes"]),
        "episode_bytes_per_iteration": int(measured["episode_bytes"]),
        "move_s_per_iteration": round(measured["move_s"], 4),
        "per_call_s": round(measured["per_call_s"], 4),
        "bandwidth_gbit": args.bandwidth_gbit,
        "amdahl_limit": round(one / measured["learner_s"], 2),
        "latency_ms": args.latency_ms,
        "reduction_rounds": rounds,
        "projection": table,
        "iterations": args.iterations,
    }
    result.update(common.machine())
    print(f"{args.env}: {result['iteration_s']} s per meta-iteration on one node "
          f"(sampling {result['sampling_s']} s, learner {result['learner_s']} s); moved "
          f"{result['params_bytes_per_iteration'] / 1e6:.2f} MB of parameters out and "
          f"{result['episode_bytes_per_iteration'] / 1e6:.1f} MB of episodes back")
    print("  nodes   learner on the driver   learner's episode work on the nodes")
    for row in table:
        print(f"  {row['nodes']:>5}   {row['seconds']:8.3f} s (x{row['speedup']:<5})  "
              f"{row['distributed_seconds']:8.3f} s (x{row['distributed_speedup']})")
    print(json.dumps(result))


def projected(m: dict, nodes: int, bandwidth: float) -> float:
    """Seconds of one meta-iteration on ``nodes`` nodes (the module docstring's T(n))."""
    remote = (nodes - 1) / nodes * m["episode_bytes"] + (nodes - 1) * m["params_bytes"]
    transfer = remote / bandwidth
    return m["learner_s"] + m["sampling_s"] / nodes + transfer + m["calls"] * m["per_call_s"]


def distributed(m: dict, nodes: int, bandwidth: float, rounds: int, latency: float,
                vector_bytes: int) -> float:
    """Seconds of one meta-iteration with the learner's episode work on the nodes (the module
    docstring's T_distributed(n))."""
    reductions = rounds * (latency + nodes * vector_bytes / bandwidth) if nodes > 1 else 0.0
    return ((m["learner_s"] + m["sampling_s"]) / nodes + m["calls"] * m["per_call_s"]
            + reductions)


def record_transfers(sampler) -> list[dict]:
    """Wrap ``sampler.sample`` to record each call's wall time and its ``Transfer``."""
    calls: list[dict] = []
    sample = sampler.sample

    def timed(*args, **kwargs):
        start = time.perf_counter()
        episodes = sample(*args, **kwargs)
        wall = time.perf_counter() - start
        calls.append({**vars(sampler.transfer), "wall_s": wall})
        return episodes

    sampler.sample = timed
    return calls


if __name__ == "__main__":
    sys.exit(run_script(main))
