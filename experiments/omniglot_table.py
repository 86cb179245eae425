"""The Omniglot table of docs/results.md from the runs of ``reproduce_omniglot.sh``.

    python experiments/omniglot_table.py [OUT]     (OUT: the script's output folder)

For each setting (5way1shot, 5way5shot, 20way1shot) it reads the latest run's config and
``evaluation/curve.json`` and prints one Markdown row per method: accuracy ± 95% CI after
0..3 steps, with the run's meta-iterations and meta-batch size. Ways and shots are those of the
evaluation (``curve.json``: ``evaluate --shots 5`` on a 1-shot run is a 5-shot row), or the
run's config for files written before ``curve.json`` recorded the ways.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

SETTINGS = ("5way1shot", "5way5shot", "20way1shot")
LABELS = {"maml": "MAML (ours)", "classifier": "classifier, head fine-tuned (ours)",
          "classifier_converged": "classifier, head after 100 steps (ours)"}


def rows(out: Path) -> list[str]:
    lines = ["| setting | method | meta-iterations × tasks | step 0 | step 1 | step 2 | step 3 |",
             "|---|---|---|---|---|---|---|"]
    for setting in SETTINGS:
        runs = sorted((out / setting).glob("maml__omniglot__*"))
        if not runs or not (runs[-1] / "evaluation" / "curve.json").exists():
            continue
        run = runs[-1]
        config = yaml.safe_load((run / "config.yaml").read_text())
        curve = json.loads((run / "evaluation" / "curve.json").read_text())
        budget = f"{curve['iteration']} × {config['meta_batch_size']}"
        name = f"{curve.get('ways', config['ways'])}-way {curve.get('shots', config['shots'])}-shot"
        for method, values in curve["methods"].items():
            cells = " | ".join(f"{100 * m:.1f} ± {100 * c:.1f}"
                               for m, c in zip(values["mean"], values["ci95"]))
            lines.append(f"| {name} | {LABELS.get(method, method)} | "
                         f"{budget if method == 'maml' else '—'} | {cells} |")
    return lines


if __name__ == "__main__":
    print("\n".join(rows(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/omniglot"))))
