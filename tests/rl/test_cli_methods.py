"""ProMP and RL² on every built-in family through the command line: one tiny meta-iteration
each, with the family's shipped defaults, writing a run directory a resume or an evaluation can
use (MAML-TRPO's own smoke test is tests/rl/test_cli_maml_trpo.py)."""

import pytest
import torch
import yaml
from run_helpers import only_run_dir

from metarl.run import main

BUILTIN_ENVS = ["navigation_2d", "cheetah_vel", "cheetah_dir", "ant_vel", "ant_dir", "ant_goal"]
TINY = {"promp": ["--meta-batch-size", "2", "--fast-batch-size", "1", "--hidden-sizes", "8",
                  "--num-outer-steps", "2", "--num-workers", "1"],
        "rl2": ["--meta-batch-size", "2", "--trials-per-task", "1", "--hidden-size", "4",
                "--ppo-epochs", "1", "--num-minibatches", "1"]}


@pytest.mark.parametrize("method", ["promp", "rl2"])
@pytest.mark.parametrize("env", BUILTIN_ENVS)
def test_every_builtin_env_trains_with_its_shipped_defaults(method, env, tmp_path):
    assert main([method, "--env", env, "--num-batches", "1", *TINY[method], "--torch-threads",
                 "1", "--no-progress", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith(f"{method}__{env}__0__")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (saved["algo"], saved["env"]) == (method, env)
    # the shipped experiments/{method}/{env}.yaml: the ant and cheetah_vel start gently, as
    # MAML-TRPO's do
    gentle = env.startswith("ant") or env == "cheetah_vel"
    assert saved["init_std"] == (0.3 if gentle else 1.0)
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert (state["algo"], state["iteration"]) == (method, 1)
