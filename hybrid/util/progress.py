"""Progress that shows wherever the output goes: tqdm bars on a terminal; in a log (a batch job, a
file, CI) a line at every further 10% or every 30 s, once the work has run for 10 s, so long
steps (synthetic data generation, the prepared cache, long evaluations) never look hung while
short ones stay quiet."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger("hybrid.progress")

QUIET_SECONDS = 10.0  # no lines for work shorter than this
EVERY_SECONDS = 30.0  # at least one line this often
STEPS = 10  # and one at every further tenth

T = TypeVar("T")


class Progress:
    """Counts ``total`` items of work named ``desc``; ``enabled=False`` shows nothing."""

    def __init__(self, total: int | None, desc: str, *, enabled: bool = True, unit: str = "it"):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False) if enabled and sys.stderr.isatty() else None
        self.done = 0
        self.started = self.last_line = time.monotonic()
        self.last_step = 0

    def update(self, count: int = 1) -> None:
        """``count`` more items done."""
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.enabled:
            self._maybe_log()

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self.started < QUIET_SECONDS:
            return
        step = STEPS * self.done // self.total if self.total else 0
        if step > self.last_step or now - self.last_line >= EVERY_SECONDS:
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            of = f"/{self.total}" if self.total else ""
            log.info("%s: %d%s %s%s, %.0f s", self.desc, self.done, of, self.unit, share, now - self.started)
            self.last_step, self.last_line = step, now

    def set_postfix(self, **values) -> None:
        """Figures shown beside a terminal bar (e.g. the running loss)."""
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def close(self) -> None:
        """Done (clears a terminal bar)."""
        if self.bar is not None:
            self.bar.close()


def progress(
    items: Iterable[T], desc: str, *, total: int | None = None, enabled: bool = True, unit: str = "it"
) -> Iterator[T]:
    """``items``, counted as they are consumed (see :class:`Progress`); ``total`` defaults to ``len(items)``."""
    total = len(items) if total is None and hasattr(items, "__len__") else total
    meter = Progress(total, desc, enabled=enabled, unit=unit)
    try:
        for item in items:
            yield item
            meter.update()
    finally:
        meter.close()
