"""Supervised MAML that diverges stops with one line and keeps the last finite checkpoint."""


import pytest
import torch
from run_helpers import error_line, only_run_dir

from metarl.nonfinite import NonFiniteError
from metarl.run import main
from metarl.supervised.sine import problem as sine
from metarl.supervised.trainer import MetaLearner

TINY = ["--task", "sine", "--meta-batch-size", "2", "--eval-every", "0", "--no-progress"]


def learner(**changes) -> MetaLearner:
    config = sine.SineConfig(meta_batch_size=2, **changes)
    return MetaLearner(sine.build_problem(config), config)


def test_a_huge_inner_step_stops_at_iteration_1_without_writing_a_checkpoint(tmp_path, capsys):
    assert main(["maml", *TINY, "--fast-lr", "1e30", "--num-batches", "3",
                 "--checkpoint-every", "1", "--output-dir", str(tmp_path)]) == 1
    line = error_line(capsys.readouterr().err)
    assert line == ("error: diverged at iteration 1: meta_loss is nan; no checkpoint had been "
                    "written yet, so there is nothing to resume")
    assert not (only_run_dir(tmp_path) / "checkpoint.pt").exists()


def test_divergence_after_a_checkpoint_names_it_and_leaves_it_intact(tmp_path, capsys,
                                                                     monkeypatch):
    original = MetaLearner.meta_loss

    def nan_from_iteration_3(self, support, query):
        loss, score = original(self, support, query)
        return (loss * float("nan"), score) if self.iteration >= 2 else (loss, score)

    monkeypatch.setattr(MetaLearner, "meta_loss", nan_from_iteration_3)
    assert main(["maml", *TINY, "--num-batches", "5", "--checkpoint-every", "2",
                 "--output-dir", str(tmp_path)]) == 1
    run_dir = only_run_dir(tmp_path)
    line = error_line(capsys.readouterr().err)
    assert line == (f"error: diverged at iteration 3: meta_loss is nan; the last finite "
                    f"checkpoint (iteration 2) is intact: {run_dir / 'checkpoint.pt'}")
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_non_finite_meta_gradient_stops_before_the_adam_step():
    meta = learner()
    original = meta.meta_loss

    def nan_gradient(support, query):  # finite value, NaN gradient: 0 · d√x/dx at x = 0
        loss, score = original(support, query)
        weight = next(meta.model.parameters())
        return loss + 0.0 * torch.sqrt(weight - weight.detach()).sum(), score

    meta.meta_loss = nan_gradient
    before = {k: v.clone() for k, v in meta.model.state_dict().items()}
    with pytest.raises(NonFiniteError, match=r"^the meta-gradient is non-finite \(\S+: \d+ of "):
        meta.step()
    assert meta.iteration == 0 and not meta.optimizer.state  # Adam never stepped
    for name, value in meta.model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_parameters_that_become_non_finite_in_the_step_are_caught_there():
    meta = learner()

    class Overflowing(torch.optim.SGD):  # an update that overflows one weight
        def step(self, closure=None):
            next(meta.model.parameters()).data[0] = float("inf")

    meta.optimizer = Overflowing(meta.model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteError, match=r"^the model after the Adam step is non-finite "
                                             r"\(\S+: 1 of \d+ values\)"):
        meta.step()
    assert meta.iteration == 0


def test_evaluate_refuses_a_curve_that_turns_non_finite_while_it_adapts(tmp_path, capsys):
    assert main(["maml", *TINY, "--num-batches", "2", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "4", "--steps", "3",
                 "--later-lr-scale", "1e38", "--no-baselines", "--no-progress"]) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: the maml score is non-finite after 2 adaptation steps on ")
    assert not (run_dir / "evaluation" / "curve.json").exists()  # no score for it


def test_evaluate_of_fewer_tasks_than_the_figure_shows_writes_its_curve(tmp_path, capsys):
    assert main(["maml", *TINY, "--num-batches", "2", "--output-dir", str(tmp_path)]) == 0
    run_dir = only_run_dir(tmp_path)
    assert main(["evaluate", "--run", str(run_dir), "--num-tasks", "2", "--steps", "1",
                 "--no-baselines", "--no-progress"]) == 0
    assert (run_dir / "evaluation" / "curve.png").stat().st_size > 0


def test_a_held_out_curve_that_overflows_stops_training_naming_the_options(tmp_path, capsys):
    assert main(["maml", "--task", "sine", "--meta-batch-size", "2", "--no-progress",
                 "--fast-lr", "3", "--eval-steps", "50", "--eval-every", "1",
                 "--num-batches", "2", "--output-dir", str(tmp_path)]) == 1
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: diverged at iteration 1: the held-out mse is non-finite "
                           "after ")
    assert "adaptation steps (fast_lr=3, eval_steps=50); fewer --eval-steps, --eval-every 0 " \
        "or a smaller --fast-lr keeps it finite" in line

