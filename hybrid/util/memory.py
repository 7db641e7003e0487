"""A process's peak resident memory, read the same way by every figure that reports it (the
benchmark's rows, ``metrics.json``, the serving measurements); giving freed memory back."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import resource
import sys


def peak_rss_mb() -> float:
    """This process's peak resident memory so far: ``VmHWM`` of ``/proc/self/status`` on Linux.
    (Not ``getrusage``: its ``ru_maxrss`` keeps the peak of the process that forked this one
    across ``exec``, so a measurement started from a torch process would read torch's memory.)"""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024  # kB
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB elsewhere


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim`` (``None`` on another C library: musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return the C heap's free pages to the system. Reading a 1 M-row CSV leaves ~80 MB of parser
    buffers freed but still counted in the process's RSS (glibc keeps them for reuse), which every
    forked loader worker would then map too; a no-op where glibc is not the C library."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
