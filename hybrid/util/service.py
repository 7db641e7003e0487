"""Telling a supervisor how a long-running job is doing, with the standard library alone.

- systemd's notify protocol (``sd_notify(3)``): under a unit with ``Type=notify`` systemd sets
  ``NOTIFY_SOCKET``; :func:`notify` sends ``READY=1`` (started), ``WATCHDOG=1`` (alive, for
  ``WatchdogSec=``), ``STATUS=...`` and ``STOPPING=1`` there. Without the variable it does nothing.
- :class:`Heartbeat`: a file whose modification time is refreshed at each beat, for supervisors
  that check a file's age (a container health check, a cron job, monit).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def notify(*messages: str) -> bool:
    """Send ``messages`` (``"READY=1"``, ``"WATCHDOG=1"``, ...) to systemd; whether one was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto("\n".join(messages).encode(), address)
    except OSError:
        return False  # systemd gone (shutting down): nothing to tell
    return True


class Heartbeat:
    """``path``'s modification time refreshed by :meth:`beat` (one ``utime`` call; the file is
    created empty at the first)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def beat(self) -> None:
        """Refresh the file's modification time to now."""
        try:
            os.utime(self.path)
        except FileNotFoundError:
            self.path.touch()


class Watchdog:
    """``WATCHDOG=1`` to systemd at most every ``every_s`` seconds: :meth:`alive` is called from
    the job's main loop, so a hung loop stops the pings and systemd restarts the unit."""

    def __init__(self, every_s: float = 1.0):
        self.every_s = every_s
        self._last = float("-inf")

    def alive(self) -> None:
        """Ping systemd's watchdog when ``every_s`` has passed since the last ping."""
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            notify("WATCHDOG=1")
