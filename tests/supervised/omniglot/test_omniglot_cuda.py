"""Omniglot MAML on a CUDA device: the whole meta-batch in one grouped pass, two iterations
trained and evaluated (baselines on the device too), the checkpoint evaluated on the CPU, and
the meta-losses close to the CPU's. Skipped without CUDA."""

from pathlib import Path

import pytest
import torch
from run_helpers import only_run_dir

from metarl import experiment
from metarl.run import main
from metarl.runs import load_run_checkpoint
from metarl.supervised.omniglot import maml as omniglot_maml
from metarl.supervised.omniglot.problem import build_problem
from metarl.supervised.trainer import MetaLearner

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "omniglot"
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not DATA.is_dir(), reason=f"Omniglot subsets not found at {DATA}"),
]
TINY = dict(task="omniglot", num_batches=2, meta_batch_size=8, queries=2, eval_every=2,
            eval_tasks=4, data_dir=str(DATA))


def test_the_meta_batch_goes_in_one_grouped_pass(omniglot_cache_dir, monkeypatch):
    config = experiment.make_config("maml", device="cuda", cache_dir=str(omniglot_cache_dir),
                                    **TINY)
    learner = MetaLearner(build_problem(config), config)
    calls = []
    grouped_forward = omniglot_maml.grouped_forward

    def counted(params, x, **kwargs):
        calls.append(x.shape[0])
        return grouped_forward(params, x, **kwargs)

    monkeypatch.setattr(omniglot_maml, "grouped_forward", counted)
    learner.config.eval_every = 0  # the step alone
    learner.step()
    # one support pass (inside adapt's loss) and one query pass, each of all 8 tasks
    assert calls == [8, 8]


@pytest.mark.slow
def test_omniglot_on_cuda_trains_evaluates_and_loads_on_the_cpu(tmp_path, omniglot_cache_dir):
    cache = str(omniglot_cache_dir)
    losses = {}
    for device in ("cpu", "cuda"):
        config = experiment.make_config("maml", device=device, cache_dir=cache,
                                        output_dir=str(tmp_path / device), **TINY)
        learner = MetaLearner(build_problem(config), config)
        losses[device] = [learner.step()["train/meta_loss"] for _ in range(2)]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-3)

    argv = ["maml", "--task", "omniglot", "--num-batches", "2", "--meta-batch-size", "8",
            "--queries", "2", "--eval-every", "2", "--eval-tasks", "4", "--data-dir", str(DATA),
            "--cache-dir", cache, "--device", "cuda", "--output-dir", str(tmp_path / "runs"),
            "--no-progress"]
    assert main(argv) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    state = load_run_checkpoint(run_dir / "checkpoint.pt")
    assert all(v.device.type == "cpu" for v in state["model"].values())
    for device in ("cpu", "cuda"):  # the classifier baseline trains on the device
        assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--steps", "1",
                     "--baseline-iterations", "2", "--device", device,
                     "--output", str(tmp_path / f"eval_{device}"), "--no-progress"]) == 0
