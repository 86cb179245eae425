"""The learner on a CUDA device: two iterations of each algorithm, their checkpoints (CPU
tensors) evaluated on the CPU, and the CUDA run's numbers close to the CPU run's. Omniglot's
are in tests/supervised/omniglot/test_omniglot_cuda.py. Skipped without CUDA."""

import pytest
import torch
from run_helpers import only_run_dir

from metarl import experiment
from metarl.rl.trainer import MetaRLTrainer
from metarl.run import main
from metarl.runs import load_run_checkpoint
from metarl.supervised.sine.problem import build_problem
from metarl.supervised.trainer import MetaLearner

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

NAVIGATION = dict(env="navigation_2d", num_batches=2, meta_batch_size=4, fast_batch_size=4,
                  torch_threads=1)
SINE = dict(task="sine", num_batches=2, meta_batch_size=4, eval_every=2, eval_tasks=4)


def all_on_cpu(state) -> bool:
    if isinstance(state, torch.Tensor):
        return state.device.type == "cpu"
    if isinstance(state, dict):
        return all(all_on_cpu(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_on_cpu(v) for v in state)
    return True


@pytest.mark.parametrize("algo, options", [("maml_trpo", NAVIGATION), ("maml", SINE)])
def test_a_cuda_run_saves_cpu_tensors_and_evaluates_on_the_cpu(algo, options, tmp_path):
    config = experiment.make_config(algo, output_dir=str(tmp_path / "runs"), device="cuda",
                                    **options)
    run = experiment.train(config, progress=False)
    state = load_run_checkpoint(run / "checkpoint.pt")
    assert state["iteration"] == 2 and state["config"]["device"] == "cuda"
    assert all_on_cpu(state)
    small = ["--num-tasks", "4", "--steps", "1"]
    small += ["--episodes-per-task", "2"] if algo == "maml_trpo" else []
    assert main(["evaluate", "--run", str(run), *small, "--no-baselines", "--device", "cpu",
                 "--output", str(tmp_path / "cpu"), "--no-progress"]) == 0
    # the baselines train on the device too (RL: pretrained and oracle runs; sine: both)
    assert main(["evaluate", "--run", str(run), *small, "--baselines", "--baseline-iterations",
                 "2", "--device", "cuda", "--output", str(tmp_path / "cuda"),
                 "--no-progress"]) == 0
    if algo == "maml_trpo":
        pretrained = load_run_checkpoint(only_run_dir(tmp_path / "cuda" / "pretrained")
                                         / "checkpoint.pt")
        assert pretrained["config"]["device"] == "cuda" and all_on_cpu(pretrained)


def test_a_cuda_run_resumes_on_the_cpu(tmp_path):
    assert main(["maml", "--task", "sine", "--num-batches", "2", "--device", "cuda",
                 "--eval-every", "0", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["maml", "--resume", str(run_dir), "--num-batches", "4", "--device", "cpu",
                 "--no-progress"]) == 0
    assert load_run_checkpoint(run_dir / "checkpoint.pt")["iteration"] == 4


def test_maml_trpo_on_cuda_steps_as_on_the_cpu():
    """The same θ and CPU sampling: identical pre-update episodes, and the adaptation and the
    TRPO step equal up to float rounding."""
    values, weights = {}, {}
    for device in ("cpu", "cuda"):
        config = experiment.make_config("maml_trpo", device=device, **NAVIGATION)
        with MetaRLTrainer(config) as trainer:
            values[device] = trainer.step()
            weights[device] = {k: v.detach().cpu() for k, v in trainer.theta().items()}
    assert values["cuda"]["returns/step_0"] == values["cpu"]["returns/step_0"]
    for key in ("returns/step_1", "trpo/kl", "trpo/surrogate_improvement"):
        assert values["cuda"][key] == pytest.approx(values["cpu"][key], rel=1e-3, abs=1e-5)
    for name, value in weights["cpu"].items():
        torch.testing.assert_close(weights["cuda"][name], value, rtol=1e-4, atol=1e-5)


def test_sine_on_cuda_has_the_losses_of_the_cpu():
    losses = {}
    for device in ("cpu", "cuda"):
        config = experiment.make_config("maml", device=device, **SINE)
        learner = MetaLearner(build_problem(config), config)
        assert next(learner.model.parameters()).device.type == device
        losses[device] = [learner.step()["train/meta_loss"] for _ in range(2)]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-4)
