"""Omniglot few-shot classification data: archives -> 28x28 arrays -> splits -> episodes.

Omniglot (Lake, Salakhutdinov & Tenenbaum, Science 2015) is read straight from the official zips
of the brendenlake/omniglot repository (``python/``): the full ``images_background.zip`` (964
characters) and ``images_evaluation.zip`` (659), or the two small background subsets
``images_background_small{1,2}.zip``. Every archive is checked against ``KNOWN_ARCHIVES``
(md5, and sha256 where published) before use.

Preprocessing: each 105x105 1-bit PNG is converted to 8-bit greyscale, **inverted so strokes
are 1 and background 0**, and resized to 28x28 with PIL's **LANCZOS** filter (as MAML's
reference ``resize_images.py``). The result is cached as uint8 ``[num_images, 28, 28]`` in an
``.npz`` file (written atomically, named by a key of the archives it holds and the
preprocessing), so later loads skip the PNG decoding. Episodes are float32 in [0, 1].

Identical files shipped in several archives (Greek and Latin are in both small subsets, and the
small subsets are part of ``images_background.zip``) are kept once, keyed by
``(alphabet, character, file name)``. A class is a character, written ``"Alphabet/characterNN"``;
splits are class-disjoint on these keys (never on files), and each character's 90-degree
rotations are further classes that belong to the character's split.

Typical use::

    data = load_omniglot("path/to/zips")
    split = split_characters(data.characters, seed=0, val=0.1, test=0.25)
    train = EpisodeSampler(data, split.train, ways=5, shots=1, queries=15, seed=0)
    batch = train.sample_batch(32)          # batch.support_x: [32, 5, 1, 28, 28]
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import numbers
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

logger = logging.getLogger(__name__)

IMAGE_SIZE = 28
RESAMPLE = Image.Resampling.LANCZOS
ROTATIONS = (0, 90, 180, 270)
# Bump when the preprocessing changes, so old caches are not reused.
PREPROCESSING = f"v1:L-invert-lanczos-{IMAGE_SIZE}"
DOWNLOAD_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}"


@dataclass(frozen=True)
class ArchiveInfo:
    """A known Omniglot zip: file name, size in bytes, md5 and (if published) sha256."""

    name: str
    size: int
    md5: str
    sha256: str | None = None
    downloadable: bool = False


KNOWN_ARCHIVES: dict[str, ArchiveInfo] = {
    info.name: info
    for info in (
        ArchiveInfo(
            "images_background.zip", 9464212, "68d2efa1b9178cc56df9314c21c6e718", None, True
        ),
        ArchiveInfo(
            "images_evaluation.zip", 6462886, "6b91aef0f799c5bb55b94e3f2daec811", None, True
        ),
        ArchiveInfo(
            "images_background_small1.zip",
            1319022,
            "e704a628b5459e08445c13499850abc4",
            "f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
        ),
        ArchiveInfo(
            "images_background_small2.zip",
            1580917,
            "b75a71a51d3b13f821f212756fe481fd",
            "3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
        ),
    )
}
FULL_ARCHIVES = ("images_background.zip", "images_evaluation.zip")


# ----------------------------------------------------------------------------- errors


class OmniglotError(Exception):
    """Base of every Omniglot data error (a CLI can catch this one and exit with code 2)."""


class DataDirNotFoundError(OmniglotError, FileNotFoundError):
    """The data directory does not exist."""


class ArchiveNotFoundError(OmniglotError, FileNotFoundError):
    """No known archive (or a requested one) is in the data directory."""


class ChecksumError(OmniglotError, ValueError):
    """An archive's checksum differs from the known one (corrupt or incomplete file)."""


class UnknownCharacterError(OmniglotError, ValueError):
    """A split names characters that the loaded archives do not hold."""


class TooManyWaysError(OmniglotError, ValueError):
    """More ways were asked for than a split has classes."""


class TooFewDrawingsError(OmniglotError, ValueError):
    """More support + query images per class were asked for than a character has drawings."""


# ----------------------------------------------------------------------------- archives


def file_digests(path: Path) -> dict[str, str]:
    """``{"md5": ..., "sha256": ...}`` hex digests of a file, read in 1 MiB chunks."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def verify_archive(path: str | Path) -> None:
    """Raise ``ChecksumError`` unless ``path`` matches its entry in ``KNOWN_ARCHIVES``."""
    path = Path(path)
    info = KNOWN_ARCHIVES[path.name]
    digests = file_digests(path)
    checks = [("md5", info.md5)] + ([("sha256", info.sha256)] if info.sha256 else [])
    for algo, expected in checks:
        if digests[algo] != expected:
            raise ChecksumError(
                f"checksum mismatch for {path}: {algo} expected {expected}, got {digests[algo]} "
                f"({path.stat().st_size} bytes, expected {info.size}); the file is corrupt or "
                "incomplete, delete it and fetch it again"
            )


def download_archive(name: str, data_dir: str | Path, *, timeout: float = 60.0) -> Path:
    """Fetch ``name`` (one of ``FULL_ARCHIVES``) from the brendenlake/omniglot repository.

    The file is streamed to a temporary file in ``data_dir``, its checksum verified, and only
    then moved into place (``os.replace``), so a failed download never leaves a partial zip.
    """
    info = KNOWN_ARCHIVES.get(name)
    if info is None or not info.downloadable:
        raise ValueError(
            f"cannot download {name!r}; downloadable archives: {', '.join(FULL_ARCHIVES)}"
        )
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    url = DOWNLOAD_URL.format(name=name)
    logger.info("downloading %s to %s", url, data_dir)
    fd, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        digest = file_digests(tmp)["md5"]
        if digest != info.md5:
            raise ChecksumError(
                f"checksum mismatch for {name} downloaded from {url}: md5 expected {info.md5}, "
                f"got {digest}"
            )
        target = data_dir / name
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def find_archives(data_dir: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Known archives in ``data_dir`` (or exactly ``names``), in ``KNOWN_ARCHIVES`` order."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataDirNotFoundError(
            f"Omniglot data directory not found: {data_dir} (point it at the folder holding "
            f"{' / '.join(KNOWN_ARCHIVES)}, or download them: --download at the command line, download=True in code)"
        )
    if names is not None:
        unknown = [n for n in names if n not in KNOWN_ARCHIVES]
        if unknown:
            raise ValueError(
                f"unknown Omniglot archive(s) {unknown}; known: {', '.join(KNOWN_ARCHIVES)}"
            )
        missing = [n for n in names if not (data_dir / n).is_file()]
        if missing:
            raise ArchiveNotFoundError(
                f"Omniglot archive(s) {', '.join(missing)} not found in {data_dir}"
            )
    wanted = [n for n in KNOWN_ARCHIVES if (names is None or n in names)]
    found = [data_dir / n for n in wanted if (data_dir / n).is_file()]
    if not found:
        raise ArchiveNotFoundError(
            f"no known Omniglot archive in {data_dir}; expected one or more of: "
            f"{', '.join(KNOWN_ARCHIVES)}"
        )
    return found


def preprocess_png(data: bytes) -> np.ndarray:
    """A 105x105 Omniglot PNG -> uint8 ``[28, 28]``, strokes bright (255) on a 0 background."""
    with Image.open(io.BytesIO(data)) as image:
        grey = ImageOps.invert(image.convert("L"))
    return np.asarray(grey.resize((IMAGE_SIZE, IMAGE_SIZE), RESAMPLE), dtype=np.uint8)


def _decode_archives(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """Read every PNG of the archives, dedup by (alphabet, character, file), preprocess."""
    entries: dict[tuple[str, str, str], tuple[Path, zipfile.ZipInfo]] = {}
    for path in paths:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                parts = info.filename.split("/")
                if info.is_dir() or not info.filename.endswith(".png") or len(parts) != 4:
                    continue
                key = (parts[1], parts[2], parts[3])
                if key in entries:
                    first_path, first = entries[key]
                    if first.CRC != info.CRC:
                        logger.warning(
                            "%s differs between %s and %s; keeping the first",
                            "/".join(key),
                            first_path.name,
                            path.name,
                        )
                    continue
                entries[key] = (path, info)
    # Sort by the class key string itself so that np.unique below finds contiguous groups.
    keys = sorted(entries, key=lambda k: (f"{k[0]}/{k[1]}", k[2]))
    images = np.empty((len(keys), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    open_archives: dict[Path, zipfile.ZipFile] = {}
    try:
        for i, key in enumerate(keys):
            path, info = entries[key]
            if path not in open_archives:
                open_archives[path] = zipfile.ZipFile(path)
            images[i] = preprocess_png(open_archives[path].read(info))
    finally:
        for archive in open_archives.values():
            archive.close()
    characters = [f"{alphabet}/{character}" for alphabet, character, _ in keys]
    names, starts = np.unique(np.array(characters), return_index=True)
    return {
        "images": images,
        "characters": names,
        "offsets": np.append(starts, len(keys)).astype(np.int64),
        "files": np.array([k[2] for k in keys]),
    }


# ----------------------------------------------------------------------------- dataset


@dataclass(frozen=True, eq=False)
class OmniglotImages:
    """Preprocessed Omniglot images grouped by character.

    Attributes:
        images: uint8 ``[num_images, 28, 28]``, strokes 255, background 0.
        characters: sorted class keys ``"Alphabet/characterNN"``.
        offsets: int64 ``[num_characters + 1]``; character c's images are
            ``images[offsets[c]:offsets[c + 1]]``.
        files: the PNG file name of each image (e.g. ``"0108_01.png"``).
        archives: names of the archives these images came from.
    """

    images: np.ndarray
    characters: tuple[str, ...]
    offsets: np.ndarray
    files: tuple[str, ...]
    archives: tuple[str, ...]

    @property
    def num_characters(self) -> int:
        return len(self.characters)

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def alphabets(self) -> tuple[str, ...]:
        return tuple(sorted({c.split("/")[0] for c in self.characters}))

    def counts(self) -> np.ndarray:
        """Images per character, int64 ``[num_characters]``."""
        return np.diff(self.offsets)

    def index_of(self, characters: Iterable[str]) -> np.ndarray:
        """Positions of ``characters`` in ``self.characters``; raises on unknown keys."""
        lookup = {c: i for i, c in enumerate(self.characters)}
        characters = list(characters)
        unknown = [c for c in characters if c not in lookup]
        if unknown:
            raise UnknownCharacterError(
                f"{len(unknown)} character(s) not in the loaded archives {list(self.archives)}, "
                f"e.g. {unknown[:3]}; was the split made from other archives?"
            )
        return np.array([lookup[c] for c in characters], dtype=np.int64)


def default_cache_dir() -> Path:
    """``$METARL_CACHE_DIR/omniglot`` or ``$XDG_CACHE_HOME/metarl/omniglot`` (``~/.cache``)."""
    if "METARL_CACHE_DIR" in os.environ:
        return Path(os.environ["METARL_CACHE_DIR"]) / "omniglot"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "metarl" / "omniglot"


def cache_key(archives: Sequence[str]) -> str:
    """Names the cache file: a hash of the archives' names and md5s and the preprocessing."""
    blob = json.dumps(
        {"archives": [[n, KNOWN_ARCHIVES[n].md5] for n in sorted(archives)], "prep": PREPROCESSING}
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_cache(path: Path, key: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as cached:
            arrays = {name: cached[name] for name in cached.files}
        if str(arrays.pop("key")) != key:
            logger.warning("ignoring Omniglot cache %s: made for other archives", path)
            return None
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        logger.warning("ignoring unreadable Omniglot cache %s (%s); rebuilding it", path, err)
        return None


def _write_cache(path: Path, key: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def load_omniglot(
    data_dir: str | Path,
    *,
    archives: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    download: bool = False,
) -> OmniglotImages:
    """Load Omniglot from the official zips in ``data_dir``, through a preprocessed cache.

    Args:
        data_dir: folder holding one or more ``KNOWN_ARCHIVES``.
        archives: use exactly these archive names (default: every known archive present).
        cache_dir: where the ``.npz`` cache lives (default ``default_cache_dir()``).
        use_cache: read and write the cache; ``False`` always decodes the zips.
        download: first fetch any of ``FULL_ARCHIVES`` missing from ``data_dir`` (creating it),
            with checksum verification.

    Every archive used is checksum-verified on every call (a few ms per MB); the PNGs are only
    decoded when no cache for exactly these archives exists.

    Raises:
        DataDirNotFoundError, ArchiveNotFoundError, ChecksumError (all ``OmniglotError``).
    """
    data_dir = Path(data_dir)
    if download:
        for name in FULL_ARCHIVES:
            if not (data_dir / name).is_file():
                download_archive(name, data_dir)
    paths = find_archives(data_dir, archives)
    for path in paths:
        verify_archive(path)
    names = tuple(p.name for p in paths)
    key = cache_key(names)
    cache_path = Path(cache_dir or default_cache_dir()) / f"omniglot_{IMAGE_SIZE}px_{key}.npz"
    arrays = _read_cache(cache_path, key) if use_cache and cache_path.is_file() else None
    if arrays is None:
        logger.info("decoding %s (once; cached at %s)", ", ".join(names), cache_path)
        arrays = _decode_archives(paths)
        if use_cache:
            _write_cache(cache_path, key, arrays)
    return OmniglotImages(
        images=arrays["images"],
        characters=tuple(str(c) for c in arrays["characters"]),
        offsets=arrays["offsets"].astype(np.int64),
        files=tuple(str(f) for f in arrays["files"]),
        archives=names,
    )


# ----------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class OmniglotSplit:
    """Class-disjoint character lists (``"Alphabet/characterNN"``), each sorted.

    ``to_dict()`` gives plain lists for a checkpoint (``OmniglotProblem.state_dict``);
    ``from_dict`` restores it.
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    seed: int | None = None

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for name in ("train", "val", "test"):
            for c in getattr(self, name):
                if c in seen:
                    raise ValueError(f"character {c!r} is in both the {seen[c]} and {name} splits")
                seen[c] = name

    def __getitem__(self, name: str) -> tuple[str, ...]:
        if name not in ("train", "val", "test"):
            raise KeyError(f"no split {name!r}; splits are train, val, test")
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OmniglotSplit:
        return cls(
            train=tuple(d["train"]), val=tuple(d["val"]), test=tuple(d["test"]), seed=d.get("seed")
        )


def _split_size(value: int | float, total: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be a count (int) or a fraction (float in [0, 1)), got {value!r}"
        )
    if isinstance(value, numbers.Integral):
        if not 0 <= value <= total:
            raise ValueError(f"{name}={value} characters, but there are {total}; use 0..{total}")
        return int(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"{name}={value} is not a fraction in [0, 1); give a float or an int count"
        )
    return round(value * total)


def split_characters(
    characters: Iterable[str], *, seed: int = 0, val: int | float = 0.1, test: int | float = 0.25
) -> OmniglotSplit:
    """Split characters into disjoint train / val / test sets, deterministically from ``seed``.

    ``val`` and ``test`` are counts (int) or fractions of all characters (float); train gets
    the rest. The split depends only on the set of characters and the seed (they are sorted
    first). Characters from every alphabet can land in every split, as in MAML's Omniglot split;
    rotations are not split here: a character's four rotations follow it.
    """
    pool = sorted(set(characters))
    n_val = _split_size(val, len(pool), "val")
    n_test = _split_size(test, len(pool), "test")
    if n_val + n_test > len(pool):
        raise ValueError(f"val ({n_val}) + test ({n_test}) exceed the {len(pool)} characters")
    order = np.random.default_rng(seed).permutation(len(pool))
    picked = [pool[i] for i in order]
    return OmniglotSplit(
        train=tuple(sorted(picked[n_val + n_test :])),
        val=tuple(sorted(picked[n_test : n_test + n_val])),
        test=tuple(sorted(picked[:n_test])),
        seed=seed,
    )


# ----------------------------------------------------------------------------- episodes


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot task, or a batch of them with a leading task axis ``[T, ...]``.

    Images float32 in [0, 1]; labels int64 in ``0..N-1``, class-major (support ``[0]*K + [1]*K
    + ...``, queries likewise with Q each).

    Attributes:
        support_x: ``[N*K, 1, 28, 28]`` (or ``[T, N*K, 1, 28, 28]``).
        support_y: ``[N*K]`` (or ``[T, N*K]``).
        query_x: ``[N*Q, 1, 28, 28]`` (or ``[T, N*Q, 1, 28, 28]``).
        query_y: ``[N*Q]`` (or ``[T, N*Q]``).
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def to(self, device: torch.device | str) -> Episode:
        return Episode(
            *(t.to(device) for t in (self.support_x, self.support_y, self.query_x, self.query_y))
        )


@dataclass(frozen=True)
class EpisodeIndices:
    """What an episode batch is made of: ``classes [T, N]`` (into ``EpisodeSampler.classes``),
    ``images [T, N, K+Q]`` (rows of ``OmniglotImages.images``; the first K are the support) and
    ``rotations [T, N]`` in degrees."""

    classes: np.ndarray
    images: np.ndarray
    rotations: np.ndarray


class EpisodeSampler:
    """Seeded N-way K-shot episodes from a set of characters and their rotations.

    The classes are every ``(character, rotation)`` pair, so a split of C characters has
    ``C * len(rotations)`` classes; an episode draws N distinct classes uniformly, then K + Q
    distinct drawings of each (support and query never share a drawing), and assigns labels
    ``0..N-1`` in draw order.

    Args:
        data: the loaded images.
        characters: this split's character keys (e.g. ``split.test``).
        ways, shots, queries: N, K and Q.
        rotations: degrees, multiples of 90; ``(0,)`` disables rotation classes.
        seed: seeds a ``numpy.random.Generator``; ``reseed(seed)`` starts it again from another
            seed, ``state_dict()`` / ``load_state_dict`` save and restore it for resuming.
        name: the split's name, for error messages.
    """

    def __init__(
        self,
        data: OmniglotImages,
        characters: Sequence[str],
        *,
        ways: int,
        shots: int,
        queries: int,
        rotations: Sequence[int] = ROTATIONS,
        seed: int = 0,
        name: str = "split",
    ):
        if ways < 1 or shots < 1 or queries < 0:
            raise ValueError(
                f"need ways >= 1, shots >= 1, queries >= 0; got {ways}, {shots}, {queries}"
            )
        bad = [r for r in rotations if r % 90 or not 0 <= r < 360]
        if bad or not rotations or len(set(rotations)) != len(rotations):
            raise ValueError(
                f"rotations must be distinct values from {ROTATIONS}, got {list(rotations)}"
            )
        self.data = data
        self.characters = tuple(characters)
        self.char_index = data.index_of(self.characters)
        self.rotations = tuple(int(r) for r in rotations)
        self.ways, self.shots, self.queries = ways, shots, queries
        self.num_classes = len(self.char_index) * len(self.rotations)
        if ways > self.num_classes:
            raise TooManyWaysError(
                f"ways={ways} but the {name} split has {len(self.char_index)} characters x "
                f"{len(self.rotations)} rotations = {self.num_classes} classes; use ways <= "
                f"{self.num_classes} or give the split more characters"
            )
        counts = data.counts()[self.char_index]
        if len(counts) and counts.min() < shots + queries:
            raise TooFewDrawingsError(
                f"shots + queries = {shots + queries} but some {name} characters have only "
                f"{counts.min()} drawings; use shots + queries <= {counts.min()}"
            )
        self.rng = np.random.default_rng(seed)

    @property
    def classes(self) -> list[str]:
        """Class keys ``"Alphabet/characterNN@rot"``, in class-id order."""
        return [f"{c}@{r}" for c in self.characters for r in self.rotations]

    def reseed(self, seed: int) -> None:
        """Draw the following episodes as a sampler made with ``seed`` would."""
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    def sample_indices(self, num_tasks: int) -> EpisodeIndices:
        """Draw ``num_tasks`` episodes' classes, drawings and rotations (no pixels)."""
        n, m = self.ways, self.shots + self.queries
        classes = np.stack(
            [self.rng.choice(self.num_classes, n, replace=False) for _ in range(num_tasks)]
        )
        chars = self.char_index[classes // len(self.rotations)]
        rotations = np.asarray(self.rotations)[classes % len(self.rotations)]
        starts, counts = self.data.offsets[chars], self.data.counts()[chars]
        if np.all(counts == counts.flat[0]):  # every Omniglot character has 20 drawings
            draws = self.rng.random((*classes.shape, int(counts.flat[0]))).argsort(-1)[..., :m]
        else:
            draws = np.stack(
                [self.rng.choice(c, m, replace=False) for c in counts.reshape(-1)]
            ).reshape(*classes.shape, m)
        return EpisodeIndices(classes, starts[..., None] + draws, rotations)

    def episode_from(self, indices: EpisodeIndices) -> Episode:
        """The batched ``Episode`` (``[T, ...]``) for drawn indices."""
        images = self.data.images[indices.images]  # [T, N, K+Q, 28, 28] uint8 (a copy)
        for rotation in set(self.rotations) - {0}:
            mask = indices.rotations == rotation
            images[mask] = np.rot90(images[mask], rotation // 90, axes=(-2, -1))
        x = torch.from_numpy(images).float().div_(255.0).unsqueeze(-3)  # [T, N, K+Q, 1, 28, 28]
        t, n, k = x.shape[0], self.ways, self.shots
        labels = torch.arange(n)
        return Episode(
            support_x=x[:, :, :k].reshape(t, n * k, *x.shape[-3:]),
            support_y=labels.repeat_interleave(k).expand(t, -1).contiguous(),
            query_x=x[:, :, k:].reshape(t, n * self.queries, *x.shape[-3:]),
            query_y=labels.repeat_interleave(self.queries).expand(t, -1).contiguous(),
        )

    def sample_images(self, n: int, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """``n`` (class, drawing) pairs drawn uniformly: images ``[n, 1, 28, 28]`` (rotated as
        their class says) and class ids ``[n]`` in ``0..num_classes-1`` (``classes`` order);
        for training a plain classifier on this split."""
        classes = rng.integers(self.num_classes, size=n)
        chars = self.char_index[classes // len(self.rotations)]
        draws = (rng.random(n) * self.data.counts()[chars]).astype(np.int64)
        images = self.data.images[self.data.offsets[chars] + draws]
        rotations = np.asarray(self.rotations)[classes % len(self.rotations)]
        for rotation in set(self.rotations) - {0}:
            mask = rotations == rotation
            images[mask] = np.rot90(images[mask], rotation // 90, axes=(-2, -1))
        x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
        return x, torch.from_numpy(classes)

    def sample_batch(self, num_tasks: int) -> Episode:
        """A meta-batch: ``support_x [T, N*K, 1, 28, 28]``, ``support_y [T, N*K]``, etc."""
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        return self.episode_from(self.sample_indices(num_tasks))

    def sample(self) -> Episode:
        """One episode: ``support_x [N*K, 1, 28, 28]``, ``support_y [N*K]``, ``query_x
        [N*Q, 1, 28, 28]``, ``query_y [N*Q]``."""
        batch = self.sample_batch(1)
        return Episode(batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0])
