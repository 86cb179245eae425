"""Run directories and checkpoints: atomic writes, strict loading."""

import pytest
import torch

from metarl.runs import (
    CheckpointError,
    Logger,
    load_checkpoint,
    load_state_dict_strict,
    new_run_dir,
    save_checkpoint,
)


def test_checkpoint_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "iteration": 7, "config": {"seed": 1}}
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded["iteration"] == 7 and loaded["config"] == {"seed": 1}
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert loaded["checksum"].startswith("sha256:") and "checksum" not in state


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"iteration": 1})
    before = path.read_bytes()

    def crash(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"iteration": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left


def test_loading_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": object()}, path)
    with pytest.raises(CheckpointError, match="corrupt or unreadable.*other than tensors and "
                                              "plain values: Unsupported global"):
        load_checkpoint(path)


def test_strict_state_dict_loading_names_the_mismatch():
    module = torch.nn.Linear(2, 3)
    with pytest.raises(CheckpointError, match="does not match this model.*size mismatch"):
        load_state_dict_strict(module, torch.nn.Linear(2, 4).state_dict(), source="ckpt")
    with pytest.raises(CheckpointError, match="Missing key"):
        load_state_dict_strict(module, {"weight": module.weight}, source="ckpt")


def test_run_dirs_are_never_reused(tmp_path):
    first = new_run_dir(tmp_path, "maml", "sine", 0)
    second = new_run_dir(tmp_path, "maml", "sine", 0)
    assert first != second and first.is_dir() and second.is_dir()


def _logged_steps(run_dir, tag):
    """Steps of ``tag`` as TensorBoard shows them (after its purge of a restart's overlap)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_a_resumed_log_keeps_every_completed_step_and_drops_the_stopped_ones(tmp_path):
    first = Logger(tmp_path)
    for step in range(1, 6):  # a process that checkpointed at 3, then logged 4 and 5 and died
        first.scalars({"loss/train": float(step)}, step)
    first.close()
    (stopped,) = tmp_path.glob("events.out.tfevents.*")
    name = stopped.name.split(".")  # events.out.tfevents.{time}.{host}.{pid}.{n}
    name[3] = str(int(name[3]) - 10)  # as if written 10 s before the resumed process
    stopped.rename(stopped.with_name(".".join(name)))
    resumed = Logger(tmp_path, resumed_after=3)
    for step in range(4, 7):
        resumed.scalars({"loss/train": 10.0 + step}, step)
    resumed.close()
    assert _logged_steps(tmp_path, "loss/train") == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 14.0),
                                                     (5, 15.0), (6, 16.0)]
