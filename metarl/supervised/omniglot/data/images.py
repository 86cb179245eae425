"""Omniglot's PNGs as 28x28 arrays grouped by character, decoded once and cached.

Preprocessing: each 105x105 1-bit PNG is converted to 8-bit greyscale, **inverted so strokes
are 1 and background 0**, and resized to 28x28 with PIL's **LANCZOS** filter (as MAML's
reference ``resize_images.py``). The result is cached as uint8 ``[num_images, 28, 28]`` in an
``.npz`` file (written atomically, named by a key of the archives it holds and the
preprocessing), so later loads skip the PNG decoding.

Identical files shipped in several archives (Greek and Latin are in both small subsets, and the
small subsets are part of ``images_background.zip``) are kept once, keyed by
``(alphabet, character, file name)``. The images are grouped by character, written
``"Alphabet/characterNN"`` (``OmniglotImages.characters``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from metarl.files import atomic_open, ensure_dir
from metarl.supervised.omniglot.data.archives import (
    FULL_ARCHIVES,
    KNOWN_ARCHIVES,
    download_archive,
    find_archives,
    verify_archive,
)
from metarl.supervised.omniglot.data.errors import UnknownCharacterError

logger = logging.getLogger(__name__)

IMAGE_SIZE = 28
RESAMPLE = Image.Resampling.LANCZOS
# Bump when the preprocessing changes, so old caches are not reused.
PREPROCESSING = f"v1:L-invert-lanczos-{IMAGE_SIZE}"


# ----------------------------------------------------------------------------- decoding


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


# ----------------------------------------------------------------------------- dataset and cache


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
    """Write ``arrays`` to ``path`` atomically (``metarl.files.atomic_open``: an unwritable
    folder is an OutputPathError, a full disk a WriteError, and neither leaves a partial
    file)."""
    with atomic_open(path, "wb") as f:
        np.savez(f, key=np.array(key), **arrays)


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
        DataDirNotFoundError, ArchiveNotFoundError, ChecksumError (all ``OmniglotError``);
        ``metarl.files.OutputPathError`` when the cache must be written and ``cache_dir`` is
        a file or not writable, ``metarl.files.WriteError`` when the disk is full.
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
        if use_cache:  # fail before decoding, not after, if the cache cannot be written
            ensure_dir(cache_path.parent)
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
