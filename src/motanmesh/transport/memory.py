"""Giving memory back to the system after a connection that held large buffers has gone.

CPython allocates large buffers with ``malloc``; glibc keeps freed chunks in its arenas, so
the resident size of an agent that once buffered a few MB for a slow connection would stay
at its peak. :func:`release_memory` asks glibc to return what it can (``malloc_trim``); on
other C libraries it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

__all__ = ["release_memory"]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_memory() -> bool:
    """Return freed heap memory to the system; False where that is not possible."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
