"""CPU heap policy: keep freed memory in the process (glibc) instead of handing it back to the OS.

Large tensors are otherwise mmapped afresh and page-faulted in on every pass; raising glibc's mmap
and trim thresholds lets the heap reuse those pages, results bit-identical, at the cost of keeping
the peak heap until exit (measured in docs/performance.md). ``irnbench run`` and ``eval`` apply it
and API users may call :func:`keep_freed_memory`; ``irnbench train`` does not, as training was
never measured with it (docs/experiments.md, "The CPU heap policy"). Skipped (returns False) off
glibc, when ``IRNBENCH_KEEP_FREED_MEMORY=0``, or when the user already tunes malloc through
``GLIBC_TUNABLES`` or ``MALLOC_*`` variables (theirs win).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

#: Environment switch: ``0`` leaves glibc's default heap policy alone.
ENV_VAR = "IRNBENCH_KEEP_FREED_MEMORY"
#: glibc ``mallopt`` parameter numbers (``<malloc.h>``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Both thresholds: blocks below 1 GiB come from the heap, and up to 1 GiB of free heap is kept.
THRESHOLD_BYTES = 1 << 30


def _user_tunes_malloc() -> bool:
    return "malloc" in os.environ.get("GLIBC_TUNABLES", "") or any(
        k.startswith("MALLOC_") for k in os.environ)


@functools.cache
def _glibc(function: str) -> ctypes.CDLL | None:
    """The C library when this is Linux with glibc and it has ``function``, else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, function):
        return None
    return libc


def keep_freed_memory(threshold: int = THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds to ``threshold`` bytes; True if both were applied."""
    if os.environ.get(ENV_VAR, "1").strip() == "0" or _user_tunes_malloc():
        return False
    libc = _glibc("mallopt")
    if libc is None:
        return False  # not Linux with glibc (e.g. musl): no such policy to change
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok_mmap = libc.mallopt(M_MMAP_THRESHOLD, int(threshold))
    if not ok_mmap:  # older glibc caps the mmap threshold at 32 MiB on 64-bit
        ok_mmap = libc.mallopt(M_MMAP_THRESHOLD, min(int(threshold), 32 << 20))
    ok_trim = libc.mallopt(M_TRIM_THRESHOLD, int(threshold))
    return bool(ok_mmap) and bool(ok_trim)


def release_free_memory() -> bool:
    """Hand the free pages inside glibc's heap back to the OS (``malloc_trim(0)``); True if done.

    Loading a training set frees a float copy of each image between the uint8 images it keeps,
    holes the heap may not reuse: trimming after each image keeps the resident set to the data
    held (docs/performance.md). Results unchanged.
    """
    libc = _glibc("malloc_trim")
    if libc is None:
        return False
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    return bool(libc.malloc_trim(0))
