"""The Omniglot data errors: one hierarchy under ``OmniglotError``.

They are all here, in one module, so that a caller can catch the base class (the CLI turns it
into a one-line message and exit code 2) and every subclass stays in step with it. Each also
derives from the built-in error it refines (``FileNotFoundError``, ``OSError`` or
``ValueError``).
"""

from __future__ import annotations


class OmniglotError(Exception):
    """Base of every Omniglot data error (a CLI can catch this one and exit with code 2)."""


class DataDirNotFoundError(OmniglotError, FileNotFoundError):
    """The data directory does not exist."""


class ArchiveNotFoundError(OmniglotError, FileNotFoundError):
    """No known archive (or a requested one) is in the data directory."""


class DownloadError(OmniglotError, OSError):
    """An archive could not be fetched (no network, the server's answer, a timeout)."""


class ChecksumError(OmniglotError, ValueError):
    """An archive's checksum differs from the known one (corrupt or incomplete file)."""


class UnknownCharacterError(OmniglotError, ValueError):
    """A split names characters that the loaded archives do not hold."""


class TooManyWaysError(OmniglotError, ValueError):
    """More ways were asked for than a split has classes."""


class TooFewDrawingsError(OmniglotError, ValueError):
    """More support + query images per class were asked for than a character has drawings."""

