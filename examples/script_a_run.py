"""Train, resume and evaluate a MAML-TRPO run from Python, exactly as the command line would.

    python examples/script_a_run.py [OUTPUT_DIR]

does what these commands do (with a tiny budget, so it ends in seconds):

    python -m metarl.run maml_trpo --env navigation_2d --num-batches 2 --meta-batch-size 2 \\
        --fast-batch-size 2 --hidden-sizes 8 8 --output-dir OUTPUT_DIR
    python -m metarl.run maml_trpo --resume RUN_DIR --num-batches 3
    python -m metarl.run evaluate --run RUN_DIR --num-tasks 2 --steps 2

``make_config`` takes navigation_2d's shipped defaults (``experiments/maml_trpo/
navigation_2d.yaml``, e.g. ``normalize_actions: true``) before the keyword overrides, as the
command line does; ``MAMLTRPOConfig(env="navigation_2d")`` would hold the built-in defaults
only. A sampler may start worker processes, hence the ``__main__`` guard.
"""

import sys

from metarl import experiment

#: A budget of seconds; drop it for the paper's settings (navigation_2d.yaml).
TINY = {"num_batches": 2, "meta_batch_size": 2, "fast_batch_size": 2, "hidden_sizes": [8, 8]}


def main(output_dir: str = "runs") -> None:
    config = experiment.make_config("maml_trpo", env="navigation_2d", output_dir=output_dir,
                                    **TINY)
    run_dir = experiment.train(config)
    print(f"trained {config.num_batches} iterations in {run_dir}")

    longer = experiment.make_config("maml_trpo", resume=run_dir, num_batches=3)
    experiment.train(longer, resume=run_dir)
    print(f"resumed to {longer.num_batches} iterations")

    result = experiment.evaluate(run_dir, num_tasks=2, steps=2)
    print(result["table"])


if __name__ == "__main__":
    main(*sys.argv[1:])
