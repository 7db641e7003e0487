"""Logging that speaks once per job: :class:`RankedLogger` emits on rank 0 only unless asked."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hybrid.util import ranks


class RankedLogger(logging.LoggerAdapter):
    """A logger whose records are emitted by rank 0 alone (``rank_zero_only=False`` for all ranks,
    then prefixed ``[rank N]`` under DDP), so a job of N processes logs each line once."""

    def __init__(self, name: str, rank_zero_only: bool = True, extra: Mapping | None = None):
        super().__init__(logging.getLogger(name), extra or {})
        self.rank_zero_only = rank_zero_only

    def log(self, level: int, msg, *args, rank_zero_only: bool | None = None, **kwargs) -> None:
        """Log ``msg`` at ``level`` on rank 0 (or on every rank, prefixed, when not rank-zero-only)."""
        if not self.isEnabledFor(level):
            return
        only_zero = self.rank_zero_only if rank_zero_only is None else rank_zero_only
        if only_zero and not ranks.is_rank_zero():
            return
        if not only_zero and ranks.world_size() > 1:
            msg = f"[rank {ranks.rank()}] {msg}"
        msg, kwargs = self.process(msg, kwargs)
        self.logger.log(level, msg, *args, **kwargs)
