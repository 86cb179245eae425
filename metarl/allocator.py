"""Keep freed tensor memory in the process instead of handing it back to the OS.

PyTorch's CPU tensors come from glibc ``malloc``. With its default, adaptive settings, a
meta-iteration that repeatedly allocates and frees tensors of a few megabytes (the activations
of 40k samples) gives the memory back to the OS at every ``free`` and takes it again, page by
page, at the next ``malloc``; on the 2-core CI machines (a sandboxed VM where page faults are
expensive) this made a 10 MB elementwise op 3-4x slower than the op itself. Fixing both
thresholds stops that: blocks up to 32 MiB come from the heap, and freed heap memory is kept
for reuse (up to 1 GiB of it). This is what the allocators PyTorch recommends for CPU work
(jemalloc, tcmalloc) do by default.

Applied by the command line (``metarl.run.main``) and in every sampler worker process, on glibc
only; a script of its own calls :func:`tune_malloc`. Importing ``metarl`` leaves the allocator
alone. ``METARL_KEEP_MALLOC=1`` leaves it untouched everywhere. Memory use then stays near its
peak instead of falling between steps.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds; returns whether they were set."""
    if os.environ.get("METARL_KEEP_MALLOC") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave it alone
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
