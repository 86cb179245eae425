"""Seconds per tanh: ``metarl.core.activations.tanh`` next to ``torch.tanh`` in the same run.

    python bench/activations.py [--size 2560000] [--rounds 50] [--threads 1]

Times, on a float32 tensor of ``--size`` elements (the default is a navigation_2d meta-batch's
hidden layer: 20 tasks x 20 episodes x 100 steps x 64 units), the forward pass alone and the
forward with the backward of a sum, for both functions, alternating, ``--rounds`` times each
after a warm-up; medians, in milliseconds of CPU time of this process (at ``--threads 1`` the
wall time of a quiet machine; the wall clock of a shared virtual machine also counts steal)
and of the wall clock. Also checks the largest difference of the values. The last printed line
is one JSON object with ``*_ms`` for each and the ``forward_speedup`` and ``backward_speedup``
of ours over ``torch.tanh`` (CPU time).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from metarl.scripts import positive_int, run_script


def timed(function, rounds: int) -> tuple[float, float]:
    """Median CPU and wall milliseconds of ``function()`` over ``rounds`` calls."""
    cpu, wall = [], []
    for _ in range(rounds):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        function()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return 1000 * statistics.median(cpu), 1000 * statistics.median(wall)


def main() -> None:
    import torch

    from metarl.allocator import tune_malloc
    from metarl.core.activations import tanh

    tune_malloc()  # the allocator settings of training (metarl.allocator)

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=positive_int, default=20 * 20 * 100 * 64)
    parser.add_argument("--rounds", type=positive_int, default=50)
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.size, generator=torch.Generator().manual_seed(0)) * 2
    grad_x = x.clone().requires_grad_(True)

    def backward(function):
        def run():
            function(grad_x).sum().backward()
            grad_x.grad = None
        return run

    candidates = {"torch": torch.tanh, "ours": tanh}
    results: dict[str, list[float]] = {}
    for function in candidates.values():  # warm-up
        function(x)
        backward(function)()
    for _ in range(2):  # alternate, so drift on a shared machine hits both alike
        for name, function in candidates.items():
            for kind, run in (("forward", lambda f=function: f(x)), ("backward", backward(function))):
                cpu, wall = timed(run, max(1, args.rounds // 2))
                results.setdefault(f"{name}_{kind}_cpu_ms", []).append(cpu)
                results.setdefault(f"{name}_{kind}_wall_ms", []).append(wall)
    summary = {key: round(statistics.median(values), 3) for key, values in results.items()}
    summary["max_abs_difference"] = float((tanh(x) - torch.tanh(x)).abs().max())
    for kind in ("forward", "backward"):
        summary[f"{kind}_speedup"] = round(
            summary[f"torch_{kind}_cpu_ms"] / summary[f"ours_{kind}_cpu_ms"], 2)
    summary.update(size=args.size, threads=args.threads, torch=torch.__version__)
    for kind in ("forward", "backward"):
        label = "forward" if kind == "forward" else "forward + backward"
        print(f"{label:>20}: torch.tanh {summary[f'torch_{kind}_cpu_ms']:.2f} ms, ours "
              f"{summary[f'ours_{kind}_cpu_ms']:.2f} ms CPU ({summary[f'{kind}_speedup']:.2f}x)")
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(run_script(main))
