"""Fetch the official Omniglot zips into a folder, checksum-verified.

    python -m metarl.supervised.omniglot.data DIR                  # the full splits
    python -m metarl.supervised.omniglot.data DIR --archives small # the two small subsets

``full``: ``images_background.zip`` and ``images_evaluation.zip`` (964 + 659 characters, the
papers' benchmark; what ``--download`` of a training command fetches). ``small``: the two small
background subsets (242 distinct characters), the data of every Omniglot number in
docs/results.md. Zips already in ``DIR`` are verified and kept. Exit status 2 with one line on
stderr for a failed download or a corrupt zip (as the training commands' Omniglot errors);
nothing partial is left in ``DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from metarl.files import OutputPathError, WriteError, ensure_dir
from metarl.supervised.omniglot.data.archives import (
    ARCHIVE_SETS,
    download_archive,
    verify_archive,
)
from metarl.supervised.omniglot.data.errors import OmniglotError


def fetch(data_dir: str | Path, names: Sequence[str]) -> list[str]:
    """Download each of ``names`` missing from ``data_dir`` and verify those present; one line
    per archive saying which."""
    ensure_dir(data_dir)  # a file or an unwritable folder named before any download
    lines = []
    for name in names:
        path = Path(data_dir) / name
        if path.is_file():
            verify_archive(path)
            lines.append(f"{path}: already there, checksums match")
        else:
            lines.append(f"{download_archive(name, data_dir)}: downloaded, checksums match")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="python -m metarl.supervised.omniglot.data",
        description="Download the official Omniglot zips (brendenlake/omniglot, python/) into "
                    "DIR, for --data-dir DIR.")
    parser.add_argument("data_dir", metavar="DIR", help="folder to put the zips in (created)")
    parser.add_argument("--archives", choices=tuple(ARCHIVE_SETS), default="full",
                        help="full: images_background.zip and images_evaluation.zip; small: "
                             "the two small background subsets (default: full)")
    args = parser.parse_args(argv)
    try:
        for line in fetch(args.data_dir, ARCHIVE_SETS[args.archives]):
            print(line)
    except (OmniglotError, OutputPathError, WriteError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
