"""Omniglot few-shot classification data: archives -> 28x28 arrays -> splits -> episodes.

One module per step, in the order the data flows:

* ``archives``: the known official zips (``KNOWN_ARCHIVES``, checksums), finding them in a
  folder, downloading them (``python -m metarl.supervised.omniglot.data DIR`` from a shell:
  ``__main__``).
* ``images``: decoding and preprocessing the PNGs, dedup across archives, the ``.npz`` cache;
  ``load_omniglot`` -> ``OmniglotImages``.
* ``splits``: the class-disjoint character split (``split_characters`` -> ``OmniglotSplit``).
* ``episodes``: seeded N-way K-shot episodes (``EpisodeSampler`` -> ``Episode``).
* ``errors``: ``OmniglotError`` and its subclasses, the whole hierarchy in one place.

Every public name is importable from here (``from metarl.supervised.omniglot.data import ...``),
and that is where callers import them from. The names here are references: to patch a
module-level name in a test (``preprocess_png``, ``DOWNLOAD_URL``, ``PREPROCESSING``), patch it
in the module that defines it (``data.images``, ``data.archives``), and code that must see
such a patch reads the name through that module (``omniglot.baseline`` reads
``omniglot_images.PREPROCESSING``).

Typical use::

    data = load_omniglot("path/to/zips")
    split = split_characters(data.characters, seed=0, val=0.1, test=0.25)
    train = EpisodeSampler(data, split.train, ways=5, shots=1, queries=15, seed=0)
    batch = train.sample_batch(32)          # batch.support_x: [32, 5, 1, 28, 28]
"""

from metarl.supervised.omniglot.data.archives import (
    ARCHIVE_SETS,
    DOWNLOAD_URL,
    FULL_ARCHIVES,
    KNOWN_ARCHIVES,
    SMALL_ARCHIVES,
    ArchiveInfo,
    download_archive,
    file_digests,
    find_archives,
    verify_archive,
)
from metarl.supervised.omniglot.data.episodes import (
    ROTATIONS,
    Episode,
    EpisodeIndices,
    EpisodeSampler,
)
from metarl.supervised.omniglot.data.errors import (
    ArchiveNotFoundError,
    ChecksumError,
    DataDirNotFoundError,
    DownloadError,
    OmniglotError,
    TooFewDrawingsError,
    TooManyWaysError,
    UnknownCharacterError,
)
from metarl.supervised.omniglot.data.images import (
    IMAGE_SIZE,
    PREPROCESSING,
    RESAMPLE,
    OmniglotImages,
    cache_key,
    default_cache_dir,
    load_omniglot,
    preprocess_png,
)
from metarl.supervised.omniglot.data.splits import OmniglotSplit, split_characters

__all__ = [
    # archives
    "ARCHIVE_SETS",
    "DOWNLOAD_URL",
    "FULL_ARCHIVES",
    "KNOWN_ARCHIVES",
    "SMALL_ARCHIVES",
    "ArchiveInfo",
    "download_archive",
    "file_digests",
    "find_archives",
    "verify_archive",
    # images
    "IMAGE_SIZE",
    "PREPROCESSING",
    "RESAMPLE",
    "OmniglotImages",
    "cache_key",
    "default_cache_dir",
    "load_omniglot",
    "preprocess_png",
    # splits
    "OmniglotSplit",
    "split_characters",
    # episodes
    "ROTATIONS",
    "Episode",
    "EpisodeIndices",
    "EpisodeSampler",
    # errors
    "OmniglotError",
    "DataDirNotFoundError",
    "DownloadError",
    "ArchiveNotFoundError",
    "ChecksumError",
    "UnknownCharacterError",
    "TooManyWaysError",
    "TooFewDrawingsError",
]
