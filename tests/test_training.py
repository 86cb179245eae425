"""The one training loop (metarl.training.train), driven with a minimal Trainer: what it logs,
when it checkpoints, where it resumes, and how a non-finite step or Ctrl-C stops it."""

from dataclasses import dataclass

import pytest
import torch

from metarl.nonfinite import DivergenceError, NonFiniteError
from metarl.runs import Logger, load_checkpoint
from metarl.training import train


@dataclass
class Budget:
    num_batches: int
    checkpoint_every: int


class CountingTrainer:
    """A Trainer whose state is one tensor equal to its iteration; ``fail_at`` maps an
    iteration (counted from 1) to the exception its step raises."""

    name = "counting"
    layout = {"curve": ["curve/step_0", "curve/step_1"]}

    def __init__(self, num_batches, checkpoint_every, *, curve_at=(), fail_at=None,
                 poison_at=None):
        self.config = Budget(num_batches, checkpoint_every)
        self.iteration = 0
        self.weight = torch.zeros(())
        self.curve_at, self.fail_at = set(curve_at), dict(fail_at or {})
        self.poison_at = poison_at  # the iteration whose step makes the weight NaN, unnoticed
        self.stepped, self.saved = [], []

    def step(self):
        if self.iteration + 1 in self.fail_at:
            raise self.fail_at[self.iteration + 1]
        self.iteration += 1
        self.weight += float("nan") if self.iteration == self.poison_at else 1
        self.stepped.append(self.iteration)
        values = {"loss/train": float(self.iteration)}
        if self.iteration in self.curve_at:
            values.update({"curve/step_0": 1.0, "curve/step_1": 0.5})
        return values

    def summary(self, values):
        return f"at {self.iteration}" if self.iteration % 2 == 0 else None

    def state(self):
        self.saved.append(self.iteration)
        return {"iteration": self.iteration, "nested": [{"weight": self.weight.clone()}]}

    def load(self, state, *, source):
        self.iteration, self.weight = state["iteration"], state["nested"][0]["weight"].clone()

    def close(self):
        pass


def test_the_loop_steps_to_num_batches_and_checkpoints_every_n_and_at_the_end(tmp_path):
    trainer = CountingTrainer(5, 2)
    last = train(trainer, tmp_path, progress=False)
    assert trainer.stepped == [1, 2, 3, 4, 5]
    assert trainer.saved == [2, 4, 5]
    assert last == {"loss/train": 5.0}
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["iteration"] == 5 and state["nested"][0]["weight"].item() == 5.0


def test_a_loaded_trainer_continues_from_its_iteration_and_a_finished_one_saves_once(tmp_path):
    first = CountingTrainer(3, 10)
    train(first, tmp_path, progress=False)
    resumed = CountingTrainer(5, 10)
    resumed.load(load_checkpoint(tmp_path / "checkpoint.pt"), source="test")
    train(resumed, tmp_path, progress=False)
    assert resumed.stepped == [4, 5] and resumed.saved == [5]
    # nothing left to train: no step, and the checkpoint that exists is kept as it is
    done = CountingTrainer(5, 10)
    done.load(load_checkpoint(tmp_path / "checkpoint.pt"), source="test")
    assert train(done, tmp_path, progress=False) == {}
    assert done.stepped == [] and done.saved == []
    # a new run with nothing to train still writes its checkpoint
    empty = CountingTrainer(0, 10)
    train(empty, tmp_path / "empty", progress=False)
    assert empty.saved == [0] and (tmp_path / "empty" / "checkpoint.pt").is_file()


def test_a_non_finite_step_is_a_divergence_that_names_the_last_checkpoint(tmp_path):
    trainer = CountingTrainer(6, 2, fail_at={4: NonFiniteError("meta_loss is nan")})
    with pytest.raises(DivergenceError) as raised:
        train(trainer, tmp_path, progress=False)
    assert str(raised.value) == ("diverged at iteration 4: meta_loss is nan; the last finite "
                                 f"checkpoint (iteration 2) is intact: {tmp_path / 'checkpoint.pt'}")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 2
    early = CountingTrainer(6, 2, fail_at={1: NonFiniteError("meta_loss is inf")})
    with pytest.raises(DivergenceError, match="no checkpoint had been written yet"):
        train(early, tmp_path / "early", progress=False)
    assert not (tmp_path / "early" / "checkpoint.pt").exists()


def test_a_non_finite_state_to_checkpoint_is_a_divergence_and_is_neither_saved_nor_logged(
        tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = CountingTrainer(6, 2, poison_at=3)  # the step does not notice; the state does
    with pytest.raises(DivergenceError) as raised:
        train(trainer, tmp_path, progress=False)
    assert str(raised.value).startswith("diverged at iteration 4: the state to checkpoint is "
                                        "non-finite (nested.0.weight: 1 of 1 values); the last "
                                        "finite checkpoint (iteration 2) is intact")
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 2
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2, 3]


def test_ctrl_c_leaves_the_last_checkpoint_and_the_logged_steps(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = CountingTrainer(6, 2, fail_at={4: KeyboardInterrupt()})
    with pytest.raises(KeyboardInterrupt):
        train(trainer, tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 2
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2, 3]


def test_the_layout_is_written_once_at_the_first_iteration_that_logs_all_its_tags(
        tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(Logger, "layout", lambda self, layout: written.append(dict(layout)))
    train(CountingTrainer(2, 10), tmp_path / "never", progress=False)
    assert written == []
    trainer = CountingTrainer(6, 10, curve_at=(3, 6))
    monkeypatch.setattr(Logger, "scalars", lambda self, values, step: written.append(step))
    train(trainer, tmp_path / "curve", progress=False)
    assert written == [1, 2, 3, CountingTrainer.layout, 4, 5, 6]


def test_the_progress_bar_keeps_its_text_where_the_summary_is_none(tmp_path, capsys):
    train(CountingTrainer(3, 10), tmp_path, progress=True)
    bar = capsys.readouterr().err.strip().splitlines()[-1].split("\r")[-1]
    assert bar.startswith("counting: 100%") and bar.endswith("it/s, at 2]")


def test_the_supervised_held_out_curve_is_part_of_the_step_on_the_iterations_it_evaluates():
    from metarl.supervised.sine.problem import SineConfig, SineProblem
    from metarl.supervised.trainer import MetaLearner

    config = SineConfig(num_batches=10, meta_batch_size=2, eval_every=2, eval_tasks=2,
                        eval_steps=1)
    learner = MetaLearner(SineProblem(), config)
    assert learner.layout == {"adaptation curve (mse)": ["adaptation/mse_step_0",
                                                         "adaptation/mse_step_1"]}
    first, second = learner.step(), learner.step()
    assert not any(tag.startswith("adaptation/") for tag in first)
    assert learner.summary(first) is None  # kept: no curve, and not a 10th iteration
    assert set(learner.layout["adaptation curve (mse)"]) <= set(second)
    assert learner.summary(second).startswith(f"loss {second['train/meta_loss']:.3f} | "
                                              "held-out mse: step0 ")
    learner.iteration = 10
    assert learner.summary({"train/meta_loss": 1.0}) == "loss 1.000"  # every 10th iteration
