"""The known Omniglot zips: their checksums, finding them in a folder, and downloading them.

Omniglot (Lake, Salakhutdinov & Tenenbaum, Science 2015) is read straight from the official zips
of the brendenlake/omniglot repository (``python/``): the full ``images_background.zip`` (964
characters) and ``images_evaluation.zip`` (659), or the two small background subsets
``images_background_small{1,2}.zip`` (136 and 156 characters, 242 distinct). Every archive is
checked against ``KNOWN_ARCHIVES`` (md5, and sha256 where published) before use, and a
downloaded one before it is moved into place.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from metarl.files import ensure_dir
from metarl.supervised.omniglot.data.errors import (
    ArchiveNotFoundError,
    ChecksumError,
    DataDirNotFoundError,
    DownloadError,
)

logger = logging.getLogger(__name__)

DOWNLOAD_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/{name}"


@dataclass(frozen=True)
class ArchiveInfo:
    """A known Omniglot zip: file name, size in bytes, md5 and (if published) sha256."""

    name: str
    size: int
    md5: str
    sha256: str | None = None


KNOWN_ARCHIVES: dict[str, ArchiveInfo] = {
    info.name: info
    for info in (
        ArchiveInfo(
            "images_background.zip", 9464212, "68d2efa1b9178cc56df9314c21c6e718"
        ),
        ArchiveInfo(
            "images_evaluation.zip", 6462886, "6b91aef0f799c5bb55b94e3f2daec811"
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
SMALL_ARCHIVES = ("images_background_small1.zip", "images_background_small2.zip")
#: The sets of zips one can ask for by name (``python -m metarl.supervised.omniglot.data``).
ARCHIVE_SETS = {"full": FULL_ARCHIVES, "small": SMALL_ARCHIVES}


def file_digests(path: Path) -> dict[str, str]:
    """``{"md5": ..., "sha256": ...}`` hex digests of a file, read in 1 MiB chunks."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def checksum_mismatch(path: Path, info: ArchiveInfo) -> str | None:
    """What differs between the file ``path`` and ``info`` (md5, then sha256 where
    published), or None when both match."""
    digests = file_digests(path)
    checks = [("md5", info.md5)] + ([("sha256", info.sha256)] if info.sha256 else [])
    for algo, expected in checks:
        if digests[algo] != expected:
            return f"{algo} expected {expected}, got {digests[algo]}"
    return None


def verify_archive(path: str | Path) -> None:
    """Raise ``ChecksumError`` unless ``path`` matches its entry in ``KNOWN_ARCHIVES``."""
    path = Path(path)
    info = KNOWN_ARCHIVES[path.name]
    mismatch = checksum_mismatch(path, info)
    if mismatch:
        raise ChecksumError(
            f"checksum mismatch for {path}: {mismatch} ({path.stat().st_size} bytes, expected "
            f"{info.size}); the file is corrupt or incomplete, delete it and fetch it again"
        )


def download_archive(name: str, data_dir: str | Path, *, timeout: float = 60.0) -> Path:
    """Fetch ``name`` (one of ``KNOWN_ARCHIVES``) from the brendenlake/omniglot repository.

    The file is streamed to a temporary file in ``data_dir``, its checksums verified, and only
    then moved into place (``os.replace``), so a failed download never leaves a partial zip.
    """
    info = KNOWN_ARCHIVES.get(name)
    if info is None:
        raise ValueError(
            f"cannot download {name!r}; known archives: {', '.join(KNOWN_ARCHIVES)}"
        )
    data_dir = ensure_dir(data_dir)  # a file or an unwritable folder: an OutputPathError
    url = DOWNLOAD_URL.format(name=name)
    logger.info("downloading %s to %s", url, data_dir)
    fd, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in _body(url, timeout,
                               hint=f"try again, or copy {name} into {data_dir} by hand"):
                out.write(chunk)
        mismatch = checksum_mismatch(tmp, info)
        if mismatch:
            raise ChecksumError(f"checksum mismatch for {name} downloaded from {url}: {mismatch}")
        target = data_dir / name
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _body(url: str, timeout: float, *, hint: str) -> Iterator[bytes]:
    """The body of ``url`` in 1 MiB chunks; a ``DownloadError`` naming the URL, the reason
    (with the HTTP status where there is one) and ``hint`` for any failure to fetch it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                yield chunk
    except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, TLS, truncation
        if isinstance(error, urllib.error.HTTPError):
            reason = f"HTTP {error.code} {error.reason}"
        else:
            reason = getattr(error, "reason", None) or error
        raise DownloadError(f"could not download {url}: {reason}; {hint}") from error


def find_archives(data_dir: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Known archives in ``data_dir`` (or exactly ``names``), in ``KNOWN_ARCHIVES`` order."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirNotFoundError(f"Omniglot data directory {data_dir} is a file, not a "
                                   f"folder; point --data-dir (data_dir in code) at the folder holding the zips")
    if not data_dir.is_dir():
        raise DataDirNotFoundError(
            f"Omniglot data directory not found: {data_dir}; point --data-dir (data_dir in "
            f"code) at the folder holding the zips, or {fetch_hint(data_dir)}"
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
            f"{', '.join(KNOWN_ARCHIVES)}; {fetch_hint(data_dir)}"
        )
    return found


def fetch_hint(data_dir: Path) -> str:
    """How to put the zips into ``data_dir`` (part of the errors for a missing folder or zip)."""
    return (f"fetch the full splits with `python -m metarl.supervised.omniglot.data {data_dir}` "
            f"(or --download; download=True in code), or the two small subsets with `... "
            f"--archives small` (into a folder of their own: every known zip in it is used)")

