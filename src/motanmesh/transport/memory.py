"""How the agent's process uses the C allocator for large buffers.

CPython allocates buffers above 512 bytes with ``malloc``. With glibc's defaults a forwarded
body of tens of KB or more costs page faults on every call: a buffer above the mmap threshold
(128 KB at first) gets its own mapping, unmapped again when freed, and the heap's top is given
back to the system whenever more than the trim threshold is free there, so the next large
buffer faults its pages in again. :func:`tune_for_large_buffers` raises both thresholds so
the buffers of a few MB that a proxy allocates and frees on every call are reused from the
heap (measured in ``benchmarks/README.md``, "Large bodies": 4-5x less CPU per 64 KB frame in
the decoder). Memory a slow connection made the heap grow by is still given back:
:func:`release_memory` asks glibc to return what it can (``malloc_trim``) after such a
connection has gone, and a running agent calls it every ``RELEASE_INTERVAL`` seconds. On
other C libraries both do nothing.
"""

from __future__ import annotations

import ctypes
import os
from typing import Final

__all__ = [
    "MMAP_THRESHOLD",
    "RELEASE_INTERVAL",
    "TRIM_THRESHOLD",
    "release_memory",
    "tune_for_large_buffers",
]

#: buffers up to this size come from the heap instead of a mapping of their own
MMAP_THRESHOLD: Final = 4 * 1024 * 1024
#: free memory at the top of the heap kept for the next buffers instead of given back
TRIM_THRESHOLD: Final = 32 * 1024 * 1024
#: seconds between two calls of :func:`release_memory` by a running agent (one costs well
#: under a millisecond)
RELEASE_INTERVAL: Final = 10.0
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
#: environment variables with which glibc takes the same settings from the operator
_GLIBC_ENV: Final = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def _libc() -> ctypes.CDLL | None:
    try:
        # the process's own symbols, which hold the C library's (ctypes.util would find it by
        # name, at the price of importing shutil, tempfile, bz2 and lzma: 0.9 MB resident)
        libc = ctypes.CDLL(None)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def release_memory() -> bool:
    """Return freed heap memory to the system; False where that is not possible."""
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True


def tune_for_large_buffers(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Keep buffers up to ``mmap_threshold`` on the heap and up to ``trim_threshold`` bytes
    of free heap for reuse. Does nothing (False) without glibc, or when the operator set
    glibc's own malloc variables in the environment."""
    if _LIBC is None or any(name in os.environ for name in _GLIBC_ENV):
        return False
    mmap_set: int = _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    trim_set: int = _LIBC.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    return mmap_set == 1 and trim_set == 1
