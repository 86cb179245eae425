"""The side panel of a sine evaluation's figure: adapted fits on a few held-out tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import torch

from metarl.core.maml import adapt, stack_params
from metarl.supervised.curves import task_functions
from metarl.supervised.problem import Start


def plot_fits(ax, problem, methods: Mapping[str, Start], support, true_tasks,
              sizes: Sequence[float], num_shown: int = 3) -> None:
    """True sine, support points and the predictions of each start in ``methods`` after one
    and after all ``sizes`` steps, for the first ``num_shown`` held-out tasks."""
    num_shown = min(num_shown, len(true_tasks[0]))  # evaluate may hold fewer tasks
    amplitude, phase = (t[:num_shown] for t in true_tasks)
    xs, ys = support[0][:num_shown], support[1][:num_shown]
    grid = torch.linspace(-5, 5, 200, device=xs.device).expand(num_shown, 200).unsqueeze(-1)
    truth = problem.tasks.evaluate(amplitude, phase, grid).cpu()
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"maml": "-", "pretrained": ":"}
    for i in range(num_shown):
        colour = colours[i % len(colours)]
        ax.plot(grid[i, :, 0].cpu(), truth[i, :, 0], color=colour, linewidth=3, alpha=0.35,
                label="true" if i == 0 else None)
        ax.scatter(xs[i, :, 0].cpu(), ys[i, :, 0].cpu(), color=colour, marker="^", zorder=3,
                   label="support" if i == 0 else None)
    for label, start in methods.items():
        losses, _ = task_functions(problem, start.model)
        for k in sorted({min(1, len(sizes)), len(sizes)}):
            params = {n: v.detach().requires_grad_(True)
                      for n, v in stack_params(start.params, num_shown).items()}
            adapted = adapt(lambda p, d, f=losses: f(p, d).sum(), params, (xs, ys),
                            num_steps=k, step_size=list(sizes[:k]), first_order=True)
            with torch.no_grad():
                prediction = start.model.task_forward(adapted, grid).cpu()
            for i in range(num_shown):
                ax.plot(grid[i, :, 0].cpu(), prediction[i, :, 0], color=colours[i % len(colours)],
                        linestyle=styles.get(label, "--"), alpha=1.0 if k == 1 else 0.6,
                        label=f"{label}, {k} step{'s' if k > 1 else ''}" if i == 0 else None)
    ax.set_title("adapted fits on held-out tasks")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
