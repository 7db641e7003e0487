"""CSV files that a long-running process appends to and a power cut cannot tear: :class:`CsvJournal`.

Each append is whole lines written with one ``os.write`` loop on an ``O_APPEND`` descriptor, so a
killed process (``kill -9``) leaves every line it wrote whole; ``fsync`` runs on every append
asked to be durable and otherwise at most every ``sync_every_s`` seconds, so a power cut loses at
most that much of the rest. A file found torn at its end (a power cut between the data and its
size reaching the disk) is cut back to its last whole line when it is opened again, and the
number of bytes dropped is reported. Earlier lines are never rewritten.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path

from hybrid.errors import DataError
from hybrid.util.atomic import fsync_path


def cut_torn_end(path: Path) -> int:
    """Cut ``path`` back to its last newline; how many bytes were dropped (0: it was whole)."""
    size = path.stat().st_size
    if not size:
        return 0
    with open(path, "rb+") as handle:
        tail_start = max(0, size - 65536)
        handle.seek(tail_start)
        tail = handle.read()
        if tail.endswith(b"\n"):
            return 0
        cut = tail.rfind(b"\n")
        keep = tail_start + cut + 1 if cut >= 0 else 0
        handle.truncate(keep)
        os.fsync(handle.fileno())
        return size - keep


def csv_text(rows: Sequence[Sequence]) -> str:
    """``rows`` as CSV lines (``\\n`` ends each), as the csv module quotes them."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


class CsvJournal:
    """An append-only CSV file with ``header``: created with it (durably), or reopened when it
    already starts with it (torn end cut: ``dropped_bytes``); another header is refused in one
    line naming the file."""

    def __init__(self, path: Path, header: Sequence[str], sync_every_s: float):
        self.path, self.sync_every_s = Path(path), sync_every_s
        self.dropped_bytes = 0
        line = csv_text([header])
        if self.path.exists():
            self.dropped_bytes = cut_torn_end(self.path)
            with open(self.path, newline="") as handle:
                found = handle.readline()
            if found and found != line:
                raise DataError(f"{self.path}: its columns are not {', '.join(header)} (another model's run?)")
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._synced_at = time.monotonic()
        if new:
            self.append([header], durable=True)
            fsync_path(self.path.parent)

    def append(self, rows: Sequence[Sequence], *, durable: bool = False) -> None:
        """Append ``rows`` as whole lines; fsync when ``durable`` or ``sync_every_s`` has passed."""
        data = csv_text(rows).encode()
        while data:
            data = data[os.write(self._fd, data) :]
        if durable or time.monotonic() - self._synced_at >= self.sync_every_s:
            self.sync()

    def sync(self) -> None:
        """fsync what was appended."""
        os.fsync(self._fd)
        self._synced_at = time.monotonic()

    def close(self) -> None:
        """fsync and close (idempotent)."""
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1


def last_row(path: Path) -> list[str] | None:
    """The last whole CSV row of ``path`` (a torn last line is not one; ``None``: only a header,
    or no file)."""
    if not path.exists():
        return None
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        tail = handle.read().decode(errors="replace")
    lines = tail.split("\n")[:-1]  # what follows the last newline is torn (or nothing)
    with open(path, newline="") as handle:
        handle.readline()
        header_only = not handle.readline().endswith("\n")
    if header_only or not lines:
        return None
    return next(csv.reader([lines[-1]]))
