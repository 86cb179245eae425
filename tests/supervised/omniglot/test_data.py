"""Omniglot archives, cache, splits and episodes, on the two shipped small subsets."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl.supervised.omniglot.data import (
    KNOWN_ARCHIVES,
    ArchiveInfo,
    ArchiveNotFoundError,
    ChecksumError,
    DataDirNotFoundError,
    DownloadError,
    EpisodeSampler,
    OmniglotError,
    OmniglotSplit,
    TooFewDrawingsError,
    TooManyWaysError,
    UnknownCharacterError,
    cache_key,
    download_archive,
    file_digests,
    load_omniglot,
    split_characters,
)
from metarl.supervised.omniglot.data import __main__ as fetch_command
from metarl.supervised.omniglot.data import archives as omniglot_archives
from metarl.supervised.omniglot.data import images as omniglot_images


def test_counts_after_dedup(omniglot):
    # Greek and Latin are byte-identical in both subsets: 136 + 156 - 50 shared characters.
    assert omniglot.alphabets == (
        "Balinese", "Early_Aramaic", "Greek", "Japanese_(katakana)", "Korean", "Latin",
        "Sanskrit", "Tagalog",
    )  # fmt: skip
    assert omniglot.num_characters == 242
    assert omniglot.num_images == 4840
    assert set(omniglot.counts().tolist()) == {20}
    assert omniglot.archives == ("images_background_small1.zip", "images_background_small2.zip")
    sampler = EpisodeSampler(omniglot, omniglot.characters, ways=5, shots=1, queries=1)
    assert sampler.num_classes == 4 * 242 == len(set(sampler.classes))
    # Every image of a character really is that character's file, once.
    c = omniglot.characters.index("Greek/character01")
    files = omniglot.files[omniglot.offsets[c] : omniglot.offsets[c + 1]]
    assert len(set(files)) == 20 and all(f.startswith("0394_") for f in files)


def test_preprocessing_inverts_and_resizes(omniglot):
    images = omniglot.images
    assert images.shape == (4840, 28, 28) and images.dtype == np.uint8
    # Strokes bright on a dark background: most pixels are near 0, the border is empty.
    assert np.median(images) == 0 and images.max() == 255
    assert images[:, 0, :].mean() < 5 and images.mean() < 0.15 * 255


def test_only_one_subset(omniglot_dir, tmp_path, monkeypatch):
    # Counting needs no pixels: skip the PNG decoding to keep this test fast.
    monkeypatch.setattr(omniglot_images, "preprocess_png", lambda data: 0)
    data = load_omniglot(
        omniglot_dir, archives=["images_background_small1.zip"], cache_dir=tmp_path
    )
    assert (data.num_characters, data.num_images) == (136, 2720)
    assert len(data.alphabets) == 5


def test_split_is_class_disjoint_and_deterministic(omniglot):
    split = split_characters(omniglot.characters, seed=3, val=0.1, test=60)
    assert (len(split.train), len(split.val), len(split.test)) == (158, 24, 60)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert set().union(*parts) == set(omniglot.characters)
    assert all(not (a & b) for i, a in enumerate(parts) for b in parts[i + 1 :])
    assert split == split_characters(reversed(omniglot.characters), seed=3, val=0.1, test=60)
    assert split != split_characters(omniglot.characters, seed=4, val=0.1, test=60)
    # Serialisable for the run config, and restorable.
    assert OmniglotSplit.from_dict(split.to_dict()) == split
    # Rotations follow their character: no rotated class of one split is in another.
    classes = {
        name: set(EpisodeSampler(omniglot, split[name], ways=5, shots=1, queries=1).classes)
        for name in ("train", "val", "test")
    }
    assert not (classes["train"] & classes["test"]) and not (classes["val"] & classes["test"])
    chars_of = {name: {c.split("@")[0] for c in cs} for name, cs in classes.items()}
    assert chars_of["test"] == set(split.test)


def test_split_errors(omniglot):
    with pytest.raises(ValueError, match="exceed the 242 characters"):
        split_characters(omniglot.characters, val=200, test=100)
    with pytest.raises(ValueError, match="fraction"):
        split_characters(omniglot.characters, test=1.5)
    with pytest.raises(ValueError, match="both the train and test"):
        OmniglotSplit(train=("A/character01",), val=(), test=("A/character01",))
    with pytest.raises(UnknownCharacterError, match="Nope/character01"):
        EpisodeSampler(omniglot, ["Nope/character01"], ways=1, shots=1, queries=1)


def test_episode_shapes_and_labels(omniglot):
    n, k, q = 5, 2, 3
    sampler = EpisodeSampler(omniglot, omniglot.characters[:30], ways=n, shots=k, queries=q, seed=0)
    ep = sampler.sample()
    assert ep.support_x.shape == (n * k, 1, 28, 28) and ep.query_x.shape == (n * q, 1, 28, 28)
    assert (
        ep.support_x.dtype == torch.float32 and 0 <= ep.support_x.min() <= ep.support_x.max() <= 1
    )
    assert ep.support_y.tolist() == [c for c in range(n) for _ in range(k)]
    assert ep.query_y.tolist() == [c for c in range(n) for _ in range(q)]
    batch = sampler.sample_batch(4)
    assert batch.support_x.shape == (4, n * k, 1, 28, 28)
    assert batch.support_y.shape == (4, n * k) and batch.query_y.shape == (4, n * q)
    assert batch.query_x.shape == (4, n * q, 1, 28, 28)


def test_episode_classes_and_drawings(omniglot):
    n, k, q = 5, 1, 15
    sampler = EpisodeSampler(omniglot, omniglot.characters[:10], ways=n, shots=k, queries=q, seed=1)
    idx = sampler.sample_indices(50)
    assert idx.classes.shape == (50, n) and idx.images.shape == (50, n, k + q)
    for t in range(50):
        assert len(set(idx.classes[t])) == n  # N distinct classes
        # Support and query never share a drawing of a class. (Two rotations of one character
        # are two classes and may meet in an episode, each with its own rotated drawings.)
        drawings = {(i, r) for j, r in enumerate(idx.rotations[t]) for i in idx.images[t, j]}
        assert len(drawings) == n * (k + q)
        for j, cls in enumerate(idx.classes[t]):
            c = sampler.char_index[cls // 4]  # every drawing belongs to the class's character
            assert np.all(
                (omniglot.offsets[c] <= idx.images[t, j])
                & (idx.images[t, j] < omniglot.offsets[c + 1])
            )
    # Pixels: a class's images are its character's drawings, rotated by its rotation.
    ep = sampler.episode_from(idx)
    t, j = np.argwhere(idx.rotations == 90)[0]
    expected = np.rot90(omniglot.images[idx.images[t, j, 0]], 1) / 255.0
    np.testing.assert_allclose(ep.support_x[t, j * k, 0].numpy(), expected, atol=1e-6)
    expected = omniglot.images[idx.images[t, j, k + 2]]
    np.testing.assert_allclose(
        ep.query_x[t, j * q + 2, 0].numpy(), np.rot90(expected, 1) / 255.0, atol=1e-6
    )
    assert set(np.unique(idx.rotations)) == {0, 90, 180, 270}


def test_sampler_is_seeded_and_resumable(omniglot):
    def make(seed):
        return EpisodeSampler(omniglot, omniglot.characters, ways=5, shots=1, queries=2, seed=seed)

    a, b = make(7), make(7)
    assert torch.equal(a.sample_batch(3).query_x, b.sample_batch(3).query_x)
    assert not torch.equal(make(8).sample_batch(3).query_x, make(7).sample_batch(3).query_x)
    state = a.state_dict()
    first = a.sample_batch(2)
    b.load_state_dict(state)
    assert torch.equal(first.support_x, b.sample_batch(2).support_x)
    # reseed(s) continues as a sampler made with seed s, and state_dict still follows it.
    a.reseed(8)
    assert torch.equal(a.sample_batch(3).query_x, make(8).sample_batch(3).query_x)
    state = a.state_dict()
    first = a.sample_batch(2)
    a.reseed(9)
    a.load_state_dict(state)
    assert torch.equal(first.support_x, a.sample_batch(2).support_x)


def test_too_many_ways(omniglot):
    with pytest.raises(
        TooManyWaysError, match="test split has 3 characters x 4 rotations = 12 classes"
    ):
        EpisodeSampler(omniglot, omniglot.characters[:3], ways=13, shots=1, queries=1, name="test")
    EpisodeSampler(omniglot, omniglot.characters[:3], ways=12, shots=1, queries=1)
    with pytest.raises(TooFewDrawingsError, match="shots \\+ queries = 21") as error:
        EpisodeSampler(omniglot, omniglot.characters[:3], ways=2, shots=1, queries=20)
    assert isinstance(error.value, OmniglotError) and isinstance(error.value, ValueError)


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataDirNotFoundError, match="not found: .*nowhere") as info:
        load_omniglot(missing, cache_dir=tmp_path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, OmniglotError)


def test_no_known_archive(tmp_path):
    (tmp_path / "other.zip").write_bytes(b"x")
    with pytest.raises(ArchiveNotFoundError, match="images_background.zip, images_evaluation.zip"):
        load_omniglot(tmp_path, cache_dir=tmp_path)
    with pytest.raises(ArchiveNotFoundError, match="images_background_small2.zip not found"):
        load_omniglot(tmp_path, archives=["images_background_small2.zip"], cache_dir=tmp_path)


def test_checksum_failure_on_corrupted_copy(omniglot_dir, tmp_path):
    name = "images_background_small1.zip"
    copy = tmp_path / name
    shutil.copyfile(omniglot_dir / name, copy)
    data = bytearray(copy.read_bytes())
    data[1000:1010] = bytes(b ^ 0xFF for b in data[1000:1010])
    copy.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        load_omniglot(tmp_path, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert name in message and KNOWN_ARCHIVES[name].md5 in message
    assert file_digests(copy)["md5"] in message and "\n" not in message
    assert not (tmp_path / "cache").exists()  # nothing decoded or cached


def test_cache_reused_and_keyed_by_archives(
    omniglot, omniglot_dir, omniglot_cache_dir, monkeypatch
):
    # The session fixture wrote the cache; loading again must not decode any PNG.
    cached = list(Path(omniglot_cache_dir).glob("*.npz"))
    assert len(cached) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("the zips were decoded although a cache exists")

    monkeypatch.setattr(omniglot_images, "_decode_archives", no_decoding)
    again = load_omniglot(omniglot_dir, cache_dir=omniglot_cache_dir)
    np.testing.assert_array_equal(again.images, omniglot.images)
    assert again.characters == omniglot.characters and again.files == omniglot.files
    # Another set of archives has another cache key, so this cache is not reused for it.
    with pytest.raises(AssertionError, match="decoded"):
        load_omniglot(
            omniglot_dir, archives=["images_background_small2.zip"], cache_dir=omniglot_cache_dir
        )
    assert cache_key(["images_background_small1.zip"]) != cache_key(omniglot.archives)


def test_unreadable_cache_is_rebuilt(omniglot_dir, tmp_path, monkeypatch):
    archives = ["images_background_small1.zip"]
    path = tmp_path / f"omniglot_28px_{cache_key(archives)}.npz"
    path.write_bytes(b"not an npz")
    small = {"images": np.zeros((1, 28, 28), np.uint8), "characters": np.array(["A/character01"]),
             "offsets": np.array([0, 1]), "files": np.array(["x.png"])}  # fmt: skip
    monkeypatch.setattr(omniglot_images, "_decode_archives", lambda paths: small)
    data = load_omniglot(omniglot_dir, archives=archives, cache_dir=tmp_path)
    assert data.characters == ("A/character01",)
    assert load_omniglot(omniglot_dir, archives=archives, cache_dir=tmp_path).num_images == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_download_rejects_unknown_archive(tmp_path):
    with pytest.raises(ValueError, match="'images_test.zip'; known archives: "
                                         "images_background.zip, images_evaluation.zip, "
                                         "images_background_small1.zip, "
                                         "images_background_small2.zip$"):
        download_archive("images_test.zip", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_fetch_command_downloads_the_small_subsets_then_verifies_them_in_place(
        omniglot_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(omniglot_archives, "DOWNLOAD_URL", omniglot_dir.as_uri() + "/{name}")
    target = tmp_path / "data"
    assert fetch_command.main([str(target), "--archives", "small"]) == 0
    names = ("images_background_small1.zip", "images_background_small2.zip")
    assert sorted(p.name for p in target.iterdir()) == list(names)
    for name in names:
        assert (target / name).read_bytes() == (omniglot_dir / name).read_bytes()
    assert capsys.readouterr().out.splitlines() == [
        f"{target / name}: downloaded, checksums match" for name in names]
    monkeypatch.setattr(omniglot_archives, "DOWNLOAD_URL", "file:///nowhere/{name}")
    assert fetch_command.main([str(target), "--archives", "small"]) == 0  # nothing fetched
    assert capsys.readouterr().out.splitlines() == [
        f"{target / name}: already there, checksums match" for name in names]


def test_the_fetch_command_fails_in_one_line_and_keeps_nothing_partial(tmp_path, monkeypatch,
                                                                       capsys):
    source = tmp_path / "server"
    source.mkdir()
    (source / "images_background.zip").write_bytes(b"not the real archive")
    monkeypatch.setattr(omniglot_archives, "DOWNLOAD_URL", source.as_uri() + "/{name}")
    target = tmp_path / "data"
    assert fetch_command.main([str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checksum mismatch for images_background.zip downloaded from "
                          "file://") and err.count("\n") == 1
    assert list(target.iterdir()) == []
    (target / "images_evaluation.zip").write_bytes(b"corrupt")  # a zip of the user's: kept
    (source / "images_background.zip").unlink()  # and the first now fails to download
    assert fetch_command.main([str(target)]) == 2
    assert capsys.readouterr().err == (
        f"error: could not download {source.as_uri()}/images_background.zip: [Errno 2] No such "
        f"file or directory: '{source / 'images_background.zip'}'; try again, or copy "
        f"images_background.zip into {target} by hand\n")
    assert sorted(p.name for p in target.iterdir()) == ["images_evaluation.zip"]
    afile = tmp_path / "afile"
    afile.write_text("")
    assert fetch_command.main([str(afile)]) == 2
    assert capsys.readouterr().err == (f"error: cannot write in {afile}: {afile} is a file, not a "
                                       f"folder; give a folder (it is created if missing)\n")
    with pytest.raises(SystemExit):
        fetch_command.main([str(target), "--archives", "medium"])
    err = capsys.readouterr().err
    assert "--archives: invalid choice: 'medium' (choose from" in err
    assert "full" in err and "small" in err


@pytest.mark.parametrize("failure, reason", [
    ("status", "HTTP 404 Not Found"),
    ("truncated", "IncompleteRead(5 bytes read, 10 more expected)"),
])
def test_a_failed_download_is_one_download_error_naming_the_url(failure, reason, tmp_path,
                                                                monkeypatch):
    import http.client
    import io
    import urllib.error

    class Truncated(io.BytesIO):
        def read(self, size=-1):
            raise http.client.IncompleteRead(b"12345", 10)

    def urlopen(url, timeout):
        if failure == "status":
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)
        return Truncated()

    monkeypatch.setattr(omniglot_archives.urllib.request, "urlopen", urlopen)
    with pytest.raises(DownloadError, match=rf"^could not download \S+/images_background.zip: "
                                            rf"{re.escape(reason)}; try again, or copy "):
        download_archive("images_background.zip", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_download_verifies_checksum_and_leaves_no_partial_file(tmp_path, monkeypatch):
    source = tmp_path / "server"
    source.mkdir()
    (source / "images_background.zip").write_bytes(b"not the real archive")
    monkeypatch.setattr(omniglot_archives, "DOWNLOAD_URL", source.as_uri() + "/{name}")
    target = tmp_path / "data"
    with pytest.raises(ChecksumError, match="images_background.zip downloaded from file://"):
        download_archive("images_background.zip", target)
    assert list(target.iterdir()) == []
    fake = ArchiveInfo(
        "images_background.zip",
        20,
        file_digests(source / "images_background.zip")["md5"],
    )
    monkeypatch.setitem(KNOWN_ARCHIVES, "images_background.zip", fake)
    path = download_archive("images_background.zip", target)
    assert path.read_bytes() == b"not the real archive" and [p.name for p in target.iterdir()] == [
        path.name
    ]
