"""OmniglotProblem: the saved split, resume compatibility and episode sampling.

The PNGs are not decoded here (``preprocess_png`` is replaced by blank images): what is tested
is which characters a problem uses, not their pixels.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metarl.runs import CheckpointError, load_checkpoint, save_checkpoint
from metarl.supervised.omniglot.data import ArchiveNotFoundError, EpisodeSampler, OmniglotError
from metarl.supervised.omniglot.data import images as omniglot_images
from metarl.supervised.omniglot.problem import OmniglotConfig, OmniglotProblem
from metarl.supervised.trainer import MetaLearner

SMALL1, SMALL2 = "images_background_small1.zip", "images_background_small2.zip"


@pytest.fixture(autouse=True)
def blank_images(monkeypatch):
    monkeypatch.setattr(omniglot_images, "preprocess_png", lambda data: 0)


@pytest.fixture
def data_dir(tmp_path: Path, omniglot_dir: Path):
    """``add(name)`` / ``remove(name)`` put a shipped archive in (or take it out of) a folder."""
    folder = tmp_path / "data"
    folder.mkdir()

    class Folder:
        path = folder

        @staticmethod
        def add(name: str) -> None:
            (folder / name).symlink_to(omniglot_dir / name)

        @staticmethod
        def remove(name: str) -> None:
            (folder / name).unlink()

    return Folder


def config_for(data_dir, tmp_path: Path, **overrides) -> OmniglotConfig:
    settings = {"meta_batch_size": 2, "queries": 2, **overrides}
    return OmniglotConfig(data_dir=str(data_dir.path), cache_dir=str(tmp_path / "cache"),
                          **settings)


def test_a_saved_split_survives_archives_added_to_the_data_folder(data_dir, tmp_path):
    data_dir.add(SMALL1)
    config = config_for(data_dir, tmp_path)
    first = OmniglotProblem(config)
    save_checkpoint(tmp_path / "state.pt", {"problem": first.state_dict()})
    state = load_checkpoint(tmp_path / "state.pt")["problem"]  # weights_only=True round trip
    assert state["archives"] == [SMALL1]

    data_dir.add(SMALL2)
    later = OmniglotProblem(config)
    assert set(later.split.test) - set(first.split.train) - set(first.split.test)
    assert set(later.split.test) & set(first.split.train)  # re-split: training chars held out
    later.load_state_dict(state, source="ckpt")
    assert later.split == first.split and later.data.archives == (SMALL1,)
    assert later.samplers["test"].characters == first.split.test
    episodes = [p.meta_batch(3, torch.Generator().manual_seed(5), split="test")
                for p in (first, later)]
    assert torch.equal(episodes[0][0][0], episodes[1][0][0])


def test_a_saved_split_whose_archive_is_gone_is_a_one_line_error(data_dir, tmp_path):
    data_dir.add(SMALL2)
    state = OmniglotProblem(config_for(data_dir, tmp_path)).state_dict()
    data_dir.remove(SMALL2)
    data_dir.add(SMALL1)
    problem = OmniglotProblem(config_for(data_dir, tmp_path))
    with pytest.raises(ArchiveNotFoundError) as error:
        problem.load_state_dict(state, source="run/checkpoint.pt")
    message = str(error.value)
    assert isinstance(error.value, OmniglotError) and "\n" not in message
    assert message.startswith("run/checkpoint.pt was trained on the characters of " + SMALL2)
    assert f"{SMALL2} not found in {data_dir.path}" in message
    assert problem.data.archives == (SMALL1,)  # unchanged


@pytest.mark.parametrize("state, expected", [
    ({"archives": [SMALL1]}, "malformed"),
    ({"archives": ["other.zip"], "split": {"train": [], "val": [], "test": []}}, "other.zip"),
])
def test_a_malformed_saved_split_is_a_checkpoint_error(data_dir, tmp_path, state, expected):
    data_dir.add(SMALL1)
    problem = OmniglotProblem(config_for(data_dir, tmp_path))
    with pytest.raises(CheckpointError, match=expected):
        problem.load_state_dict(state, source="ckpt")


def test_meta_batch_refuses_an_unknown_split_and_reseeds_the_sampler(data_dir, tmp_path,
                                                                    monkeypatch):
    data_dir.add(SMALL1)
    problem = OmniglotProblem(config_for(data_dir, tmp_path))
    with pytest.raises(ValueError, match="split='val' is not valid; choose from: train, test"):
        problem.meta_batch(2, torch.Generator(), split="val")
    seeds = []
    real = EpisodeSampler.reseed
    monkeypatch.setattr(EpisodeSampler, "reseed",
                        lambda self, seed: seeds.append(seed) or real(self, seed))
    problem.meta_batch(2, torch.Generator().manual_seed(0), split="test")
    assert len(seeds) == 1


@pytest.mark.parametrize("queries, shots, valid", [
    (2, 18, True), (2, 19, False), (15, 5, True), (15, 6, False), (2, 0, False)])
def test_shots_are_checked_against_the_drawings_the_queries_leave(data_dir, tmp_path, queries,
                                                                  shots, valid):
    """Each of Omniglot's characters has 20 drawings; an episode's queries take Q of them per
    class, so K in 1..20 - Q support images fit beside them."""
    from metarl.config import ConfigError

    data_dir.add(SMALL1)
    problem = OmniglotProblem(config_for(data_dir, tmp_path, queries=queries))
    if valid:
        problem.check_shots(shots)
        return
    with pytest.raises(ConfigError) as refused:
        problem.check_shots(shots)
    assert str(refused.value) == (
        f"--shots {shots} is out of range: use 1..{20 - queries} (the run's characters have 20 "
        f"drawings each, and its episodes take {queries} of them per class as queries)")


def test_checkpoints_hold_the_split_and_old_ones_still_load(data_dir, tmp_path):
    data_dir.add(SMALL1)
    config = config_for(data_dir, tmp_path)
    learner = MetaLearner(OmniglotProblem(config), config)
    state = learner.state()
    assert state["problem"] == learner.problem.state_dict()
    old = {k: v for k, v in state.items() if k != "problem"}  # written before the split was
    data_dir.add(SMALL2)
    resumed = MetaLearner(OmniglotProblem(config), config)
    resumed.load(old, source="old")  # rebuilt from the seed, as before
    assert resumed.problem.data.archives == (SMALL1, SMALL2)
    resumed.load(state, source="new")
    assert resumed.problem.split == learner.problem.split


@pytest.mark.parametrize("key, value", [("split_seed", 1), ("test_fraction", 0.5),
                                        ("rotations", False), ("shots", 2), ("queries", 3)])
def test_a_checkpoint_with_other_tasks_is_refused(data_dir, tmp_path, key, value):
    data_dir.add(SMALL1)
    config = config_for(data_dir, tmp_path)
    state = MetaLearner(OmniglotProblem(config), config).state()
    other = config_for(data_dir, tmp_path, **{key: value})
    with pytest.raises(CheckpointError, match=f"saved with {key}="):
        MetaLearner(OmniglotProblem(other), other).load(state, source="ckpt")
