"""Seconds per Omniglot MAML meta-iteration: the toolkit's batched tasks next to a plain loop.

    python bench/omniglot.py [--data-dir data/omniglot] [--meta-batch-size 32]
        [--ways 5] [--shots 1] [--queries 15] [--rounds 3] [--threads 1] [--bfloat16] [--float64]

One second-order meta-iteration (adapt every task with one step of lr 0.4 on its support set,
query cross-entropy, backward) on the same meta-batch, timed for ``MetaLearner.meta_loss``
(``omniglot.maml.meta_loss``: tasks in groups, each run as grouped convolutions; the groups
are ``omniglot.model.task_slices``'s, two tasks on a CPU) and for
``omniglot.maml.meta_loss_loop`` (a Python loop of ``adapt`` + ``functional_call``),
alternating, ``--rounds`` times each after one warm-up; medians. The last printed line is one
JSON object with ``seconds_per_iteration``, ``loop_seconds_per_iteration`` and ``speedup``
(wall clock), and the same three measured in CPU seconds of this process (``cpu_...``).

Why both: on a shared virtual machine the wall clock also counts time the hypervisor gives
this process's core to someone else (steal), which varies from round to round; the CPU
seconds do not, and at ``--threads 1`` they are the wall time of a quiet machine. With more
threads the CPU seconds add up all threads, so the wall clock is the number that matters.

``--bfloat16`` also times both under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(convolutions and matmuls in bfloat16, the rest float32; not a training option of the
toolkit, a measurement of what lower precision would buy) and adds ``bf16_...`` seconds, the
speedup of the batched bfloat16 path over the float32 loop, and the relative error of its
meta-gradient against the float32 one.

``--float64`` also computes the loop's meta-gradient in float64 (a double copy of the model and
the images) and adds ``float64_error``: for the batched path and the float32 loop, the largest
relative error of one parameter tensor's meta-gradient against the float64 one,
``max_p |g_p - g64_p| / |g64_p|`` (norms over each tensor's entries), over the tensors whose
float64 meta-gradient is not zero (above 1e-6 of the whole gradient's norm: a convolution's bias
ahead of batch norm has none in exact arithmetic).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import common  # bench/common.py: bench/ is first on sys.path when run as a script

from metarl.scripts import non_negative_int, positive_int, run_script


def main() -> None:
    import torch

    from metarl.core.maml import parameters_of
    from metarl.supervised.omniglot.data import Episode
    from metarl.supervised.omniglot.maml import meta_loss_loop
    from metarl.supervised.omniglot.problem import OmniglotConfig, OmniglotProblem
    from metarl.supervised.trainer import MetaLearner

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/omniglot",
                        help="the Omniglot zips (default: data/omniglot)")
    parser.add_argument("--meta-batch-size", type=positive_int, default=32)
    parser.add_argument("--ways", type=positive_int, default=5)
    parser.add_argument("--shots", type=positive_int, default=1)
    parser.add_argument("--queries", type=positive_int, default=15)
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch threads (0: default)")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also time both under bfloat16 autocast")
    parser.add_argument("--float64", action="store_true",
                        help="also compare both meta-gradients with a float64 loop's")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = OmniglotConfig(data_dir=args.data_dir, ways=args.ways, shots=args.shots,
                            queries=args.queries, meta_batch_size=args.meta_batch_size)
    problem = OmniglotProblem(config)
    learner = MetaLearner(problem, config)
    support, query = problem.meta_batch(args.meta_batch_size, torch.Generator().manual_seed(0))
    episode = Episode(support[0], support[1], query[0], query[1])
    params = parameters_of(learner.model)

    def batched() -> None:
        loss, _ = learner.meta_loss(support, query)
        loss.backward()

    def loop() -> None:
        meta_loss_loop(learner.model, params, episode, step_size=config.fast_lr).loss.mean() \
            .backward()

    def in_bfloat16(run):
        def autocast_run() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                run()
        return autocast_run

    variants = {"batched": batched, "loop": loop}
    if args.bfloat16:
        variants.update(bf16_batched=in_bfloat16(batched), bf16_loop=in_bfloat16(loop))
    gradients, per_tensor = {}, {}
    for name, run in variants.items():  # warm-up (the first pass also pays for fresh pages)
        learner.model.zero_grad(set_to_none=True)
        run()
        per_tensor[name] = [p.grad.clone() for p in learner.model.parameters()]
        gradients[name] = torch.cat([g.flatten() for g in per_tensor[name]])
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            learner.model.zero_grad(set_to_none=True)
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    ours, plain = statistics.median(wall["batched"]), statistics.median(wall["loop"])
    ours_cpu, plain_cpu = statistics.median(cpu["batched"]), statistics.median(cpu["loop"])
    result = {"seconds_per_iteration": round(ours, 3), "loop_seconds_per_iteration": round(plain, 3),
              "speedup": round(plain / ours, 3), "cpu_seconds_per_iteration": round(ours_cpu, 3),
              "loop_cpu_seconds_per_iteration": round(plain_cpu, 3),
              "cpu_speedup": round(plain_cpu / ours_cpu, 3), "meta_batch_size": args.meta_batch_size,
              "ways": args.ways, "shots": args.shots, "queries": args.queries,
              "rounds": args.rounds, **common.machine()}
    if args.bfloat16:
        reference = gradients["batched"]
        bf16, bf16_cpu = statistics.median(wall["bf16_batched"]), statistics.median(cpu["bf16_batched"])
        result.update({
            "bf16_seconds_per_iteration": round(bf16, 3),
            "bf16_loop_seconds_per_iteration": round(statistics.median(wall["bf16_loop"]), 3),
            "bf16_cpu_seconds_per_iteration": round(bf16_cpu, 3),
            "bf16_loop_cpu_seconds_per_iteration": round(statistics.median(cpu["bf16_loop"]), 3),
            "bf16_cpu_speedup_over_float32_loop": round(plain_cpu / bf16_cpu, 3),
            "bf16_gradient_relative_error": round(float(
                (gradients["bf16_batched"] - reference).norm() / reference.norm()), 4),
            "loop_gradient_relative_error": round(float(
                (gradients["loop"] - reference).norm() / reference.norm()), 6)})
    if args.float64:
        model64 = copy.deepcopy(learner.model).double()
        model64.zero_grad(set_to_none=True)  # the copy carries the last timed run's gradients
        episode64 = Episode(support[0].double(), support[1], query[0].double(), query[1])
        meta_loss_loop(model64, parameters_of(model64), episode64,
                       step_size=config.fast_lr).loss.mean().backward()
        exact = [p.grad for p in model64.parameters()]
        total = torch.cat([g.flatten() for g in exact]).norm()
        # Tensors whose exact meta-gradient vanishes (a convolution's bias ahead of batch norm)
        # have no relative error to speak of; float32 leaves rounding noise there.
        kept = [i for i, g64 in enumerate(exact) if g64.norm() > 1e-6 * total]
        result["float64_error"] = {
            name: float(max((per_tensor[name][i].double() - exact[i]).norm() / exact[i].norm()
                            for i in kept))
            for name in ("batched", "loop")}
        result["float64_tensors_compared"] = f"{len(kept)} of {len(exact)}"
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(run_script(main))
