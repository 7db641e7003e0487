"""A process's peak resident memory, read the same way by every figure that reports it (the
benchmark's rows, ``metrics.json``, the serving measurements)."""

from __future__ import annotations

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
